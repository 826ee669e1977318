"""Turning an agent (policy) message into tool calls.

A policy either calls tools natively (the OpenAI ``tool_calls`` field, filled in by the
server's own tool parser) or writes the calls into its text in one of the common syntaxes:

=========  ===================================================================
hermes     ``<tool_call>{"name": "f", "arguments": {...}}</tool_call>`` (Qwen, Hermes)
mistral    ``[TOOL_CALLS][{"name": "f", "arguments": {...}}]`` or ``[TOOL_CALLS]f[ARGS]{...}``
llama3     the whole reply is ``{"name": "f", "parameters": {...}}`` (optionally ``<|python_tag|>``)
pythonic   ``[f(a=1, b="x"), g(c=[1, 2])]`` (Llama 3.2/4, Gemma ``tool_code``)
=========  ===================================================================

:func:`parse_message` never raises on policy output: a broken call becomes a
:class:`ParseError` whose ``message`` is written for the agent (what was wrong and the
expected syntax), and the env sends it back as feedback. Pythonic calls are read with
:mod:`ast` and :func:`ast.literal_eval` only; nothing the policy writes is ever executed.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import json_repair
from pydantic import BaseModel, Field

from trustee_env.schemas import ToolCall

__all__ = [
    "TEXT_FORMATS",
    "TOOL_FORMATS",
    "ParseError",
    "ParsedMessage",
    "ToolFormat",
    "as_assistant_message",
    "parse_message",
    "render_tool_calls",
    "strip_think",
]

ToolFormat = Literal["native", "hermes", "llama3", "mistral", "pythonic"]
TOOL_FORMATS: tuple[str, ...] = ("native", "hermes", "llama3", "mistral", "pythonic")
TEXT_FORMATS: tuple[str, ...] = ("hermes", "mistral", "llama3", "pythonic")
"""The text syntaxes, in the order they are tried after the preferred one."""

SNIPPET_CHARS = 200

EXPECTED: dict[str, str] = {
    "native": 'a function call whose "arguments" is a JSON object, e.g. {"city": "Paris"}',
    "hermes": '<tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>',
    "mistral": '[TOOL_CALLS][{"name": "<tool>", "arguments": {...}}]',
    "llama3": '{"name": "<tool>", "parameters": {...}} as the whole reply',
    "pythonic": '[tool_name(arg1="value", arg2=2)] with keyword arguments and literal values',
}


class ParseError(BaseModel):
    """A tool call the policy attempted but that could not be read."""

    call_id: str = Field(description="'call_<step>_<i>', or the model's own id for a native call.")
    format: str = Field(description="The syntax the broken call looked like.")
    snippet: str = Field(description="The offending text, truncated to about 200 characters.")
    message: str = Field(description="What was wrong and the expected syntax, written for the agent.")


class ParsedMessage(BaseModel):
    """Everything read from one assistant message."""

    calls: list[ToolCall] = Field(default_factory=list)
    errors: list[ParseError] = Field(default_factory=list)
    text: str = Field(default="", description="Visible reply: no <think> blocks, no tool-call markup, stripped.")
    format: str | None = Field(default=None, description="Format the calls were found in; None if none.")


@dataclass
class _Call:
    name: str
    arguments: dict[str, Any]
    call_id: str | None = None


@dataclass
class _Error:
    snippet: str
    problem: str
    call_id: str | None = None


_Item = _Call | _Error

# ----------------------------------------------------------------------------- think blocks

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def strip_think(text: str) -> str:
    """Remove reasoning blocks from a reply.

    Removes closed ``<think>...</think>`` blocks, a stray leading ``...</think>`` prefix (Qwen3
    templates put the opening tag in the prompt), and an unclosed ``<think>`` up to the end.

    Args:
        text: the raw assistant content.

    Returns:
        The text without reasoning (not stripped of whitespace).
    """
    if not text:
        return ""
    close = _THINK_CLOSE.search(text)
    opening = _THINK_OPEN.search(text)
    if close and (opening is None or close.start() < opening.start()):
        text = text[close.end() :]
    text = _THINK_BLOCK.sub("", text)
    opening = _THINK_OPEN.search(text)
    if opening:
        text = text[: opening.start()]
    return _THINK_CLOSE.sub("", text)


# ----------------------------------------------------------------------------- shared helpers


def _snip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 3] + "..."


def _json_error(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg}: line {exc.lineno} column {exc.colno}"


def _decode(text: str) -> tuple[Any, str | None]:
    """Decode JSON, salvaging with json_repair.

    Returns:
        ``(value, error)``: error is None for valid JSON; for repaired JSON both are set (the caller
        keeps the value only if it has the right shape); value is None when nothing was salvaged.
    """
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        error = _json_error(exc)
    except (RecursionError, ValueError) as exc:
        return None, "nested too deeply" if isinstance(exc, RecursionError) else "unreadable"
    try:
        repaired = json_repair.loads(text)
    except Exception:  # json_repair is best effort; any failure just means no salvage
        repaired = None
    return (repaired if isinstance(repaired, dict | list) and repaired else None), error


def _arguments(raw: Any) -> dict[str, Any] | str:
    """Arguments as a dict, or a problem description."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        value, error = _decode(raw)
        if isinstance(value, dict):
            return value
        if error is None and value is None:
            return {}
        if error is not None:
            return f"the arguments are not valid JSON ({error})"
        raw = value
    if isinstance(raw, Mapping):
        return dict(raw)
    return f"the arguments must be a JSON object, got {_type_name(raw)}"


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _call_from_obj(obj: Any, snippet: str, json_problem: str | None = None) -> _Item:
    """Validate a decoded ``{"name", "arguments"|"parameters"}`` object.

    ``json_problem`` is set when ``obj`` was salvaged from invalid JSON: a salvaged object without
    the right shape is then reported as the JSON problem, the more useful explanation.
    """
    if isinstance(obj, Mapping) and "name" not in obj and isinstance(obj.get("function"), Mapping):
        obj = obj["function"]  # OpenAI-shaped {"type": "function", "function": {...}}
    if not isinstance(obj, Mapping):
        return _Error(snippet, json_problem or f"expected a JSON object, got {_type_name(obj)}")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return _Error(snippet, json_problem or 'missing or empty "name"')
    raw = obj.get("arguments", obj.get("parameters"))
    arguments = _arguments(raw)
    if isinstance(arguments, str):
        return _Error(snippet, arguments)
    return _Call(name.strip(), arguments)


