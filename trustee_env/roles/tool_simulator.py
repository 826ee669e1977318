"""ToolSimulator: plays one tool call against the episode's JSON world state.

Arguments are validated by code *before* this role is used (see ``episode``); the LM
only ever sees well-formed calls. Its answer is ``{result, state_patch}``: the result is
checked against the tool's result schema and the patch is applied by code, so a later
read sees every earlier write.

The answer schema is built per call from the current world state (``world.patch_schema``):
patch paths are an ``enum`` of the pointers that exist, values keep their field's type, and a
read-only tool may only answer ``[]``. Every string and list is bounded and every object closed,
so the grammar ends the answer well before ``max_tokens``. It stays inside what llama.cpp
grammars, xgrammar and llguidance all take: ``enum``, ``const``, ``anyOf``, bounded strings and
arrays, and never ``pattern`` together with ``maxLength`` on one string.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pydantic import BaseModel, Field

from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.prompts import render_messages
from trustee_env.schemas import ToolCall, ToolSpec, schema_errors
from trustee_env.world import EMPTY_PATCH_SCHEMA, PatchError, apply_patch, patch_schema, record_schema

__all__ = ["ToolOutcome", "ToolSimulator", "outcome_schema", "result_answer_schema"]

# Bounds on the result part of the answer: realistic ids, names and dates fit; a runaway string does not.
RESULT_MAX_STRING = 60
RESULT_MAX_ITEMS = 3
RESULT_MAX_CHARS = 8_000  # a tool result larger than this is a simulator fault, whatever the schema says
PATCH_MAX_OPS = 3
# Formats all three grammar engines turn into a fixed shape; other formats become bounded plain strings.
_GRAMMAR_FORMATS = frozenset({"date", "date-time", "time", "uuid"})
# What a free-form object (``{"type": "object"}``, e.g. an inferred result schema) is answered with.
GENERIC_OBJECT: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"type": "string", "maxLength": 40}, "message": {"type": "string", "maxLength": 160}},
    "required": ["status", "message"],
    "additionalProperties": False,
}
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_UNBOUNDED_REPEAT = re.compile(r"(?<!\\)[*+]|\{\d+,\}")


def _kinds(schema: dict[str, Any]) -> list[Any]:
    kinds = schema.get("type")
    kinds = list(kinds) if isinstance(kinds, list) else [kinds]
    if "properties" in schema and "object" not in kinds:
        kinds.append("object")
    return kinds


def result_answer_schema(schema: Any, *, max_string: int = RESULT_MAX_STRING, max_items: int = RESULT_MAX_ITEMS) -> Any:
    """A grammar-safe copy of a result schema: what the LM may write is a subset of what ``schema`` accepts.

    Strings get ``maxLength`` (a bounded ``pattern`` or a grammar format bounds them instead; an
    unbounded ``pattern`` is dropped and left to validation), arrays get ``maxItems``, objects with
    properties are closed, and a free-form object becomes ``GENERIC_OBJECT``. A map
    (``additionalProperties`` a schema, no properties) stays a map of bounded values.
    """
    if isinstance(schema, list):
        return [result_answer_schema(item, max_string=max_string, max_items=max_items) for item in schema]
    if not isinstance(schema, dict):
        return schema

    def inner(sub: Any) -> Any:
        return result_answer_schema(sub, max_string=max_string, max_items=max_items)

    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: inner(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMA_LISTS or key in ("items", "additionalProperties"):
            out[key] = inner(value)
        else:
            out[key] = value  # enum, const, required, bounds, descriptions: data, kept as they are
    kinds = _kinds(out)
    if "string" in kinds and not ("enum" in out or "const" in out):
        if out.get("format") is not None and out["format"] not in _GRAMMAR_FORMATS:
            del out["format"]
        if "pattern" in out and _UNBOUNDED_REPEAT.search(out["pattern"]):
            del out["pattern"]
        if "pattern" in out or "format" in out:
            out.pop("maxLength", None)
        else:
            bound = min(int(out.get("maxLength", max_string)), max_string)
            out["maxLength"] = max(bound, int(out.get("minLength", 0)))
    if "array" in kinds:
        out["maxItems"] = max(min(int(out.get("maxItems", max_items)), max_items), int(out.get("minItems", 0)))
    if "object" in kinds:
        if out.get("properties"):
            out["additionalProperties"] = False
        elif isinstance(out.get("additionalProperties"), dict):
            pass  # a map: its values are bounded above
        elif kinds == ["object"]:
            out = {
                **{k: v for k, v in out.items() if k not in ("properties", "additionalProperties")},
                **copy.deepcopy(GENERIC_OBJECT),
            }
        else:
            out["properties"] = copy.deepcopy(GENERIC_OBJECT["properties"])
            out["additionalProperties"] = False
    return out


class ToolOutcome(BaseModel):
    """What the tool simulator returns: the result and how the world changed."""

    result: Any = Field(description="The tool's response, following its result schema.")
    state_patch: list[dict[str, Any]] = Field(default_factory=list, description="RFC 6902 add/replace/remove ops.")


def outcome_schema(
    tool: ToolSpec, state: dict[str, Any] | None = None, arguments: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The answer schema for one call: the tool's (bounded) result and a patch valid against ``state``.

    A read-only tool's patch can only be ``[]``. Records appended to an empty collection are shaped
    like the call's arguments plus an ``id`` (there are no siblings to copy).
    """
    if tool.read_only:
        patch = copy.deepcopy(EMPTY_PATCH_SCHEMA)
    else:
        new_record = record_schema([{"id": "", **(arguments or {})}])
        patch = patch_schema(state or {}, max_ops=PATCH_MAX_OPS, new_record=new_record)
    return {
        "type": "object",
        "properties": {"result": result_answer_schema(tool.result_schema), "state_patch": patch},
        "required": ["result", "state_patch"],
        "additionalProperties": False,
    }


