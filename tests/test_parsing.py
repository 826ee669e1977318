"""Tests for trustee_env.parsing: reading tool calls out of policy messages, and the policy tool prompts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from trustee_env.parsing import (
    TEXT_FORMATS,
    TOOL_FORMATS,
    ParsedMessage,
    parse_message,
    render_tool_calls,
    strip_think,
)
from trustee_env.schemas import ToolCall

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"


def parse(content: str | None, fmt: str = "native", step: int = 3, **extra: Any) -> ParsedMessage:
    return parse_message({"role": "assistant", "content": content, **extra}, step=step, tool_format=fmt)  # type: ignore[arg-type]


def names_args(parsed: ParsedMessage) -> list[tuple[str, dict[str, Any]]]:
    return [(call.name, call.arguments) for call in parsed.calls]


# ----------------------------------------------------------------------------- single and parallel calls per format

SINGLE = {
    "hermes": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\n</tool_call>',
    "mistral": '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}]',
    "llama3": '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "days": 2}}',
    "pythonic": '[get_weather(city="Paris", days=2)]',
}

PARALLEL = {
    "hermes": (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}</tool_call>\n'
        '<tool_call>{"name": "get_time", "arguments": {"tz": ["UTC", "CET"]}}</tool_call>'
    ),
    "mistral": (
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}, '
        '{"name": "get_time", "arguments": {"tz": ["UTC", "CET"]}}]'
    ),
    "llama3": (
        '{"name": "get_weather", "parameters": {"city": "Paris", "days": 2}}; '
        '{"name": "get_time", "parameters": {"tz": ["UTC", "CET"]}}'
    ),
    "pythonic": '[get_weather(city="Paris", days=2), get_time(tz=["UTC", "CET"])]',
}

WEATHER = ("get_weather", {"city": "Paris", "days": 2})
TIME = ("get_time", {"tz": ["UTC", "CET"]})


@pytest.mark.parametrize("preferred", ["native", "preferred"])
@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_single_call(fmt: str, preferred: str) -> None:
    parsed = parse(SINGLE[fmt], fmt if preferred == "preferred" else "native", step=5)
    assert names_args(parsed) == [WEATHER]
    assert [call.id for call in parsed.calls] == ["call_5_0"]
    assert parsed.errors == []
    assert parsed.format == fmt
    assert parsed.text == ""


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_parallel_calls(fmt: str) -> None:
    parsed = parse(PARALLEL[fmt], fmt, step=7)
    assert names_args(parsed) == [WEATHER, TIME]
    assert [call.id for call in parsed.calls] == ["call_7_0", "call_7_1"]
    assert parsed.errors == []
    assert parsed.format == fmt


def test_hermes_variants_parameters_string_arguments_and_missing_close_tag() -> None:
    content = (
        'Let me look.\n<tool_call>{"name": "a", "parameters": {"x": 1}}</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": "{\\"y\\": [1, 2]}"}</tool_call>\n'
        '<tool_call>{"name": "c", "arguments": {}}'
    )
    parsed = parse(content, "hermes")
    assert names_args(parsed) == [("a", {"x": 1}), ("b", {"y": [1, 2]}), ("c", {})]
    assert parsed.text == "Let me look."


def test_mistral_named_args_form_and_leading_text() -> None:
    parsed = parse(
        'Checking.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "days": 2}'
        '[TOOL_CALLS]get_time[ARGS]{"tz": ["UTC", "CET"]}'
    )
    assert names_args(parsed) == [WEATHER, TIME]
    assert parsed.format == "mistral"
    assert parsed.text == "Checking."


def test_mistral_single_object() -> None:
    parsed = parse('[TOOL_CALLS] {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}</s>')
    assert names_args(parsed) == [WEATHER]


def test_llama3_list_and_newline_forms() -> None:
    weather = '{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}'
    time = '{"name": "get_time", "parameters": {"tz": ["UTC", "CET"]}}'
    listed = parse(f"[{weather}, {time}]")
    lines = parse(f"{weather}\n{time}")
    assert names_args(listed) == names_args(lines) == [WEATHER, TIME]
    assert listed.format == lines.format == "llama3"


def test_pythonic_bare_call_tags_and_fences() -> None:
    assert names_args(parse('get_weather(city="Paris", days=2)')) == [WEATHER]
    assert names_args(parse('<|python_start|>[get_weather(city="Paris", days=2)]<|python_end|>')) == [WEATHER]
    assert names_args(parse('```tool_code\nget_weather(city="Paris", days=2)\n```')) == [WEATHER]
    fenced = parse('Let me check.\n```python\nget_weather(city="Paris", days=2)\n```')
    assert names_args(fenced) == [WEATHER]
    assert fenced.text == "Let me check."


def test_pythonic_json_style_constants_and_dotted_names() -> None:
    parsed = parse("[api.search(q='x', exact=true, limit=null, tags=('a', 'b'))]")
    assert names_args(parsed) == [("api.search", {"q": "x", "exact": True, "limit": None, "tags": ["a", "b"]})]


def test_preferred_format_is_tried_first_but_others_still_work() -> None:
    parsed = parse(SINGLE["hermes"], "pythonic")
    assert parsed.format == "hermes"
    assert names_args(parsed) == [WEATHER]


# ----------------------------------------------------------------------------- native tool_calls


def test_native_string_and_dict_arguments_and_missing_id() -> None:
    tool_calls = [
        {
            "id": "abc",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 2}'},
        },
        {"type": "function", "function": {"name": "get_time", "arguments": {"tz": ["UTC", "CET"]}}},
        {"id": "", "type": "function", "function": {"name": "ping", "arguments": ""}},
        {"id": "n", "type": "function", "function": {"name": "pong", "arguments": None}},
    ]
    parsed = parse("<think>hmm</think>I'll check.", step=2, tool_calls=tool_calls)
    assert parsed.format == "native"
    assert names_args(parsed) == [WEATHER, TIME, ("ping", {}), ("pong", {})]
    assert [call.id for call in parsed.calls] == ["abc", "call_2_1", "call_2_2", "n"]
    assert parsed.errors == []
    assert parsed.text == "I'll check."


def test_native_wins_over_text_markup() -> None:
    tool_calls = [{"id": "x1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
    parsed = parse(SINGLE["hermes"], tool_calls=tool_calls)
    assert names_args(parsed) == [("get_time", {})]


def test_native_bad_arguments_become_errors() -> None:
    tool_calls = [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "definitely not json"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "[1, 2]"}},
        {"id": "c", "type": "function", "function": {"name": "", "arguments": "{}"}},
        {"id": "d", "type": "function", "function": {"name": "h", "arguments": '{"x": 1,}'}},
    ]
    parsed = parse(None, tool_calls=tool_calls)
    assert names_args(parsed) == [("h", {"x": 1})]
    assert [error.call_id for error in parsed.errors] == ["a", "b", "c"]
    assert all(error.format == "native" for error in parsed.errors)
    assert "not valid JSON" in parsed.errors[0].message
    assert "JSON object" in parsed.errors[1].message and "list" in parsed.errors[1].message
    assert '"name"' in parsed.errors[2].message


def test_empty_tool_calls_falls_back_to_text() -> None:
    parsed = parse(SINGLE["pythonic"], tool_calls=[])
    assert parsed.format == "pythonic"
    assert names_args(parsed) == [WEATHER]


# ----------------------------------------------------------------------------- malformed calls -> errors

MALFORMED = {
    "hermes": '<tool_call>{"arguments": {"city": "Paris"}</tool_call>',
    "mistral": "[TOOL_CALLS] get_weather city=Paris",
    "llama3": '{"name": 42, "parameters": {"city": "Paris"}',
    "pythonic": '[get_weather(city="Paris"]',
}


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_malformed_call_is_an_error_not_an_exception(fmt: str) -> None:
    parsed = parse(MALFORMED[fmt], fmt, step=4)
    assert parsed.calls == []
    assert len(parsed.errors) == 1
    error = parsed.errors[0]
    assert error.call_id == "call_4_0"
    assert error.format == fmt == parsed.format
    assert error.message.startswith("Could not parse tool call:")
    assert "Expected" in error.message
    assert error.snippet and len(error.snippet) <= 200


def test_hermes_error_message_teaches_syntax() -> None:
    parsed = parse('<tool_call>{"name": "f" "arguments": 3}</tool_call>', "hermes")
    (error,) = parsed.errors
    assert "invalid JSON in <tool_call> block" in error.message or "JSON object" in error.message
    assert '<tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>' in error.message
    unreadable = parse("<tool_call>get_weather(city='Paris')</tool_call>", "hermes").errors[0]
    assert "invalid JSON in <tool_call> block (Expecting value: line 1 column 1)" in unreadable.message


def test_errors_and_calls_share_the_index() -> None:
    content = (
        '<tool_call>{"name": "a", "arguments": {}}</tool_call>'
        "<tool_call>oops</tool_call>"
        '<tool_call>{"name": "b", "arguments": {}}</tool_call>'
    )
    parsed = parse(content, "hermes", step=9)
    assert [call.id for call in parsed.calls] == ["call_9_0", "call_9_2"]
    assert [error.call_id for error in parsed.errors] == ["call_9_1"]


def test_snippet_is_truncated() -> None:
    parsed = parse("<tool_call>" + "x" * 1000 + "</tool_call>", "hermes")
    assert len(parsed.errors[0].snippet) <= 200


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_json_repair_salvages_trailing_comma(fmt: str) -> None:
    content = {
        "hermes": '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": 2,}}</tool_call>',
        "mistral": '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "days": 2,}},]',
        "llama3": '{"name": "get_weather", "parameters": {"city": "Paris", "days": 2,},}',
        "pythonic": '[get_weather(city="Paris", days=2,),]',  # valid Python already
    }[fmt]
    parsed = parse(content, fmt)
    assert names_args(parsed) == [WEATHER]
    assert parsed.errors == []


def test_arguments_not_an_object_is_an_error() -> None:
    parsed = parse('<tool_call>{"name": "f", "arguments": [1, 2]}</tool_call>')
    assert parsed.calls == [] and "JSON object" in parsed.errors[0].message


# ----------------------------------------------------------------------------- think blocks


def test_strip_think_variants() -> None:
    assert strip_think("<think>a</think>b<think>c</think>d") == "bd"
    assert strip_think("reasoning only</think>\n\nAnswer").strip() == "Answer"
    assert strip_think("Answer<think>never closed") == "Answer"
    assert strip_think("<think>never closed at all") == ""
    assert strip_think("") == ""
    assert strip_think("plain") == "plain"


@pytest.mark.parametrize("fmt", TOOL_FORMATS)
def test_fake_calls_inside_think_are_ignored(fmt: str) -> None:
    fake = SINGLE["hermes"] + SINGLE["mistral"] + SINGLE["pythonic"]
    for content in (
        f"<think>{fake}</think>The answer is 4.",
        f"{fake}</think>The answer is 4.",
        f"The answer is 4.<think>{fake}",
    ):
        parsed = parse(content, fmt)
        assert parsed.calls == [] and parsed.errors == [] and parsed.format is None
        assert parsed.text == "The answer is 4."


def test_think_then_real_call() -> None:
    parsed = parse(f"<think>{SINGLE['pythonic']}</think>\n{SINGLE['hermes']}")
    assert names_args(parsed) == [WEATHER]
    assert parsed.format == "hermes"


# ----------------------------------------------------------------------------- prose stays prose

PROSE = [
    "Call me (maybe) later.",
    "The weather in Paris is sunny (about 21°C).",
    "Use {braces} like {this} in a sentence, or a set {1, 2}.",
    'A dict looks like {"key": "value"}, and that is fine.',
    '{"name": "Ada", "age": 36}',
    "{curly} braces open this sentence, and [square: ones] too.",
    "[{key: value}] is a list holding one mapping.",
    "[citation needed] as they say.",
    "print(x) is how you print in Python.",
    "Sure! Here is an example:\n```python\nprint('hello')\n```",
    "Paris",
    "42",
    "Hello(world",
    "Step 1) do this. Step 2) do that.",
    "Note: see get_weather(city) in the docs.",
    "[the docs](link)",
    "(see above)",
    "Yes.",
    "None",
]


@pytest.mark.parametrize("fmt", TOOL_FORMATS)
@pytest.mark.parametrize("content", PROSE)
def test_prose_yields_no_calls_and_no_errors(content: str, fmt: str) -> None:
    parsed = parse(content, fmt)
    assert parsed.calls == [] and parsed.errors == []
    assert parsed.format is None
    assert parsed.text == content.strip()


# ----------------------------------------------------------------------------- pythonic safety


def test_positional_pythonic_args_are_an_error() -> None:
    parsed = parse('[get_weather("Paris", days=2)]', "pythonic", step=1)
    assert parsed.calls == []
    (error,) = parsed.errors
    assert error.call_id == "call_1_0"
    assert "keyword" in error.message


def test_non_literal_value_is_an_error() -> None:
    parsed = parse("[get_weather(city=open('/etc/passwd').read())]", "pythonic")
    assert parsed.calls == [] and "literal" in parsed.errors[0].message


@pytest.mark.parametrize(
    "content",
    [
        '__import__("os").system("rm -rf /")',
        '[__import__("os").system("touch {marker}")]',
        'get_weather(city=__import__("os").system("touch {marker}"))',
        '(lambda: __import__("os").system("touch {marker}"))()',
        '[x for x in [__import__("os").system("touch {marker}")]]',
        "exec(\"import os; os.system('touch {marker}')\")",
    ],
)
def test_malicious_pythonic_is_never_executed(content: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    parsed = parse(content.replace("{marker}", str(marker)), "pythonic")
    assert not marker.exists()
    assert all(call.name not in {"system", "__import__", "eval"} for call in parsed.calls)
    assert not [call for call in parsed.calls if call.arguments]
    assert os.path.isdir(tmp_path)


# ----------------------------------------------------------------------------- round trip

ROUND_TRIP_CALLS = [
    ToolCall(id="a", name="get_weather", arguments={"city": "São Paulo", "days": 3, "metric": True}),
    ToolCall(
        id="b",
        name="search",
        arguments={"query": 'say "hi"\nnow', "filters": {"tags": ["x", "y"], "max": 1.5}, "cursor": None},
    ),
    ToolCall(id="c", name="noop", arguments={}),
    ToolCall(id="d", name="send", arguments={"from": "me", "first-name": "Ada"}),
]


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("count", [1, len(ROUND_TRIP_CALLS)])
def test_render_then_parse_round_trip(fmt: str, count: int) -> None:
    calls = ROUND_TRIP_CALLS[:count]
    text = render_tool_calls(calls, fmt)  # type: ignore[arg-type]
    parsed = parse_message({"role": "assistant", "content": text}, step=3, tool_format=fmt)  # type: ignore[arg-type]
    assert parsed.errors == []
    assert parsed.format == fmt
    assert [(c.name, c.arguments) for c in parsed.calls] == [(c.name, c.arguments) for c in calls]
    assert [c.id for c in parsed.calls] == [f"call_3_{i}" for i in range(count)]


def test_render_native_is_empty() -> None:
    assert render_tool_calls(ROUND_TRIP_CALLS, "native") == ""


# ----------------------------------------------------------------------------- prompt templates

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "book_table",
            "description": "Book a restaurant table.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
]


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_policy_tool_templates_render(fmt: str) -> None:
    env = Environment(
        loader=FileSystemLoader(str(PROMPTS)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    source = (PROMPTS / f"policy_tools_{fmt}.j2").read_text()
    assert source.startswith("{# inputs: tools #}")
    assert len(source.splitlines()) <= 25
    rendered = env.get_template(f"policy_tools_{fmt}.j2").render(tools=TOOLS)
    assert "get_weather" in rendered and "book_table" in rendered
    assert "inputs:" not in rendered
    marker = {"hermes": "<tool_call>", "mistral": "[TOOL_CALLS]", "llama3": '"parameters"', "pythonic": "(param1="}[fmt]
    assert marker in rendered
    assert env.get_template(f"policy_tools_{fmt}.j2").render(tools=[])  # no tools: still renders


# ----------------------------------------------------------------------------- fuzz-ish: never raises

WEIRD = [
    "",
    None,
    "   \n\t ",
    "<tool_call>",
    "</tool_call>",
    "<tool_call></tool_call>",
    "<tool_call>{</tool_call>",
    "[TOOL_CALLS]",
    "[TOOL_CALLS][",
    "[TOOL_CALLS]f[ARGS]",
    "[TOOL_CALLS][TOOL_CALLS][{]",
    "{",
    "[{",
    '{"name": ',
    "[f(",
    "f(a=",
    "<|python_start|>",
    "<|python_tag|>",
    "<think>",
    "</think>",
    "```",
    "```python\n",
    "[" * 5000,
    "{" * 5000 + '"name"',
    "(" * 5000,
    "<tool_call>" + "[" * 100000 + "</tool_call>",
    '{"name": "f", "parameters": ' + "[" * 100000 + "}",
    "f(a=" + "[" * 100000 + "]" * 100000 + ")",
    '[TOOL_CALLS][{"name": "f", "arguments": ' + '{"a": ' * 3000 + "1" + "}" * 3000 + "}]",
    "x=" + "9" * 10000,
    "f(a=" + "9" * 10000 + ")",
    "\x00<tool_call>\x00</tool_call>",
    "f(a=1)\x00",
    "[1, 2, 3]",
    "[f(a=1), 2]",
    "f(**x)",
    "f(*args)",
    "f(a={1, 2})",
    "f(a=b'x')",
    "f(a=1j)",
    "f(a={1: 2})",
    "🙂" * 100,
]


@pytest.mark.parametrize("fmt", TOOL_FORMATS)
@pytest.mark.parametrize("content", WEIRD, ids=range(len(WEIRD)))
def test_weird_inputs_never_raise(content: str | None, fmt: str) -> None:
    parsed = parse(content, fmt)
    assert isinstance(parsed, ParsedMessage)
    for error in parsed.errors:
        assert error.message and len(error.snippet) <= 200
    json.dumps(parsed.model_dump())  # everything is JSON-serializable


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"role": "assistant"},
        {"role": "assistant", "content": 42},
        {"role": "assistant", "content": [{"type": "text", "text": SINGLE["hermes"]}]},
        {"role": "assistant", "content": None, "tool_calls": ["not a dict"]},
        {"role": "assistant", "content": None, "tool_calls": [{"function": None}]},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": 5}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": ["f"], "arguments": "{}"}}]},
    ],
)
def test_odd_message_shapes_never_raise(message: dict[str, Any]) -> None:
    parsed = parse_message(message, step=0)
    assert isinstance(parsed, ParsedMessage)
    if message.get("tool_calls"):
        assert parsed.calls == [] and len(parsed.errors) == 1