def _calls_from_decoded(value: Any, error: str | None, snippet: str, what: str) -> list[_Item]:
    """Turn a decoded JSON object or list into items; ``what`` names the place for error messages."""
    problem = f"invalid JSON in {what} ({error})" if error else None
    if value is None:
        return [_Error(snippet, problem or f"nothing to read in {what}")]
    if isinstance(value, list):
        if not value:
            return [_Error(snippet, f"empty list of calls in {what}")]
        return [
            _call_from_obj(obj, snippet if error else _snip(json.dumps(obj, default=str)), problem) for obj in value
        ]
    return [_call_from_obj(value, snippet, problem)]


# ----------------------------------------------------------------------------- hermes

_HERMES_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|(?=<tool_call>)|\Z)", re.DOTALL)
_FENCE_WRAP = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)


def _parse_hermes(text: str) -> tuple[list[_Item], str] | None:
    if "<tool_call>" not in text:
        return None
    items: list[_Item] = []
    for match in _HERMES_BLOCK.finditer(text):
        body = match.group(1).strip()
        fenced = _FENCE_WRAP.match(body)
        body = fenced.group(1).strip() if fenced else body
        if not body:
            items.append(_Error(match.group(0), "empty <tool_call> block"))
            continue
        value, error = _decode(body)
        items.extend(_calls_from_decoded(value, error, _snip(match.group(0)), "<tool_call> block"))
    rest = _HERMES_BLOCK.sub("", text).replace("</tool_call>", "")
    return items, rest


# ----------------------------------------------------------------------------- mistral

_MISTRAL_MARK = "[TOOL_CALLS]"
_MISTRAL_NAMED = re.compile(r"\s*([A-Za-z_][\w.\-]*)\s*(?:\[CALL_ID\]\s*\S*?\s*)?\[ARGS\]", re.DOTALL)
_DECODER = json.JSONDecoder()


