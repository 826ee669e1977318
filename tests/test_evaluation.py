"""Evaluation on a held-out bank (trustee_env.evaluation): an endpoint policy against the scripted simulator."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from trustee_env.bank import TaskBank, build_bank
from trustee_env.catalog import Catalog
from trustee_env.evaluation import bootstrap_ci, evaluate_endpoint
from trustee_env.testing import FakeLLMServer, Reply, ScriptedSimulator


def _oracle(request: dict[str, Any]) -> Reply:
    """Calls the first offered tool with the arguments the scripted user states, then says it is done."""
    messages = request["messages"]
    if messages[-1]["role"] != "user" or len(messages) > 2:
        return Reply(content="Done: I called the tool for you.")
    tools = re.findall(r'"name": "([^"]+)"', messages[0]["content"].split("<tools>")[1].split("</tools>")[0])
    arguments = json.loads(messages[-1]["content"].split("Details: ", 1)[1])[0]
    call = json.dumps({"name": tools[0], "arguments": arguments})
    return Reply(content=f"<tool_call>\n{call}\n</tool_call>")


def _refuser(request: dict[str, Any]) -> Reply:
    return Reply(content="Sorry, I cannot help with that.")


@pytest.fixture
def bank(fake_server: Callable[..., FakeLLMServer], mock_catalog: Catalog) -> TaskBank:
    server = fake_server(ScriptedSimulator())
    return build_bank(3, seed=11, difficulties=(1, 30), base_url=server.base_url, catalog=mock_catalog, timeout=10.0)


@pytest.mark.parametrize(("policy", "expected"), [(_oracle, 1.0), (_refuser, 0.0)])
def test_endpoint_policy_is_scored_on_the_bank(
    bank: TaskBank, fake_server: Callable[..., FakeLLMServer], mock_catalog: Catalog, policy: Any, expected: float
):
    server = fake_server(ScriptedSimulator(policy=policy))
    seen: list[int] = []
    report = evaluate_endpoint(
        bank,
        repeats=2,
        concurrency=3,
        on_episode=lambda: seen.append(1),
        base_url=server.base_url,
        catalog=mock_catalog,
        timeout=10.0,
        tool_format="hermes",
        reward_mode="checks",
        max_steps=2,
    )
    assert (report.tasks, report.repeats, report.episodes, report.sim_faults) == (3, 2, 6, 0)
    assert len(seen) == 6
    assert report.reward.mean == expected and report.reward.n == 6
    assert report.success.mean == (1.0 if expected > 0 else 0.0)
    assert report.valid_call_rate == (1.0 if expected > 0 else 0.0)
    assert report.per_criterion["correct_tools"] == (1.0 if expected > 0 else 0.0)
    assert report.bank_id == bank.bank_id
    assert sum(e.n for e in report.per_difficulty.values()) == 6
    assert "task_generator" not in server.roles()  # the bank's tasks were replayed, none generated


def test_bootstrap_interval():
    assert bootstrap_ci([]).mean is None and str(bootstrap_ci([])) == "n/a (n=0)"
    assert bootstrap_ci([1.0] * 5).ci95 == (1.0, 1.0)
    estimate = bootstrap_ci([0.0, 1.0] * 20)
    assert estimate.mean == 0.5
    low, high = estimate.ci95 or (0, 0)
    assert 0.3 < low < 0.5 < high < 0.7
    assert bootstrap_ci([0.0, 1.0] * 20, seed=1).ci95 != bootstrap_ci([0.0, 1.0] * 200, seed=1).ci95
