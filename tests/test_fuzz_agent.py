"""Fuzzing the agent side: whatever a policy sends, the env answers with feedback or a clear TypeError.

Outcomes, by what the policy sends (docs/reliability.md has the table):

* any text (arbitrary Unicode, lone surrogates, tool-call markup fragments, deep nesting): parsed
  without raising; broken calls come back as tool messages, ``info["parse_errors"]`` counts them;
* a message over ``max_message_chars``: not parsed at all; every call id gets feedback naming the cap;
* more than ``max_calls_per_step`` calls: the first are run, the rest answered "not run" naming the cap;
* wrong-typed or unknown arguments, unknown tools: a deterministic tool error naming the problem;
* a step after the episode ended: ``EpisodeStateError`` (a ``gymnasium.error.ResetNeeded``);
* a wrong Python type as the action: ``TypeError`` naming the accepted shapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustee_env.catalog import Catalog
from trustee_env.env import TrusteeToolEnv
from trustee_env.errors import EpisodeStateError
from trustee_env.parsing import parse_message
from trustee_env.testing import FakeLLMServer, ScriptedSimulator

FRAGMENTS = [
    "<tool_call>",
    "</tool_call>",
    "[TOOL_CALLS]",
    "[ARGS]",
    "<|python_tag|>",
    "<|python_start|>",
    "<|python_end|>",
    "<think>",
    "</think>",
    "```python\n",
    "```",
    '{"name": "mock_get_order", "arguments": ',
    '{"order_id": "A-1"}',
    '"parameters": ',
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "=",
    ",",
    '"',
    "mock_cancel_order(",
    "order_id=",
    "**{",
    "\\u0000",
    "\ud800",
    "\x00",
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
TEXT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(categories=["Cs", "Co", "Cc", "Zs", "Lo"]), max_size=100),
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=40).map("".join),
)
TOOL_NAMES = st.sampled_from(["mock_get_order", "mock_cancel_order", "mock_search_products"]) | st.text(max_size=30)


def native(name: Any, arguments: Any, call_id: Any = "c1") -> dict[str, Any]:
    """An assistant message with one native tool call (anything in its fields)."""
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": call_id, "function": {"name": name, "arguments": arguments}}],
    }


@pytest.fixture(scope="module")
def env(mock_catalog: Catalog) -> Iterator[TrusteeToolEnv]:
    """One env on a scripted server for every example (hypothesis runs many per test)."""
    with FakeLLMServer(ScriptedSimulator()) as server:
        environment = TrusteeToolEnv(
            base_url=server.base_url,
            model="fake-model",
            catalog=mock_catalog,
            timeout=10.0,
            aspects={"num_calls": 1, "num_turns": 2, "num_tools": 3, "strictness": 3},
        )
        yield environment
        environment.close()


def _answered(obs: dict[str, Any], message: dict[str, Any]) -> None:
    """Every native call id of ``message`` got a tool message, and the message itself is kept as sent."""
    messages = obs["messages"]
    index = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    replied = {m.get("tool_call_id") for m in messages[index + 1 :] if m["role"] == "tool"}
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict) and isinstance(call.get("id"), str) and call["id"]:
            assert call["id"] in replied


def _step(env: TrusteeToolEnv, action: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    env.reset(seed=1)
    obs, reward, terminated, truncated, info = env.step(action)
    assert isinstance(reward, float) and type(terminated) is bool and type(truncated) is bool
    assert info["sim_fault"] is None and isinstance(info["parse_errors"], int)
    return obs, info


FUZZ = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # no .hypothesis folder in the checkout


@FUZZ
@given(text=TEXT, tool_format=st.sampled_from(["native", "hermes", "llama3", "mistral", "pythonic"]))
def test_parsing_arbitrary_text_never_raises(text: str, tool_format: Any):
    parsed = parse_message({"role": "assistant", "content": text}, step=1, tool_format=tool_format)
    for error in parsed.errors:
        assert error.message and len(error.snippet) <= 200


@FUZZ
@given(text=TEXT)
def test_any_text_action_gets_an_answer(env: TrusteeToolEnv, text: str):
    obs, info = _step(env, text)
    kept = obs["messages"][2]["content"]
    assert kept == text or kept == re.sub("[\ud800-\udfff]", "\ufffd", text)  # as sent, bar unencodable text


@FUZZ
@given(name=TOOL_NAMES, arguments=JSON | st.text(max_size=50), call_id=st.none() | st.text(max_size=10))
def test_any_native_call_gets_feedback(env: TrusteeToolEnv, name: Any, arguments: Any, call_id: Any):
    message = native(name, arguments if isinstance(arguments, str) else json.dumps(arguments), call_id)
    obs, info = _step(env, message)
    _answered(obs, message)
    assert any(m["role"] == "tool" for m in obs["messages"][3:])


@FUZZ
@given(arguments=st.dictionaries(st.text(max_size=12), JSON, max_size=5))
def test_wrong_typed_arguments_become_a_tool_error(env: TrusteeToolEnv, arguments: dict[str, Any]):
    obs, info = _step(env, native("mock_cancel_order", arguments))
    feedback = obs["messages"][3]
    assert feedback["role"] == "tool" and feedback["tool_call_id"] == "c1"
    record = env.episode.records[0]
    if record.status != "ok":
        assert feedback["content"].startswith("Error")


@pytest.mark.parametrize(
    "content",
    [
        "[" * 100_000,
        '{"a":' * 50_000,
        "<tool_call>" + "[" * 50_000 + "</tool_call>",
        "[TOOL_CALLS]" + "{" * 50_000,
        "[f(a=" + "[" * 50_000 + ")]",
        "<tool_call>" * 20_000,
    ],
)
def test_deep_nesting_is_feedback(env: TrusteeToolEnv, content: str):
    obs, info = _step(env, content)
    assert info["parse_errors"] >= 1 or obs["messages"][-1]["role"] == "user"


def test_deeply_nested_native_arguments(env: TrusteeToolEnv):
    nested: Any = "x"
    for _ in range(5000):
        nested = [nested]
    deep_json = '{"order_id": ' + "[" * 5000 + "]" * 5000 + "}"
    obs, info = _step(env, native("mock_cancel_order", deep_json))  # as JSON text: feedback
    assert obs["messages"][3]["content"].startswith("Error")
    env.reset(seed=1)
    with pytest.raises(ValueError, match="nested deeper than 100 levels"):  # as Python objects: the caller's bug
        env.step(native("mock_cancel_order", {"order_id": nested}))
    assert env.step("still usable")[4]["turn"] == 1


def test_a_message_over_the_size_cap_is_not_read(env: TrusteeToolEnv):
    cap = env.config.max_message_chars
    huge = native("mock_cancel_order", json.dumps({"order_id": "A-1", "pad": "x" * cap}))
    obs, info = _step(env, huge)
    assert info["parse_errors"] == 1 and env.episode.records == []
    assert f"max_message_chars={cap}" in obs["messages"][3]["content"]
    assert all(len(line) < 1000 for line in env.episode.transcript)  # the simulators never see it
    obs, info = _step(env, "y" * (cap + 1))
    assert f"max_message_chars={cap}" in obs["messages"][3]["content"]


def test_thousands_of_calls_in_one_message(env: TrusteeToolEnv):
    cap = env.config.max_calls_per_step
    block = '<tool_call>{"name": "mock_get_order", "arguments": {"order_id": "A-1"}}</tool_call>'
    obs, info = _step(env, block * 2000)
    replies = [m for m in obs["messages"][3:] if m["role"] == "tool"]
    assert len(replies) == 2000  # every call answered, once
    assert sum(f"max_calls_per_step={cap}" in m["content"] for m in replies) == 2000 - cap
    assert len(env.episode.records) <= cap


def test_a_step_after_the_end_raises_reset_needed(env: TrusteeToolEnv):
    import gymnasium as gym

    env.reset(seed=1)
    env.finish("test")
    with pytest.raises(EpisodeStateError, match="after the episode ended") as caught:
        env.step("hello")
    assert isinstance(caught.value, gym.error.ResetNeeded)


@pytest.mark.parametrize(
    "action",
    [None, 3, 2.5, b"bytes", ["a"], {"a"}, object(), {"role": "user", "content": "hi"}, {"content": 5}],
)
def test_wrong_python_types_raise_type_error(env: TrusteeToolEnv, action: Any):
    env.reset(seed=1)
    with pytest.raises(TypeError, match="action"):
        env.step(action)
    obs, reward, terminated, truncated, info = env.step("still usable")  # the episode is untouched
    assert info["turn"] == 1