def _parse_mistral(text: str) -> tuple[list[_Item], str] | None:
    if _MISTRAL_MARK not in text:
        return None
    text = text.replace("</s>", "")
    head, *segments = text.split(_MISTRAL_MARK)
    items: list[_Item] = []
    rest = [head]
    for segment in segments:
        snippet = _snip(_MISTRAL_MARK + segment)
        named = _MISTRAL_NAMED.match(segment)
        if named:
            body = segment[named.end() :].strip()
            value, error, tail = _decode_prefix(body)
            if error and not isinstance(value, Mapping):
                arguments: dict[str, Any] | str = f"invalid JSON after [ARGS] ({error})"
            else:
                arguments = _arguments(value)
            items.append(_Error(snippet, arguments) if isinstance(arguments, str) else _Call(named[1], arguments))
            rest.append(tail)
            continue
        body = segment.strip()
        if not body:
            items.append(_Error(snippet, "[TOOL_CALLS] is not followed by any call"))
            continue
        value, error, tail = _decode_prefix(body)
        items.extend(_calls_from_decoded(value, error, snippet, "[TOOL_CALLS]"))
        rest.append(tail)
    return items, "\n".join(part for part in rest if part.strip())


def _decode_prefix(body: str) -> tuple[Any, str | None, str]:
    """Decode the JSON value at the start of ``body``: ``(value, error, text after it)``."""
    try:
        value, end = _DECODER.raw_decode(body)
        return value, None, body[end:]
    except json.JSONDecodeError:
        pass
    except (RecursionError, ValueError):
        return None, "nested too deeply", ""
    value, error = _decode(body)
    return value, error, ""


# ----------------------------------------------------------------------------- llama3

_PYTHON_TAG = "<|python_tag|>"
_LLAMA_END = re.compile(r"(?:<\|eom_id\|>|<\|eot_id\|>|<\|eom\|>)\s*$")
_LLAMA_START = re.compile(r"^(?:\{|\[\s*\{)")
_NAME_KEY = re.compile(r"""["']name["']\s*:""")


_CALL_KEYS = frozenset({"name", "arguments", "parameters", "type", "id", "function"})


def _looks_like_call(obj: Any) -> bool:
    return isinstance(obj, Mapping) and ("name" in obj or "function" in obj) and set(obj) <= _CALL_KEYS


def _parse_llama3(text: str) -> tuple[list[_Item], str] | None:
    body = text.strip()
    if body.startswith(_PYTHON_TAG):
        body = body[len(_PYTHON_TAG) :].strip()
    body = _LLAMA_END.sub("", body).strip()
    fenced = _FENCE_WRAP.match(body)
    body = fenced.group(1).strip() if fenced else body
    if not _LLAMA_START.match(body) or not _NAME_KEY.search(body):
        return None
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, RecursionError, ValueError):
        pass
    else:
        objects = value if isinstance(value, list) else [value]
        if not any(_looks_like_call(obj) for obj in objects):
            return None  # a JSON answer that merely has a "name" key, not a call
        return _calls_from_decoded(value, None, _snip(body), "the JSON reply"), ""
    items: list[_Item] = []
    pos, tail = 0, ""
    while pos < len(body):
        while pos < len(body) and body[pos] in " \t\r\n;,":
            pos += 1
        if pos >= len(body):
            break
        if body[pos] not in "{[":
            tail = body[pos:]
            break
        try:
            value, end = _DECODER.raw_decode(body, pos)
        except json.JSONDecodeError:
            value, error = _decode(body[pos:])
            items.extend(_calls_from_decoded(value, error, _snip(body[pos:]), "the JSON call"))
            break
        except (RecursionError, ValueError):
            items.append(_Error(_snip(body[pos:]), "unreadable JSON (nested too deeply)"))
            break
        items.extend(_calls_from_decoded(value, None, _snip(body[pos:end]), "the JSON call"))
        pos = end
    return items, tail


# ----------------------------------------------------------------------------- pythonic

