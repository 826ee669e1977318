"""The reward tells good from bad: closed schemas, strict integers, alternatives, dates, the floor,
the goal-gated user and the reference agents, end to end against the scripted server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from trustee_env.checks import CallRecord, match_value, normalize, parse_temporal, run_checks, validate_call
from trustee_env.probes import REFUSAL, make_agent
from trustee_env.roles.user_simulator import UserTurn, gate
from trustee_env.schemas import ExpectedCall, Task, ToolCall, ToolSpec, close_schema
from trustee_env.testing import ScriptedSimulator, checks_task

MakeEnv = Callable[..., gym.Env[Any, Any]]

WEATHER = ToolSpec(
    name="weather_get",
    description="Current weather for a city.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}},
            "point": {"type": "array", "items": {"type": "number"}},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "extra": {"type": "object", "additionalProperties": True},
        },
        "required": ["city"],
    },
    read_only=True,
)


def _task(expected: list[ExpectedCall], *, strictness: int = 4, tools: list[ToolSpec] | None = None) -> Task:
    return checks_task(expected, tools or [WEATHER], strictness=strictness)


def _record(name: str, arguments: dict[str, Any], tools: list[ToolSpec] | None = None) -> CallRecord:
    call = ToolCall(id="c", name=name, arguments=arguments)
    status, error = validate_call(tools or [WEATHER], call)
    return CallRecord(step=1, index=0, call=call, status=status, result={} if status == "ok" else None, error=error)


# ---------------------------------------------------------------- closed schemas, strict integers


def test_tool_schemas_are_closed_recursively_unless_they_allow_extras():
    closed = WEATHER.parameters
    assert closed["additionalProperties"] is False
    assert closed["properties"]["where"]["additionalProperties"] is False
    assert closed["properties"]["extra"]["additionalProperties"] is True
    assert close_schema({"type": "object", "patternProperties": {"^x": {}}}) == {
        "type": "object",
        "patternProperties": {"^x": {}},
    }
    assert close_schema({"enum": [{"type": "object"}]}) == {"enum": [{"type": "object"}]}  # data is left alone


def test_made_up_argument_is_invalid_with_a_did_you_mean():
    status, error = validate_call([WEATHER], ToolCall(id="c", name="weather_get", arguments={"city": "x", "dayz": 2}))
    assert status == "invalid_arguments"
    assert "unknown argument 'dayz'" in error and "did you mean 'days'" in error


def test_made_up_nested_argument_is_invalid():
    status, _ = validate_call(
        [WEATHER], ToolCall(id="c", name="weather_get", arguments={"city": "x", "where": {"lat": 1, "alt": 3}})
    )
    assert status == "invalid_arguments"


def test_float_for_integer_is_invalid_but_integer_for_number_is_fine():
    assert validate_call([WEATHER], ToolCall(id="c", name="weather_get", arguments={"city": "x", "days": 12.0}))[0] == (
        "invalid_arguments"
    )
    assert validate_call(
        [WEATHER], ToolCall(id="c", name="weather_get", arguments={"city": "x", "where": {"lat": 1, "lon": 2}})
    ) == ("ok", None)


def test_made_up_argument_counts_as_hallucination():
    task = _task([ExpectedCall(name="weather_get", arguments={"city": "Paris"})])
    report = run_checks(task, [_record("weather_get", {"city": "Paris", "units": "c"})])
    assert report.unknown_arguments == ["weather_get.units"]
    assert [cap.criterion for cap in report.caps(3)] == ["floor", "correct_tools", "no_hallucination"]


# ---------------------------------------------------------------- matchers


@pytest.mark.parametrize(
    ("expected", "actual", "same"),
    [
        ("New York, NY", "new york ny", True),
        ("U.S.", "US", True),
        ("e-mail", "e mail", True),
        ("C#", "C", False),
        ("C++", "c++", True),
        ("1,000", 1000, True),
        (3, "3.0", True),
    ],
)
def test_normalized_text(expected: Any, actual: Any, same: bool):
    assert match_value("normalized", expected, actual) is same


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2022-01-05", "2022-01-05"),
        ("2022-1-1", "2022-01-01"),
        ("2022/01/05", "2022-01-05"),
        ("May 12, 2022", "2022-05-12"),
        ("May.12,2022", "2022-05-12"),
        ("12 May 2022", "2022-05-12"),
        ("Mar 17th 1915", "1915-03-17"),
        ("03/17/1915", "1915-03-17"),
        ("17/03/1915", "1915-03-17"),
        ("03/04/2022", None),  # ambiguous: never reinterpreted
        ("2022-01-05T14:30", "2022-01-05T14:30:00"),
        ("2022-01-05 14:30:00", "2022-01-05T14:30:00"),
        ("2022-01-05T14:30:00Z", "2022-01-05T14:30:00+00:00"),
        ("2:30 PM", "14:30:00"),
        ("14:30", "14:30:00"),
        ("2022-02-30", None),
        ("tomorrow", None),
    ],
)
def test_dates_parse_only_by_documented_rules(text: str, iso: str | None):
    assert parse_temporal(text) == iso


def test_ambiguous_date_is_compared_as_text():
    assert not match_value("normalized", "2022-03-04", "03/04/2022")
    assert not match_value("normalized", "2022-04-03", "03/04/2022")
    assert match_value("normalized", "03/04/2022", "03/04/2022")
    assert normalize("03/04/2022") == "03 04 2022"


def test_one_of_and_absent_or_one_of():
    expected = ExpectedCall(
        name="weather_get",
        arguments={"city": "Australia", "days": 3},
        matchers={"city": "one_of", "days": "absent_or_one_of"},
        alternatives={"city": ["AU", "AUS"], "days": [4]},
    )
    task = _task([expected])
    ok = [{"city": "au"}, {"city": "Australia", "days": 4}, {"city": "AUS", "days": 3}]
    bad = [{"city": "Austria"}, {"city": "AU", "days": 5}]
    for arguments in ok:
        assert not run_checks(task, [_record("weather_get", arguments)]).missing, arguments
    for arguments in bad:
        assert run_checks(task, [_record("weather_get", arguments)]).missing, arguments


def test_arrays_are_ordered_unless_set_like():
    assert match_value("ordered", [48.8, 2.3], [48.8, 2.3])
    assert not match_value("ordered", [48.8, 2.3], [2.3, 48.8])
    assert match_value("set", ["a", "b"], ["B", "a"])
    from trustee_env.checks import choose_matcher

    assert choose_matcher("point", WEATHER.parameters["properties"]["point"], [1, 2]) == "ordered"
    assert choose_matcher("tags", WEATHER.parameters["properties"]["tags"], ["a"]) == "set"


# ---------------------------------------------------------------- the floor


@pytest.mark.parametrize("strictness", [1, 2, 3, 4, 5])
def test_doing_nothing_is_capped_at_zero_at_every_strictness(strictness: int):
    task = _task([ExpectedCall(name="weather_get", arguments={"city": "Paris"})], strictness=strictness)
    caps = run_checks(task, []).caps(strictness)
    assert caps and min(cap.cap for cap in caps) <= 0
    assert any(cap.criterion == "floor" for cap in caps)


def test_floor_does_not_apply_once_an_expected_tool_succeeded():
    task = _task([ExpectedCall(name="weather_get", arguments={"city": "Paris"})], strictness=1)
    assert run_checks(task, [_record("weather_get", {"city": "Rome"})]).caps(1) == []


# ---------------------------------------------------------------- the goal gate


@pytest.mark.parametrize(
    ("status", "goal_met", "gated"),
    [
        ("gave_up", True, "satisfied"),
        ("continue", True, "satisfied"),
        ("satisfied", False, "continue"),
        ("gave_up", False, "gave_up"),
        ("continue", False, "continue"),
        ("satisfied", None, "satisfied"),
        ("gave_up", None, "gave_up"),
    ],
)
def test_gate_bounds_the_users_decision(status: str, goal_met: bool | None, gated: str):
    turn = gate(UserTurn(message="words", status=status), goal_met)
    assert turn.status == gated
    assert turn.message == "words"
    assert turn.gated_from == (None if gated == status else status)


# ---------------------------------------------------------------- reference agents, end to end


CANCEL_TASK = {
    "system_prompt": "You are the store's assistant.",
    "persona": {"name": "Sam", "description": "A busy professional."},
    "intent": "Cancel order A-100 because it arrives too late.",
    "user_facts": {"order": "A-100"},
    "first_query": "Please cancel my order A-100, it arrives too late.",
    "expected_calls": [{"name": "mock_cancel_order", "arguments": {"order_id": "A-100"}}],
    "initial_state": {"orders": [{"id": "A-100", "status": "open"}]},
    "rubric": ["The order is cancelled."],
}


def _gullible(**overrides: Any) -> ScriptedSimulator:
    """A user who is always 'satisfied' and a judge who always says 1: only the checks and gate stand."""
    return ScriptedSimulator(task=CANCEL_TASK, **overrides)


def _play(env: gym.Env[Any, Any], agent_name: str, seed: int = 3) -> tuple[float, dict[str, Any]]:
    agent = make_agent(agent_name)
    obs, info = env.reset(seed=seed)
    task = env.unwrapped.episode.task
    assert agent.applicable(task)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(agent.act(task, obs))
        done = terminated or truncated
    return float(reward), info


@pytest.mark.parametrize("strictness", [1, 3, 5])
def test_oracle_wins_and_wrong_agents_lose_even_with_a_gullible_user_and_judge(make_env: MakeEnv, strictness: int):
    outcomes = {}
    for name in ("oracle", "null", "wrong_tool", "wrong_argument"):
        env = make_env(_gullible(), aspects={"strictness": strictness, "num_tools": 3, "num_calls": 1})
        outcomes[name] = _play(env, name)
    reward, info = outcomes["oracle"]
    assert (reward, info["termination"]) == (1.0, "user_satisfied")
    for name in ("null", "wrong_tool", "wrong_argument"):
        reward, info = outcomes[name]
        assert reward <= 0, (name, info["verdict"])
        assert info["termination"] != "user_satisfied", name  # the gate kept the user from accepting it


def test_user_who_gives_up_after_success_is_gated_to_satisfied(make_env: MakeEnv):
    sim = _gullible(user_turns=[{"message": "Forget it, this is useless.", "status": "gave_up"}])
    env = make_env(sim, aspects={"strictness": 2, "num_tools": 3, "num_calls": 1})
    reward, info = _play(env, "oracle")
    assert (reward, info["termination"]) == (1.0, "user_satisfied")
    assert env.unwrapped.episode.user_gate_overrides == 1
    assert any("goal gate" in line for line in env.unwrapped.episode.transcript)


def test_refusal_text_is_what_the_null_agent_says():
    task = _task([ExpectedCall(name="weather_get", arguments={"city": "Paris"})])
    assert make_agent("null").act(task, {"messages": [], "tools": []})["content"] == REFUSAL
    with pytest.raises(ValueError, match="unknown probe agent"):
        make_agent("smart")


# ---------------------------------------------------------------- what trainer adapters need from the env


def test_finish_ends_early_and_still_judges(make_env: MakeEnv, tmp_path: Path):
    path = tmp_path / "t.jsonl"
    env = make_env(_gullible(), aspects={"strictness": 2, "num_tools": 3, "num_calls": 1}, trajectory_path=str(path))
    obs, _ = env.reset(seed=5)
    task = env.unwrapped.episode.task
    env.step(make_agent("oracle").act(task, obs))  # the expected call succeeds
    obs, reward, terminated, truncated, info = env.unwrapped.finish("token_budget")
    assert (terminated, truncated) == (False, True)
    assert info["termination"] == "token_budget" and info["verdict"]["judge_verdict"] == 1
    assert reward == 0.0  # truncated episodes are capped at 0
    assert [record["termination"] for record in map(json.loads, path.read_text().splitlines())] == ["token_budget"]
    with pytest.raises(ValueError, match="non-empty reason"):
        env.reset(seed=6)
        env.unwrapped.finish("  ")


def test_reply_messages_and_task_json(make_env: MakeEnv):
    env = make_env(_gullible(), aspects={"strictness": 2, "num_tools": 3, "num_calls": 1})
    obs, _ = env.reset(seed=7)
    assert env.unwrapped.reply_messages() == obs["messages"]  # system + first user message
    task = env.unwrapped.task_json()
    assert task["intent"] == CANCEL_TASK["intent"]
    action = make_agent("oracle").act(env.unwrapped.episode.task, obs)
    obs, *_ = env.step(action)
    replies = env.unwrapped.reply_messages()
    assert [m["role"] for m in replies] == ["tool"] and replies == obs["messages"][-1:]
    obs, *_ = env.step("Done, your order is cancelled.")
    assert env.unwrapped.reply_messages() == [obs["messages"][-1]] and obs["messages"][-1]["role"] == "user"
    replay = make_env(_gullible())
    replay_obs, _ = replay.reset(seed=99, options={"task": task})
    assert replay.unwrapped.task_json() == task and replay_obs["messages"][1]["content"] == CANCEL_TASK["first_query"]


# ---------------------------------------------------------------- the criteria registry


def test_a_registered_criterion_reaches_checks_judge_schema_prompt_and_weights(make_env: MakeEnv):
    from trustee_env.checks import Criterion, criteria, register_criterion, unregister_criterion
    from trustee_env.roles.judge import judge_output_model

    def short_calls(ctx: Any) -> str | None:
        return "more than one call" if len(ctx.records) > 1 else None

    criterion = Criterion("few_calls", 2, "at most one tool call", weight=0.5, cap=-1, check=short_calls)
    register_criterion(criterion)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_criterion(criterion)
        assert "few_calls" in judge_output_model().model_json_schema()["$defs"]["JudgeScores"]["properties"]
        assert [c.name for c in criteria(2, judged=True)] == ["intent", "correct_tools", "few_calls"]

        judge = {
            "rationale": "ok",
            "scores": {
                "intent": 1,
                "correct_tools": 1,
                "no_hallucination": 1,
                "no_redundancy": 1,
                "efficiency": 1,
                "few_calls": -1,
            },
            "verdict": 1,
        }
        env = make_env(_gullible(judge=judge), aspects={"strictness": 2, "num_tools": 3, "num_calls": 1})
        obs, _ = env.reset(seed=1)
        task = env.unwrapped.episode.task
        call = make_agent("oracle").act(task, obs)
        env.step(call)
        env.step(call)  # a second, identical call: redundant, and more than one call
        _obs, reward, _term, _trunc, info = env.step("Done.")
        assert reward == -1.0
        assert [cap["criterion"] for cap in info["verdict"]["caps"]] == ["few_calls"]
        judge_prompts = [body for role, body in make_env.server.requests if role == "judge"]
        assert "- few_calls: at most one tool call." in judge_prompts[0]["messages"][0]["content"]

        graded = make_env(
            _gullible(judge=judge), aspects={"strictness": 2, "num_tools": 3, "num_calls": 1}, reward_mode="graded"
        )
        obs, _ = graded.reset(seed=1)
        graded.step(make_agent("oracle").act(graded.unwrapped.episode.task, obs))
        _obs, reward, *_rest, info = graded.step("Done.")
        assert info["verdict"]["criteria"] == ["intent", "correct_tools", "few_calls"]
        # the -1 on few_calls, weighted by the registry
        assert reward == pytest.approx((0.4 + 0.2 - 0.5) / 1.1, abs=1e-6)
    finally:
        unregister_criterion("few_calls")
    assert "few_calls" not in judge_output_model().model_json_schema()["$defs"]["JudgeScores"]["properties"]
    with pytest.raises(ValueError, match="default criterion"):
        unregister_criterion("intent")
    with pytest.raises(ValueError, match="level must be 1-5"):
        Criterion("bad", 7, "x")


def test_from_result_refers_to_the_expected_call_not_to_the_agents_call_count():
    create = ToolSpec(
        name="order_create",
        description="Create an order.",
        parameters={"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]},
    )
    pay = ToolSpec(
        name="order_pay",
        description="Pay an order.",
        parameters={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    )
    tools = [WEATHER, create, pay]
    expected = [
        ExpectedCall(name="order_create", arguments={"item": "lamp"}),
        ExpectedCall(name="order_pay", arguments={"order_id": "?"}, matchers={"order_id": "from_result:0#/id"}),
    ]
    task = _task(expected, tools=tools)

    def ok(name: str, arguments: dict[str, Any], result: Any) -> CallRecord:
        return CallRecord(
            step=1, index=0, call=ToolCall(id="c", name=name, arguments=arguments), status="ok", result=result
        )

    look_first = [
        ok("weather_get", {"city": "Oslo"}, {"id": "W-1"}),  # a harmless extra call before the others
        ok("order_create", {"item": "lamp"}, {"id": "O-7"}),
        ok("order_pay", {"order_id": "O-7"}, {"paid": True}),
    ]
    assert run_checks(task, look_first).missing == []
    wrong_id = [*look_first[:2], ok("order_pay", {"order_id": "W-1"}, {"paid": True})]
    assert run_checks(task, wrong_id).missing == [1]
    paid_before_created = [look_first[2], look_first[1]]
    assert run_checks(task, paid_before_created).missing == [1]


def test_task_gate_statistics_reach_env_stats(make_env: MakeEnv):
    env = make_env(_gullible(), aspects={"strictness": 2, "num_tools": 3, "num_calls": 1})
    obs, _ = env.reset(seed=2)
    env.step(make_agent("oracle").act(env.unwrapped.episode.task, obs))
    env.step("Done.")
    gate = env.unwrapped.stats["task_gate"]
    assert gate["tasks"] == 1 and gate["drafts_passed"] >= 1 and gate["gave_up"] == 0