class ToolSimulator:
    """Simulates tool calls; one LM call per tool call."""

    def __init__(self, client: LLMClient, *, prompt_dir: str | None = None) -> None:
        self.client = client
        self.prompt_dir = prompt_dir

    def problems(self, outcome: ToolOutcome, tool: ToolSpec, state: dict[str, Any]) -> list[str]:
        """Schema and patch errors of an answer (empty list = usable).

        The result must follow the tool's own schema and fit ``RESULT_MAX_CHARS`` once serialised: an
        engine that ignores the (bounded) answer schema cannot slip a 10 MB result into the observation,
        the JSONL and every later prompt, while a faithful simulator writing a free-form result is not
        held to the narrower shape it was merely asked for.
        """
        errors = [f"result/{error}" for error in schema_errors(tool.result_schema, outcome.result, root="(root)")]
        size = len(json.dumps(outcome.result, ensure_ascii=False, default=str))
        if size > RESULT_MAX_CHARS:
            errors.append(f"result is {size} characters long once serialised; at most {RESULT_MAX_CHARS} are allowed")
        if tool.read_only and outcome.state_patch:
            errors.append("state_patch must be empty: this tool is read-only")
        else:
            try:
                apply_patch(state, outcome.state_patch)
            except PatchError as err:
                errors.append(f"state_patch {err}")
        return errors[:8]

    async def call(
        self,
        tool: ToolSpec,
        call: ToolCall,
        *,
        step: int,
        index: int,
        state: dict[str, Any],
        intent: str,
        previous: list[str],
        seed: int,
        usage: Usage,
    ) -> tuple[Any, dict[str, Any]]:
        """Simulate ``call``; return ``(result, new_state)``. Raises an LLMError subclass on failure."""
        messages = render_messages(
            "tool_simulator.j2",
            self.prompt_dir,
            tool=tool.model_dump(),
            call={"step": step, "index": index, "name": call.name, "arguments": call.arguments},
            state=state,
            intent=intent,
            previous=previous,
        )
        outcome = await self.client.structured(
            messages,
            ToolOutcome,
            seed=seed,
            usage=usage,
            schema=outcome_schema(tool, state, call.arguments),
            validate=lambda o: self.problems(o, tool, state),
        )
        return outcome.result, apply_patch(state, outcome.state_patch)