_PY_TAGS = re.compile(r"<\|python_start\|>(.*?)(?:<\|python_end\|>|\Z)", re.DOTALL)
_PY_FENCE = re.compile(r"```[ \t]*(python|py|tool_code|tool_call|tool_calls)?[ \t]*\n(.*?)```", re.DOTALL)
_LOOKS_PYTHONIC = re.compile(r"^(?:\[\s*[A-Za-z_][\w.]*\s*\(|[A-Za-z_][\w.]*\(\s*[A-Za-z_]\w*\s*=(?!=))")
_JSON_NAMES = {"true": True, "false": False, "null": None, "none": None}


class _JsonNames(ast.NodeTransformer):
    """Let ``true``/``false``/``null`` stand for the Python constants inside literals."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id.lower() in _JSON_NAMES:
            return ast.copy_location(ast.Constant(_JSON_NAMES[node.id.lower()]), node)
        return node


class _NotJson(ValueError):
    """A literal that has no JSON equivalent (set, bytes, complex, non-string dict key)."""


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise _NotJson("dictionary keys must be strings")
        return {key: _jsonable(item) for key, item in value.items()}
    raise _NotJson(f"{type(value).__name__} values are not allowed")


def _literal(node: ast.expr) -> Any:
    """A JSON-compatible value from a literal node; raises ValueError for anything else."""
    return _jsonable(ast.literal_eval(_JsonNames().visit(node)))


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted_name(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def _call_from_ast(node: ast.expr, source: str) -> _Item:
    snippet = _snip(ast.get_source_segment(source, node) or source)
    if not isinstance(node, ast.Call):
        return _Error(snippet, "expected a function call such as tool_name(arg=value)")
    name = _dotted_name(node.func)
    if not name:
        return _Error(snippet, "the function must be called by its plain name, e.g. tool_name(arg=value)")
    if node.args:
        return _Error(snippet, f"positional arguments are not supported; pass every argument of {name} by keyword")
    arguments: dict[str, Any] = {}
    for kw in node.keywords:
        label = f"argument '{kw.arg}'" if kw.arg else "the ** argument"
        try:
            value = _literal(kw.value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
            detail = str(exc) if isinstance(exc, _NotJson) else "it is not a literal"
            return _Error(
                snippet,
                f"the value of {label} of {name} is not usable ({detail}); "
                "only strings, numbers, booleans, None, lists and dicts are allowed",
            )
        if kw.arg is None:
            if not isinstance(value, dict):
                return _Error(snippet, f"the ** argument of {name} must be a dict literal")
            arguments.update(value)
        else:
            arguments[kw.arg] = value
    return _Call(name, arguments)


def _parse_pythonic_source(source: str, *, strict: bool) -> list[_Item] | None:
    """Items from a call or list of calls; None when ``source`` is not pythonic calls at all.

    With ``strict`` (the whole reply), broken call-like source gives an error; otherwise (a code
    fence inside prose) anything short of clean calls is treated as ordinary code.
    """
    source = source.strip()
    if not source:
        return None
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        if strict and _LOOKS_PYTHONIC.match(source):
            detail = getattr(exc, "msg", None) or type(exc).__name__
            return [_Error(_snip(source), f"invalid Python call syntax ({detail})")]
        return None
    body = tree.body
    if isinstance(body, ast.Call) and isinstance(body.func, ast.Name | ast.Attribute | ast.Call):
        nodes: list[ast.expr] = [body]
    elif isinstance(body, ast.List | ast.Tuple) and any(isinstance(elt, ast.Call) for elt in body.elts):
        nodes = list(body.elts)
    else:
        return None
    items = [_call_from_ast(node, source) for node in nodes]
    if not strict and any(isinstance(item, _Error) for item in items):
        return None
    return items


def _parse_pythonic(text: str) -> tuple[list[_Item], str] | None:
    tagged = list(_PY_TAGS.finditer(text))
    if tagged:
        items: list[_Item] = []
        for match in tagged:
            found = _parse_pythonic_source(match.group(1), strict=True)
            if found is None:
                found = [_Error(match.group(0), "no function call inside <|python_start|>...<|python_end|>")]
            items.extend(found)
        return items, _PY_TAGS.sub("", text)
    stripped = text.strip()
    whole = _FENCE_WRAP.match(stripped)
    found = _parse_pythonic_source(whole.group(1) if whole else stripped, strict=True)
    if found is not None:
        return found, ""
    for match in _PY_FENCE.finditer(text):
        found = _parse_pythonic_source(match.group(2), strict=False)
        if found:
            return found, text[: match.start()] + text[match.end() :]
    return None


# ----------------------------------------------------------------------------- parse_message

_PARSERS = {"hermes": _parse_hermes, "mistral": _parse_mistral, "llama3": _parse_llama3, "pythonic": _parse_pythonic}


def _finish(items: list[_Item], fmt: str, step: int, text: str) -> ParsedMessage:
    calls: list[ToolCall] = []
    errors: list[ParseError] = []
    for index, item in enumerate(items):
        call_id = item.call_id or f"call_{step}_{index}"
        if isinstance(item, _Call):
            calls.append(ToolCall(id=call_id, name=item.name, arguments=item.arguments))
        else:
            message = f"Could not parse tool call: {item.problem}. Expected {EXPECTED[fmt]}."
            errors.append(ParseError(call_id=call_id, format=fmt, snippet=_snip(item.snippet), message=message))
    return ParsedMessage(calls=calls, errors=errors, text=text.strip(), format=fmt if items else None)


def _native_items(tool_calls: list[Any], step: int) -> list[_Item]:
    items: list[_Item] = []
    for index, entry in enumerate(tool_calls):
        if hasattr(entry, "model_dump") and not isinstance(entry, Mapping):
            entry = entry.model_dump()
        snippet = _snip(json.dumps(entry, default=str, ensure_ascii=False))
        if not isinstance(entry, Mapping):
            items.append(
                _Error(snippet, f"a tool call must be an object, got {_type_name(entry)}", f"call_{step}_{index}")
            )
            continue
        raw_id = entry.get("id")
        call_id = raw_id if isinstance(raw_id, str) and raw_id else f"call_{step}_{index}"
        function = entry.get("function") if isinstance(entry.get("function"), Mapping) else entry
        item = _call_from_obj(function, snippet)
        item.call_id = call_id
        items.append(item)
    return items


def _parse(message: Mapping[str, Any], step: int, tool_format: str) -> ParsedMessage:
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    text = strip_think(content if isinstance(content, str) else "")
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list | tuple) and tool_calls:
        return _finish(_native_items(list(tool_calls), step), "native", step, text)
    order = [tool_format] if tool_format in _PARSERS else []
    order += [fmt for fmt in TEXT_FORMATS if fmt not in order]
    for fmt in order:
        found = _PARSERS[fmt](text)
        if found is not None and found[0]:
            return _finish(found[0], fmt, step, found[1])
    return ParsedMessage(text=text.strip())


def _message_chars(message: Mapping[str, Any]) -> int:
    """Characters of content plus native tool calls' names and arguments (what parsing would read)."""
    content = message.get("content")
    total = len(content) if isinstance(content, str) else 0
    if isinstance(content, list):
        total += sum(len(str(part.get("text", ""))) for part in content if isinstance(part, Mapping))
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list | tuple):
        for entry in tool_calls:
            function = entry.get("function") if isinstance(entry, Mapping) else None
            if isinstance(function, Mapping):
                for key in ("name", "arguments"):
                    value = function.get(key)
                    total += len(value) if isinstance(value, str) else 0 if value is None else SNIPPET_CHARS
            else:
                total += SNIPPET_CHARS
    return total


