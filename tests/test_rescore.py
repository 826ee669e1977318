"""Recorded trajectories can be judged again by another judge, under the same deterministic caps."""

from __future__ import annotations

import json

import pytest

from trustee_env.errors import ConfigError
from trustee_env.rescore import rescore
from trustee_env.testing import ScriptedSimulator
from trustee_env.trajectory import read_trajectories

HARSH = {
    "rationale": "Not solved.",
    "scores": {"intent": -1, "correct_tools": -1, "no_hallucination": 1, "no_redundancy": 1, "efficiency": 0},
    "verdict": -1,
}


def _record_one(make_env, tmp_path, **kwargs):
    path = tmp_path / "traj.jsonl"
    env = make_env(ScriptedSimulator(), trajectory_path=str(path), aspects={"num_calls": 1, "strictness": 2}, **kwargs)
    obs, info = env.reset(seed=3)
    tool = obs["tools"][0]["function"]["name"]
    task_args = json.loads(obs["messages"][1]["content"].split("Details: ", 1)[1])[0]
    call = {"id": "c1", "type": "function", "function": {"name": tool, "arguments": json.dumps(task_args)}}
    env.step({"role": "assistant", "content": "", "tool_calls": [call]})
    _, reward, *_ = env.step("All done.")
    return next(iter(read_trajectories(path))), reward, make_env.server


def test_rescore_with_another_judge(make_env, fake_server, tmp_path) -> None:
    record, reward, _ = _record_one(make_env, tmp_path)
    harsh = fake_server(ScriptedSimulator(judge=HARSH))
    verdict = rescore(record, base_url=harsh.base_url, model="fake-model")
    assert verdict.judge_verdict == -1 and verdict.reward == -1.0
    assert harsh.roles() == ["judge"]  # only the judge was asked
    same = rescore(record, base_url=fake_server().base_url, model="fake-model")
    assert same.reward == record.reward == reward


def test_rescore_keeps_the_deterministic_caps(make_env, fake_server, tmp_path) -> None:
    record, _, _ = _record_one(make_env, tmp_path)
    record.calls = []  # as if the expected call had never been made
    verdict = rescore(record, base_url=fake_server().base_url, model="fake-model")
    assert verdict.judge_verdict == 1 and verdict.reward == 0.0
    assert [cap.criterion for cap in verdict.caps] == ["floor", "correct_tools"]


def test_faulted_trajectory_cannot_be_rescored(fake_server) -> None:
    with pytest.raises(ConfigError, match="nothing to re-score"):
        rescore({"task": None, "sim_fault": {"role": "tool"}}, base_url=fake_server().base_url)


def test_old_untyped_lines_still_read_and_dict_access_is_deprecated(tmp_path) -> None:
    from trustee_env.trajectory import TornLineWarning, Trajectory

    path = tmp_path / "old.jsonl"
    path.write_text(
        '{"seed": 3, "reward": 1.0, "termination": "user_satisfied", "messages": [], "sim_fault": null}\n'
        '{"seed": 4, "reward": 0.0, "sim_fault": {"role": "tool", "reason": "timeout", "attempts": 3}}\n'
        '{"seed": 5, "rew'  # a torn last line from a crash
    )
    with pytest.warns(TornLineWarning, match="old.jsonl:3: skipped an unreadable line"):
        first, second = read_trajectories(path)
    assert isinstance(first, Trajectory) and first.schema_version == 1 and first.reward == 1.0
    assert second.sim_fault is not None and second.sim_fault.reason == "timeout" and not second.success
    with pytest.warns(DeprecationWarning, match="attribute access"):
        assert first["seed"] == 3


def _append_many(path: str, worker: int) -> None:
    from trustee_env.trajectory import Trajectory, append_trajectory

    for index in range(50):
        append_trajectory(path, Trajectory(seed=worker * 1000 + index, transcript=["x" * 20000]))


def test_appends_from_several_processes_never_interleave(tmp_path) -> None:
    import multiprocessing

    path = str(tmp_path / "shared.jsonl")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(path, w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    seeds = sorted(record.seed for record in read_trajectories(path))
    assert seeds == sorted(w * 1000 + i for w in range(3) for i in range(50))
