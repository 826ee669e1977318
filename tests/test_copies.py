"""What the env hands out is the caller's own copy: editing it never changes the catalog or later steps.

The observation's messages and tools, ``reply_messages()`` and the final ``world_state`` are copied cheaply
(``json_copy``, a per-task tools JSON) instead of with ``copy.deepcopy``; these tests pin that the copies
are still full, independent copies, and that ``goal_met`` (matching only) agrees with ``run_checks``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from trustee_env.checks import run_checks
from trustee_env.parsing import render_tool_calls
from trustee_env.schemas import ToolCall, ToolSpec, json_copy
from trustee_env.testing import ScriptedSimulator


def test_json_copy_is_a_full_independent_copy() -> None:
    value: dict[str, Any] = {"a": [1, {"b": "x", "c": [None, 2.5, True]}], "d": {"e": {}}, "t": (1, [2])}
    copied = json_copy(value)
    assert copied == value
    copied["a"][1]["c"].append("new")
    copied["d"]["e"]["k"] = 1
    copied["t"][1].append(3)
    assert value == {"a": [1, {"b": "x", "c": [None, 2.5, True]}], "d": {"e": {}}, "t": (1, [2])}


def test_tool_spec_to_openai_does_not_leak_its_parameters() -> None:
    spec = ToolSpec(
        name="f", description="A tool.", parameters={"type": "object", "properties": {"q": {"type": "string"}}}
    )
    before = copy.deepcopy(spec.parameters)
    spec.to_openai()["function"]["parameters"]["properties"]["q"]["type"] = "integer"
    assert spec.parameters == before


@pytest.mark.parametrize("mutate", ["tools", "messages"])
def test_editing_an_observation_changes_nothing_shared(make_env: Any, mock_catalog: Any, mutate: str) -> None:
    env = make_env(ScriptedSimulator(), aspects={"num_tools": 3, "num_calls": 1, "num_turns": 1})
    catalog_before = [copy.deepcopy(tool.parameters) for tool in mock_catalog.tools]
    obs, _ = env.reset(seed=1)
    first = copy.deepcopy(obs)
    if mutate == "tools":
        for tool in obs["tools"]:
            tool["function"]["parameters"]["properties"]["injected"] = {"type": "string"}
            tool["function"]["parameters"].setdefault("required", []).append("injected")
    else:
        obs["messages"][0]["content"] = "edited"
        obs["messages"].append({"role": "user", "content": "extra"})
    assert [tool.parameters for tool in mock_catalog.tools] == catalog_before
    assert [tool.to_openai() for tool in env.unwrapped.episode.task.tools] == first["tools"]
    obs2, *_ = env.step("Could you tell me more?")
    assert obs2["tools"] == first["tools"]
    assert obs2["messages"][: len(first["messages"])] == first["messages"]
    assert obs2["tools"] is not obs["tools"]


def test_goal_met_agrees_with_run_checks(make_env: Any) -> None:
    env = make_env(ScriptedSimulator(), aspects={"num_tools": 3, "num_calls": 1, "num_turns": 1})
    obs, _ = env.reset(seed=3)
    episode = env.unwrapped.episode
    assert episode.goal_met() is False
    assert episode.goal_met() == (not run_checks(episode.task, episode.records).missing)
    expected = episode.task.expected_calls[0]
    env.step(render_tool_calls([ToolCall(id="c1", name=expected.name, arguments=expected.arguments)], "hermes"))
    assert episode.goal_met() is True
    assert episode.goal_met() == (not run_checks(episode.task, episode.records).missing)