def _native_ids(message: Mapping[str, Any], step: int) -> list[str]:
    """The ids every native tool call must be answered with (env-assigned where missing)."""
    tool_calls = message.get("tool_calls")
    if not isinstance(tool_calls, list | tuple):
        return []
    ids = []
    for index, entry in enumerate(tool_calls):
        raw = entry.get("id") if isinstance(entry, Mapping) else None
        ids.append(raw if isinstance(raw, str) and raw else f"call_{step}_{index}")
    return ids


def _over_size(message: Mapping[str, Any], step: int, tool_format: str, chars: int, cap: int) -> ParsedMessage:
    """A message over ``max_message_chars``: not read; one error per native call id (each needs an answer)."""
    content = message.get("content")
    snippet = _snip(content[:SNIPPET_CHARS] if isinstance(content, str) else "")
    text = f"Message not read: it has {chars} characters, over the cap max_message_chars={cap}. Send a shorter message."
    ids = _native_ids(message, step) or [f"call_{step}_0"]
    errors = [ParseError(call_id=call_id, format=tool_format, snippet=snippet, message=text) for call_id in ids]
    return ParsedMessage(errors=errors, text="", format=tool_format)


def _cap_calls(parsed: ParsedMessage, cap: int) -> ParsedMessage:
    """Keep the first ``cap`` calls; the others become errors naming ``max_calls_per_step``."""
    if len(parsed.calls) <= cap:
        return parsed
    extra = [
        ParseError(
            call_id=call.id,
            format=parsed.format or "native",
            snippet=_snip(call.name),
            message=f"Not run: more than max_calls_per_step={cap} tool calls in one message. "
            f"Make at most {cap} calls per message.",
        )
        for call in parsed.calls[cap:]
    ]
    return parsed.model_copy(update={"calls": parsed.calls[:cap], "errors": [*parsed.errors, *extra]})


