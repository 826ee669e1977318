"""The vector env (``gym.make_vec("Trustee-v0", num_envs=N, group_size=G)``) against the scripted fake server.

The agent's words drive a small script: ``XFINISHX`` makes the simulated user satisfied (the
episode terminates), ``XGOODX`` makes the judge award 1 (else -1), ``XBREAKX`` makes the user
simulator fail (a sim fault). The agent makes no tool call, so the floor caps every reward at 0:
``XGOODX`` episodes end at 0 and the others at -1. These tests are about batching, so the user's
goal gate is off (the scripted user decides alone). Nothing here asserts on wall time.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import trustee_env  # noqa: F401  (registers Trustee-v0)
from trustee_env.catalog import Catalog
from trustee_env.errors import ConfigError, EpisodeStateError, LLMError
from trustee_env.schemas import derive_seed
from trustee_env.spaces import ChatAction, ChatObservation
from trustee_env.testing import FakeLLMServer, Reply, ScriptedSimulator
from trustee_env.trajectory import read_trajectories
from trustee_env.vector import TrusteeVectorEnv

FINISH, GOOD, BREAK = "XFINISHX", "XGOODX", "XBREAKX"
MORE = "Could you tell me more about what you need?"
SCORES = {"intent": 1, "correct_tools": 1, "no_hallucination": 1, "no_redundancy": 1, "efficiency": 1}


class GroupScript:
    """Scripted roles for vector tests, recording how many requests were in flight at once.

    Args:
        fail_task_seeds: task-generator request seeds answered with HTTP 503.
        user_delay_s: how long each user answer takes (to let concurrent requests overlap).
    """

    def __init__(self, *, fail_task_seeds: tuple[int, ...] = (), user_delay_s: float = 0.0) -> None:
        self.base = ScriptedSimulator()
        self.fail_task_seeds = set(fail_task_seeds)
        self.user_delay_s = user_delay_s
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def __call__(self, role: str, request: dict[str, Any]) -> Reply | str | dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._answer(role, request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _answer(self, role: str, request: dict[str, Any]) -> Reply | str | dict[str, Any]:
        prompt = "\n".join(str(message.get("content", "")) for message in request["messages"])
        if role == "task_generator":
            if request.get("seed") in self.fail_task_seeds:
                return Reply(status=503)
            draft = self.base(role, request)
            assert isinstance(draft, dict)
            draft["first_query"] += f" (ref {request['seed']})"  # every generated task is different
            return draft
        if role == "user":
            if self.user_delay_s:
                time.sleep(self.user_delay_s)
            if BREAK in prompt:
                return Reply(status=503)
            if FINISH in prompt:
                return {"message": "Thanks, that is all I needed.", "status": "satisfied"}
            return {"message": "Please go on.", "status": "continue"}
        if role == "judge":
            return {"rationale": "scripted", "scores": SCORES, "verdict": 1 if GOOD in prompt else -1}
        return self.base(role, request)


@pytest.fixture
def make_vec(
    fake_server: Callable[..., FakeLLMServer], mock_catalog: Catalog
) -> Iterator[Callable[..., TrusteeVectorEnv]]:
    """Factory: ``make_vec(num_envs, group_size=1, handler=None, **kwargs)``; the server is ``venv.server``."""
    envs: list[Any] = []

    def make(num_envs: int, group_size: int = 1, handler: Any = None, **kwargs: Any) -> TrusteeVectorEnv:
        script = handler if handler is not None else GroupScript()
        server = fake_server(script)
        kwargs.setdefault("catalog", mock_catalog)
        kwargs.setdefault("timeout", 10.0)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("max_steps", 6)
        kwargs.setdefault("aspects", {"strictness": 1, "num_turns": 1})
        kwargs.setdefault("user_goal_gate", False)
        venv = gym.make_vec("Trustee-v0", num_envs=num_envs, group_size=group_size, base_url=server.base_url, **kwargs)
        venv.server = server  # type: ignore[attr-defined]
        venv.script = script  # type: ignore[attr-defined]
        envs.append(venv)
        return venv

    yield make
    for venv in envs:
        venv.close()


def count(server: FakeLLMServer, role: str) -> int:
    return server.roles().count(role)


# ----------------------------------------------------------------------------- construction and spaces


def test_make_vec_returns_the_vector_env_with_spaces(make_vec: Callable[..., TrusteeVectorEnv]) -> None:
    venv = make_vec(4, group_size=2)
    assert isinstance(venv, TrusteeVectorEnv)
    assert venv.num_envs == 4 and venv.group_size == 2 and venv.num_groups == 2
    assert venv.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert venv.single_observation_space == ChatObservation()
    assert venv.single_action_space == ChatAction()
    assert isinstance(venv.observation_space, gym.spaces.Tuple) and len(venv.observation_space) == 4
    assert isinstance(venv.action_space, gym.spaces.Tuple) and len(venv.action_space) == 4
    assert venv.spec is not None and venv.spec.id == "Trustee-v0"
    assert venv.spec.kwargs["num_envs"] == 4

    obs, infos = venv.reset(seed=3)
    assert isinstance(obs, tuple) and len(obs) == 4
    assert all(venv.single_observation_space.contains(o) for o in obs)
    assert venv.observation_space.contains(obs)
    assert [m["role"] for m in obs[0]["messages"]] == ["system", "user"]
    assert infos["_task_id"].all() and infos["_group_id"].all()

    actions = venv.action_space.sample()
    assert venv.action_space.contains(actions)
    obs, rewards, terminations, truncations, infos = venv.step(actions)
    assert rewards.dtype == np.float64 and rewards.shape == (4,)
    assert terminations.dtype == np.bool_ and truncations.dtype == np.bool_
    assert venv.observation_space.contains(obs)
    assert infos["turn"].tolist() == [1, 1, 1, 1] and infos["_turn"].all()
    texts = venv.render()
    assert isinstance(texts, tuple) and len(texts) == 4 and all(isinstance(t, str) for t in texts)


def test_group_size_must_divide_num_envs() -> None:
    with pytest.raises(ConfigError, match="multiple of group_size"):
        gym.make_vec("Trustee-v0", num_envs=6, group_size=4, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError):
        TrusteeVectorEnv(num_envs=0, base_url="http://127.0.0.1:9/v1")


def test_bad_actions_and_step_before_reset(make_vec: Callable[..., TrusteeVectorEnv]) -> None:
    venv = make_vec(2)
    with pytest.raises(EpisodeStateError):
        venv.step([MORE, MORE])
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="expected 2 actions"):
        venv.step([MORE])
    with pytest.raises(TypeError):
        venv.step(MORE)
    with pytest.raises(ValueError, match="unknown reset option"):
        venv.reset(options={"reset_mask": np.ones(2, dtype=bool)})


# ----------------------------------------------------------------------------- concurrency


def test_sub_envs_step_concurrently(make_vec: Callable[..., TrusteeVectorEnv]) -> None:
    script = GroupScript(user_delay_s=0.1)
    venv = make_vec(8, handler=script)
    venv.reset(seed=1)
    script.max_in_flight = 0
    venv.step([MORE] * 8)
    assert count(venv.server, "user") == 8
    assert script.max_in_flight >= 2  # the 8 user requests overlapped on the server


# ----------------------------------------------------------------------------- autoreset and info masks


def test_autoreset_next_step_ignores_the_action_and_returns_a_fresh_episode(
    make_vec: Callable[..., TrusteeVectorEnv],
) -> None:
    venv = make_vec(4, group_size=2)
    obs, infos = venv.reset(seed=5)
    first_group_ids = infos["group_id"].tolist()

    obs, rewards, terminations, truncations, infos = venv.step([FINISH, MORE, MORE, MORE])
    assert terminations.tolist() == [True, False, False, False]
    assert truncations.tolist() == [False, False, False, False]
    assert infos["_termination"].tolist() == [True, False, False, False]
    assert infos["termination"][0] == "user_satisfied"
    assert infos["_verdict"].tolist() == [True, False, False, False]
    assert infos["_task"].tolist() == [True, False, False, False]
    assert infos["task"][0]["task_id"] == infos["task_id"][0]
    assert "group_zero_variance" not in infos  # slot 1 of the group is still playing
    assert infos["_turn"].all() and infos["_group_id"].all()
    assert infos["group_id"].tolist() == first_group_ids

    # the ended slot's action is ignored (None); its next observation starts a new episode
    obs, rewards, terminations, truncations, infos = venv.step([None, MORE, MORE, MORE])
    assert [m["role"] for m in obs[0]["messages"]] == ["system", "user"]
    assert rewards[0] == 0.0 and not terminations[0] and not truncations[0]
    assert infos["turn"][0] == 0 and infos["turn"].tolist()[1:] == [2, 2, 2]
    assert "termination" not in infos and "_termination" not in infos
    assert infos["group_id"][0] != first_group_ids[0]  # round 1 of block 0
    assert len(obs[1]["messages"]) > len(obs[0]["messages"])

    # a non-None action for a resetting slot is ignored too
    obs, rewards, terminations, truncations, infos = venv.step([FINISH, FINISH, MORE, MORE])
    assert terminations.tolist() == [True, True, False, False]
    obs, rewards, terminations, truncations, infos = venv.step([f"{FINISH} ignored", None, MORE, MORE])
    assert infos["turn"].tolist() == [0, 0, 4, 4]
    assert not terminations.any() and not truncations.any()


def test_members_share_the_task_and_other_blocks_differ(make_vec: Callable[..., TrusteeVectorEnv]) -> None:
    venv = make_vec(6, group_size=3)
    obs, infos = venv.reset(seed=11)
    assert count(venv.server, "task_generator") == 2  # one task per group, not per member
    task_ids, group_ids = infos["task_id"].tolist(), infos["group_id"].tolist()
    assert len(set(task_ids[:3])) == 1 and len(set(task_ids[3:])) == 1 and task_ids[0] != task_ids[3]
    assert len(set(group_ids[:3])) == 1 and len(set(group_ids[3:])) == 1 and group_ids[0] != group_ids[3]
    assert obs[0]["messages"] == obs[1]["messages"] == obs[2]["messages"]
    assert obs[3]["messages"] == obs[4]["messages"] == obs[5]["messages"]
    assert obs[0]["messages"][1] != obs[3]["messages"][1]
    assert obs[0]["tools"] == obs[2]["tools"]

    # members sample independently: every user request carries its own seed
    venv.step([MORE] * 6)
    user_seeds = [body["seed"] for role, body in venv.server.requests if role == "user"]
    assert len(set(user_seeds)) == 6

    # same reset seed, same tasks
    _, again_infos = venv.reset(seed=11)
    assert again_infos["task_id"].tolist() == task_ids and again_infos["group_id"].tolist() == group_ids
    _, other_infos = venv.reset(seed=12)
    assert other_infos["group_id"].tolist() != group_ids


def test_members_need_not_start_a_round_together(make_vec: Callable[..., TrusteeVectorEnv]) -> None:
    venv = make_vec(2, group_size=2)
    venv.reset(seed=21)
    assert count(venv.server, "task_generator") == 1
    _, _, terminations, _, _ = venv.step([FINISH, MORE])
    assert terminations.tolist() == [True, False]
    obs, _, _, _, infos = venv.step([None, MORE])  # slot 0 starts round 1 alone: the task is generated now
    assert count(venv.server, "task_generator") == 2
    round_one_task, round_one_group = infos["task_id"][0], infos["group_id"][0]
    first_query = obs[0]["messages"][1]
    _, _, terminations, _, infos = venv.step([MORE, FINISH])
    assert terminations.tolist() == [False, True]
    obs, _, _, _, infos = venv.step([MORE, None])  # slot 1 joins round 1 one step later: same task, no new call
    assert count(venv.server, "task_generator") == 2
    assert infos["task_id"][1] == round_one_task and infos["group_id"][1] == round_one_group
    assert obs[1]["messages"][1] == first_query


def test_group_zero_variance_is_reported_once_by_the_last_finisher(
    make_vec: Callable[..., TrusteeVectorEnv],
) -> None:
    venv = make_vec(4, group_size=2)
    venv.reset(seed=8)
    reports: list[tuple[int, int, bool, list[Any]]] = []

    def collect(step: int, infos: dict[str, Any]) -> None:
        if "group_zero_variance" in infos:
            for slot in np.flatnonzero(infos["_group_zero_variance"]):
                assert infos["_group_rewards"][slot]
                reports.append(
                    (step, int(slot), bool(infos["group_zero_variance"][slot]), infos["group_rewards"][slot])
                )

    # block 1 finishes together (both reward -1); block 0 finishes over two steps (rewards 0, then -1)
    _, rewards, terminations, _, infos = venv.step([f"{FINISH} {GOOD}", MORE, FINISH, FINISH])
    assert rewards.tolist() == [0.0, 0.0, -1.0, -1.0] and terminations.tolist() == [True, False, True, True]
    collect(1, infos)
    _, rewards, terminations, _, infos = venv.step([None, FINISH, None, None])
    assert rewards.tolist() == [0.0, -1.0, 0.0, 0.0] and terminations.tolist() == [False, True, False, False]
    collect(2, infos)
    assert reports == [(1, 3, True, [-1.0, -1.0]), (2, 1, False, [0.0, -1.0])]
    assert venv.stats["groups"] == 2 and venv.stats["zero_variance_groups"] == 1
    assert venv.stats["episodes"] == 4


# ----------------------------------------------------------------------------- faults


def test_sim_fault_in_one_sub_env_does_not_affect_the_others(make_vec: Callable[..., TrusteeVectorEnv]) -> None:
    venv = make_vec(4, group_size=2)
    venv.reset(seed=2)
    _, rewards, terminations, truncations, infos = venv.step([f"{FINISH} {GOOD}", BREAK, MORE, MORE])
    assert terminations.tolist() == [True, False, False, False]
    assert truncations.tolist() == [False, True, False, False]
    assert rewards.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert infos["_sim_fault"].tolist() == [False, True, False, False]
    assert infos["sim_fault"][1]["role"] == "user"
    # the faulted member is left out of the group's variance: one valid reward -> no signal
    assert infos["_group_zero_variance"].tolist() == [False, True, False, False]
    assert infos["group_rewards"][1] == [0.0, None] and bool(infos["group_zero_variance"][1])
    _, _, _, _, infos = venv.step([None, None, MORE, MORE])
    assert infos["turn"].tolist() == [0, 0, 2, 2]
    assert venv.stats["sim_faults"] == 1


def test_task_generation_failure_faults_every_member_of_that_group_only(
    make_vec: Callable[..., TrusteeVectorEnv],
) -> None:
    seed = 31
    failing = derive_seed(derive_seed(seed, 0, 0), "task", 0)  # block 0, round 0, first attempt
    venv = make_vec(4, group_size=2, handler=GroupScript(fail_task_seeds=(failing,)), task_attempts=1)
    obs, infos = venv.reset(seed=seed)
    assert count(venv.server, "task_generator") == 2  # the failed task was asked for once, not per member
    assert infos["_sim_fault"].tolist() == [True, True, False, False]
    assert infos["sim_fault"][0]["role"] == "task_generator"
    assert infos["_task_id"].tolist() == [False, False, True, True]
    assert obs[0] == {"messages": [], "tools": []} and obs[2]["messages"]
    _, rewards, terminations, truncations, infos = venv.step([MORE, MORE, f"{FINISH} {GOOD}", FINISH])
    assert rewards.tolist() == [0.0, 0.0, 0.0, -1.0]
    assert truncations.tolist() == [True, True, False, False]
    assert terminations.tolist() == [False, False, True, True]
    assert infos["group_rewards"][1] == [None, None] and bool(infos["group_zero_variance"][1])
    assert infos["group_rewards"][3] == [0.0, -1.0] and not infos["group_zero_variance"][3]
    assert infos["_group_rewards"].tolist() == [False, True, False, True]


# ----------------------------------------------------------------------------- async API


def test_async_api_runs_on_the_callers_loop(make_vec: Callable[..., TrusteeVectorEnv]) -> None:
    venv = make_vec(4, group_size=2)

    async def main() -> tuple[Any, ...]:
        obs, infos = await venv.areset(seed=4)
        assert len(obs) == 4 and infos["task_id"][0] == infos["task_id"][1]
        first = await venv.astep([FINISH, MORE, MORE, MORE])
        second = await venv.astep([None, FINISH, MORE, MORE])
        return first, second

    first, second = asyncio.run(main())
    assert first[2].tolist() == [True, False, False, False]
    assert second[2].tolist() == [False, True, False, False]
    assert second[1][0] == 0.0 and second[4]["turn"][0] == 0
    assert bool(second[4]["_group_zero_variance"][1])


# ----------------------------------------------------------------------------- trajectories and curriculum


class RecordingCurriculum:
    """A curriculum stand-in that records what the env asks and tells it."""

    def __init__(self) -> None:
        self.settings_calls = 0
        self.observed: list[tuple[float, dict[str, Any]]] = []

    def task_settings(self, rng: np.random.Generator, pinned: dict[str, Any] | None = None) -> tuple[float, Any]:
        from trustee_env.difficulty import aspects_for

        self.settings_calls += 1
        return 40.0, aspects_for(40.0, pinned)

    def observe(self, reward: float, aspects: Any) -> None:
        self.observed.append((reward, aspects))


def test_trajectories_stats_and_curriculum(make_vec: Callable[..., TrusteeVectorEnv], tmp_path: Path) -> None:
    path = tmp_path / "traj.jsonl"
    curriculum = RecordingCurriculum()
    venv = make_vec(4, group_size=2, trajectory_path=str(path), curriculum=curriculum)
    assert venv.curriculum is curriculum
    _, infos = venv.reset(seed=9)
    assert curriculum.settings_calls == 2  # once per group task, not per member
    assert infos["difficulty"].tolist() == [40.0] * 4
    venv.step([f"{FINISH} {GOOD}", BREAK, FINISH, MORE])
    records = list(read_trajectories(path))
    assert [r.slot for r in records] == [0, 1, 2]
    assert records[0].group_id == records[1].group_id == infos["group_id"][0]
    assert [r.member for r in records] == [0, 1, 0]
    assert records[1].sim_fault.role == "user"
    assert [reward for reward, _ in curriculum.observed] == [0.0, -1.0]  # the faulted episode is not fed
    assert venv.stats["episodes"] == 3 and venv.stats["sim_faults"] == 1
    assert venv.stats["usage"].calls > 0
    venv.step([None, None, None, MORE])  # round 1 of block 0 and of block 1's slot 2: two more group tasks
    assert curriculum.settings_calls == 4


def test_raise_on_sim_fault_keeps_the_trajectory_and_needs_a_reset(
    make_vec: Callable[..., TrusteeVectorEnv], tmp_path: Path
) -> None:
    path = tmp_path / "traj.jsonl"
    venv = make_vec(2, raise_on_sim_fault=True, trajectory_path=str(path))
    venv.reset(seed=6)
    with pytest.raises(LLMError):
        venv.step([BREAK, MORE])
    [record] = list(read_trajectories(path))
    assert record.slot == 0 and record.sim_fault.role == "user"
    with pytest.raises(EpisodeStateError):
        venv.step([MORE, MORE])
    obs, _ = venv.reset(seed=6)
    assert len(obs) == 2


def test_the_docs_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the example writes runs/trajectories.jsonl
    doc = Path(__file__).resolve().parent.parent / "docs" / "vector.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.DOTALL)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, str(doc), "exec"), {"__name__": "__doc_example__"})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # one line per training step
    assert len(list(read_trajectories(tmp_path / "runs" / "trajectories.jsonl"))) > 16
