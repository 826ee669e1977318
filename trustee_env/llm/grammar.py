"""What an answer schema may contain so that every grammar engine enforces it as written.

Trustee's answers are decoded under a JSON schema by whichever engine serves the role: llama.cpp
grammars (``llama-server``, llama-cpp-python), or vLLM's xgrammar (its default) and llguidance
backends. Each engine refuses or quietly drops different JSON Schema features, and vLLM routes a
schema that xgrammar cannot take to another backend (or answers 400 when xgrammar is explicit).
So every schema Trustee sends stays inside the features all three compile, and stays bounded, so the
grammar itself ends the answer well before ``max_tokens``:

- keywords: ``type``, ``properties``, ``required``, ``additionalProperties``, ``items``,
  ``prefixItems``, ``minItems``/``maxItems``, ``enum``, ``const``, ``anyOf``, local ``$ref`` into
  ``$defs``; strings: ``minLength``/``maxLength``, or an anchored ``pattern`` (never with a length
  bound: xgrammar refuses both on one string), or ``format`` in :data:`GRAMMAR_FORMATS`; numbers:
  ``minimum``/``maximum`` and their exclusive forms; annotations (``title``, ``description``,
  ``default``, ``examples``) are free;
- refused: ``multipleOf``, ``uniqueItems``, ``contains``, ``minProperties``/``maxProperties``,
  ``propertyNames``, ``patternProperties``, ``not``, ``if``/``then``/``else``, ``allOf``,
  ``oneOf``, other formats and every other keyword;
- bounded and closed: every string has a length bound, an enum/const, a bounded pattern or a format;
  every array has ``maxItems``; every object that lists properties sets ``additionalProperties: false``.

:func:`grammar_problems` checks this; the test suite runs it over every answer schema (the 300
bundled tools' results, task generator, user, judge) and, where the engines are installed,
compiles the same schemas with llama.cpp, xgrammar and llguidance.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["GRAMMAR_FORMATS", "grammar_problems"]

GRAMMAR_FORMATS = frozenset({"date", "date-time", "time", "uuid"})
"""String formats that llama.cpp, xgrammar and llguidance all turn into a fixed shape."""

_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment"})
_COMMON = frozenset({"type", "enum", "const", "anyOf", "$ref", "$defs", "definitions"}) | _ANNOTATIONS
_BY_TYPE: dict[str, frozenset[str]] = {
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "integer": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
    "boolean": frozenset(),
    "null": frozenset(),
    "array": frozenset({"items", "prefixItems", "minItems", "maxItems"}),
    "object": frozenset({"properties", "required", "additionalProperties"}),
}
_UNBOUNDED_REPEAT = re.compile(r"(?<!\\)[*+]|\{\d+,\}")


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return [str(k) for k in kind]
    if isinstance(kind, str):
        return [kind]
    inferred = []
    if "properties" in schema or "additionalProperties" in schema:
        inferred.append("object")
    if "items" in schema or "prefixItems" in schema:
        inferred.append("array")
    return inferred


def _string_problems(schema: dict[str, Any], where: str) -> list[str]:
    problems = []
    pattern = schema.get("pattern")
    fmt = schema.get("format")
    if fmt is not None and fmt not in GRAMMAR_FORMATS:
        problems.append(f"{where}: format {fmt!r} (allowed: {', '.join(sorted(GRAMMAR_FORMATS))})")
    if pattern is not None:
        if not (isinstance(pattern, str) and pattern.startswith("^") and pattern.endswith("$")):
            problems.append(f"{where}: pattern {pattern!r} must be anchored with ^ and $ (llama.cpp)")
        elif _UNBOUNDED_REPEAT.search(pattern):
            problems.append(f"{where}: pattern {pattern!r} repeats without bound")
        if "maxLength" in schema or "minLength" in schema:
            problems.append(f"{where}: pattern together with minLength/maxLength (xgrammar refuses both)")
    if fmt is not None and ("maxLength" in schema or "minLength" in schema):
        problems.append(f"{where}: format together with minLength/maxLength")
    bounded = any(key in schema for key in ("maxLength", "enum", "const", "format")) or (
        isinstance(pattern, str) and not _UNBOUNDED_REPEAT.search(pattern)
    )
    if not bounded:
        problems.append(f"{where}: string without maxLength, enum, const, bounded pattern or format")
    return problems


def grammar_problems(schema: Any, where: str = "#") -> list[str]:
    """Everything in ``schema`` outside the features every grammar engine enforces (empty list = fine).

    Args:
        schema: a JSON schema as sent in ``response_format``.
        where: the JSON pointer of ``schema`` in the whole (for the messages).
    """
    if isinstance(schema, bool):
        return [] if where.endswith("/additionalProperties") else [f"{where}: boolean schema"]
    if not isinstance(schema, dict):
        return [f"{where}: not a schema ({type(schema).__name__})"]
    problems: list[str] = []
    kinds = _types(schema)
    allowed = set(_COMMON)
    for kind in kinds:
        if kind not in _BY_TYPE:
            problems.append(f"{where}: type {kind!r}")
        allowed |= _BY_TYPE.get(kind, frozenset())
    if "enum" in schema or "const" in schema or "anyOf" in schema or "$ref" in schema:
        allowed |= set().union(*_BY_TYPE.values())  # the bounds then apply to nothing or to the branches
    for key in schema:
        if key not in allowed:
            problems.append(f"{where}: keyword {key!r}" + (f" with type {kinds}" if kinds else ""))
    ref = schema.get("$ref")
    if ref is not None and not (isinstance(ref, str) and re.fullmatch(r"#/(\$defs|definitions)/[\w.-]+", ref)):
        problems.append(f"{where}: $ref {ref!r} (only local #/$defs/NAME)")
    for key in ("$defs", "definitions", "properties"):
        for name, sub in (schema.get(key) or {}).items():
            problems += grammar_problems(sub, f"{where}/{key}/{name}")
    for index, sub in enumerate(schema.get("anyOf") or []):
        problems += grammar_problems(sub, f"{where}/anyOf/{index}")
    for index, sub in enumerate(schema.get("prefixItems") or []):
        problems += grammar_problems(sub, f"{where}/prefixItems/{index}")
    if "items" in schema:
        problems += grammar_problems(schema["items"], f"{where}/items")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        problems += grammar_problems(extra, f"{where}/additionalProperties")
    if any(key in schema for key in ("enum", "const", "$ref", "anyOf")):
        return problems  # bounded by the value list, the definition or the branches
    if "string" in kinds:
        problems += _string_problems(schema, where)
    if "array" in kinds and "maxItems" not in schema:
        problems.append(f"{where}: array without maxItems")
    if "object" in kinds and schema.get("properties") and schema.get("additionalProperties") is not False:
        problems.append(f"{where}: object with properties but without additionalProperties: false")
    if "object" in kinds and not schema.get("properties") and not isinstance(extra, dict):
        problems.append(f"{where}: free-form object (neither properties nor a value schema)")
    return problems