def parse_message(
    message: Mapping[str, Any],
    *,
    step: int,
    tool_format: ToolFormat = "native",
    max_chars: int | None = None,
    max_calls: int | None = None,
) -> ParsedMessage:
    """Read the tool calls out of one assistant message; never raises on policy output.

    Native ``tool_calls`` win when present (their ids are kept). Otherwise the content, without
    ``<think>`` blocks, is read in ``tool_format`` first, then in the other text formats (hermes,
    mistral, llama3, pythonic); the first format that finds a call or broken call markup is used.
    Calls read from text get ids ``call_<step>_<i>``, ``i`` counting calls and errors in order.

    Bounded work: a message longer than ``max_chars`` (content plus native call arguments) is not
    read at all, and only the first ``max_calls`` calls are kept; in both cases the errors name the
    cap (``max_message_chars`` / ``max_calls_per_step`` in the env's config).

    Args:
        message: an OpenAI-shaped assistant message (``content`` and optional ``tool_calls``).
        step: the env step, used in assigned call ids.
        tool_format: the syntax the policy was taught; ``"native"`` tries every text format.
        max_chars: longest message read; None for no cap.
        max_calls: most calls kept from one message; None for no cap.

    Returns:
        The calls, the parse errors (as agent feedback), the visible text and the format used.
    """
    try:
        if not isinstance(message, Mapping):
            message = {"content": str(message) if message is not None else None}
        if max_chars is not None and (chars := _message_chars(message)) > max_chars:
            return _over_size(message, step, str(tool_format), chars, max_chars)
        parsed = _parse(message, step, tool_format)
        return parsed if max_calls is None else _cap_calls(parsed, max_calls)
    except Exception as exc:  # last line of defence: policy output must never crash the env
        content = message.get("content") if isinstance(message, Mapping) else None
        snippet = _snip(str(content or ""))
        fmt = str(tool_format)
        error = ParseError(
            call_id=f"call_{step}_0",
            format=fmt,
            snippet=snippet,
            message=f"Could not parse the message ({type(exc).__name__}). Expected {EXPECTED.get(fmt, fmt)}.",
        )
        return ParsedMessage(errors=[error], text="", format=fmt)


# ----------------------------------------------------------------------------- rendering


def _py_literal(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_py_literal(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {_py_literal(v)}" for k, v in value.items())
            + "}"
        )
    return json.dumps(str(value), ensure_ascii=False)


def _pythonic_call(call: ToolCall) -> str:
    plain = [f"{key}={_py_literal(value)}" for key, value in call.arguments.items() if _is_kwarg(key)]
    extra = {key: value for key, value in call.arguments.items() if not _is_kwarg(key)}
    if extra:
        plain.append("**" + _py_literal(extra))
    return f"{call.name}({', '.join(plain)})"


def _is_kwarg(key: str) -> bool:
    return key.isidentifier() and not keyword.iskeyword(key)


def render_tool_calls(calls: list[ToolCall], tool_format: ToolFormat) -> str:
    """Write tool calls in a text syntax (for scripted policies and tests).

    Args:
        calls: the calls to write.
        tool_format: the syntax; ``"native"`` gives ``""`` (native calls live in ``tool_calls``).

    Returns:
        The text a policy taught ``tool_format`` would write to make these calls.
    """
    if tool_format == "native" or not calls:
        return ""
    if tool_format == "hermes":
        blocks = [json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False) for c in calls]
        return "\n".join(f"<tool_call>\n{block}\n</tool_call>" for block in blocks)
    if tool_format == "mistral":
        payload = [{"name": c.name, "arguments": c.arguments} for c in calls]
        return _MISTRAL_MARK + json.dumps(payload, ensure_ascii=False)
    if tool_format == "llama3":
        return "\n".join(json.dumps({"name": c.name, "parameters": c.arguments}, ensure_ascii=False) for c in calls)
    if tool_format == "pythonic":
        return "[" + ", ".join(_pythonic_call(call) for call in calls) + "]"
    raise ValueError(f"unknown tool format {tool_format!r}; expected one of {TOOL_FORMATS}")


ACTION_SHAPES = (
    "an assistant message dict {'role': 'assistant', 'content': str, 'tool_calls': [...]}, "
    "a str of raw model text, or an OpenAI ChatCompletionMessage"
)


def as_assistant_message(action: Any) -> dict[str, Any]:
    """Normalise an action into an OpenAI assistant message dict, or raise TypeError.

    Accepts a dict, a str (raw model text) or an object with ``model_dump`` (OpenAI SDK).
    ``content`` is always a str: llama-cpp-python answers HTTP 500 to ``content: null``. Lone
    surrogates become U+FFFD (no server or JSONL file takes them); tool calls nested deeper than
    ``MAX_ACTION_DEPTH`` as Python objects raise ValueError.
    """
    if isinstance(action, str):
        return {"role": "assistant", "content": _scrub(action)}
    if hasattr(action, "model_dump") and not isinstance(action, dict):
        action = action.model_dump(exclude_none=True)
    if not isinstance(action, dict):
        raise TypeError(f"action must be {ACTION_SHAPES}; got {type(action).__name__}")
    role = action.get("role", "assistant")
    if role != "assistant":
        raise TypeError(f"action must be an assistant message (role 'assistant'), got role {role!r}")
    content = action.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    elif content is not None and not isinstance(content, str):
        raise TypeError(f"action['content'] must be a str or None, got {type(content).__name__}")
    message: dict[str, Any] = {"role": "assistant", "content": _scrub(content or "")}
    tool_calls = action.get("tool_calls")
    if tool_calls:
        if not isinstance(tool_calls, list):
            raise TypeError(f"action['tool_calls'] must be a list, got {type(tool_calls).__name__}")
        if _depth_exceeds(tool_calls, MAX_ACTION_DEPTH):
            raise ValueError(
                f"action['tool_calls'] is nested deeper than {MAX_ACTION_DEPTH} levels; "
                "pass each call's arguments as a JSON string, as OpenAI-compatible servers return them"
            )
        message["tool_calls"] = _scrub(tool_calls)
    return message


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _scrub(value: Any) -> Any:
    """``value`` with lone surrogates (text no UTF-8 encoder accepts) replaced by U+FFFD; unchanged otherwise.

    Such text can be neither sent to a simulator nor written to JSONL, so it is the one change made
    to an action before it is kept. Depth is bounded by the caller (``MAX_ACTION_DEPTH``).
    """
    if isinstance(value, str):
        return value if value.isascii() or not _SURROGATE.search(value) else _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        scrubbed = [_scrub(item) for item in value]
        return value if all(a is b for a, b in zip(scrubbed, value, strict=True)) else scrubbed
    if isinstance(value, dict):
        pairs = {_scrub(key): _scrub(item) for key, item in value.items()}
        same = len(pairs) == len(value) and all(k in value and pairs[k] is value[k] for k in pairs)
        return value if same else pairs
    return value


MAX_ACTION_DEPTH = 100
"""Deepest nesting of Python lists and dicts accepted in an action's ``tool_calls`` (JSON text is not limited)."""


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Is ``value`` nested deeper than ``limit`` (iterative: no recursion on the caller's data)?"""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values() if isinstance(child, Mapping | list | tuple))
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item if isinstance(child, Mapping | list | tuple))
    return False
