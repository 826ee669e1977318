"""The process-sharded vector env (``gym.make_vec("Trustee-v0", ..., processes=P)``) against the scripted server.

The scripted roles are those of tests/test_vector.py (``GroupScript``: ``XFINISHX`` ends an episode,
``XGOODX`` raises the judge's verdict, ``XBREAKX`` makes the user simulator fail). The fake server
runs in this process; the workers are real spawned processes that reach it over HTTP. Starting
workers costs seconds on a loaded 2-core machine, so each test starts as few envs as it can.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from test_vector import BREAK, FINISH, GOOD, MORE, GroupScript

import trustee_env  # noqa: F401  (registers Trustee-v0)
from trustee_env.catalog import Catalog
from trustee_env.curriculum import PaperCurriculum
from trustee_env.errors import ConfigError, EpisodeStateError, LLMError
from trustee_env.sharded import ShardedVectorEnv, WorkerError
from trustee_env.spaces import ChatAction, ChatObservation
from trustee_env.testing import FakeLLMServer
from trustee_env.trajectory import read_trajectories
from trustee_env.vector import TrusteeVectorEnv

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def make_vec(fake_server: Callable[..., FakeLLMServer], mock_catalog: Catalog) -> Iterator[Callable[..., Any]]:
    """Factory: ``make_vec(num_envs, group_size=1, handler=None, server=None, **kwargs)`` -> ``gym.make_vec`` env.

    A new fake server per env unless ``server`` is given; every env is closed at teardown.
    """
    envs: list[Any] = []

    def make(
        num_envs: int, group_size: int = 1, handler: Any = None, server: FakeLLMServer | None = None, **kwargs: Any
    ) -> Any:
        server = server or fake_server(handler if handler is not None else GroupScript())
        kwargs.setdefault("catalog", mock_catalog)
        kwargs.setdefault("timeout", 10.0)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("max_steps", 6)
        kwargs.setdefault("aspects", {"strictness": 1, "num_turns": 1})
        kwargs.setdefault("user_goal_gate", False)
        kwargs.setdefault("cache_mode", "off")  # both envs of a comparison must really call their servers
        venv = gym.make_vec("Trustee-v0", num_envs=num_envs, group_size=group_size, base_url=server.base_url, **kwargs)
        venv.server = server
        envs.append(venv)
        return venv

    yield make
    for venv in envs:
        venv.close()


def alive(pid: int) -> bool:
    """Whether a process with this id exists (a reaped child does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Deep equality of batched infos: same keys, and arrays with the same dtype, values and masks."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a!r} != {b!r}"
        assert all(x == y for x, y in zip(a.tolist(), b.tolist(), strict=True)), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# ----------------------------------------------------------------------------- same behaviour as one process


def test_two_processes_play_the_same_episodes_as_one(make_vec: Callable[..., Any], tmp_path: Path) -> None:
    """Same seed: same tasks per group, observations, rewards, autoresets, infos and masks, slot by slot."""
    one = make_vec(8, group_size=2, trajectory_path=str(tmp_path / "one.jsonl"))
    # one server for both, so that even the URLs in sim-fault messages agree
    two = make_vec(8, group_size=2, processes=2, trajectory_path=str(tmp_path / "two.jsonl"), server=one.server)
    assert isinstance(one, TrusteeVectorEnv) and isinstance(two, ShardedVectorEnv)
    assert two.shards == [(0, 4), (4, 8)] and len(set(two.pids)) == 2
    assert two.num_envs == 8 and two.num_groups == 4 and two.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert two.single_observation_space == ChatObservation() and two.single_action_space == ChatAction()
    assert two.observation_space == one.observation_space and two.action_space == one.action_space
    assert two.spec is not None and two.spec.id == "Trustee-v0" and two.spec.kwargs["processes"] == 2

    obs_one, infos_one = one.reset(seed=7)
    obs_two, infos_two = two.reset(seed=7)
    assert obs_two == obs_one
    assert_same(infos_two, infos_one, "reset")
    assert len(set(infos_two["task_id"].tolist())) == 4  # one task per group, the same for both members
    assert two.server.roles().count("task_generator") == 2 * 4  # once per group (per env), not per member

    # slot 1 (worker 0) and slot 5 (worker 1) sim-fault; groups finish over several steps; autoresets follow
    script = [
        [f"{FINISH} {GOOD}", BREAK, MORE, MORE, FINISH, BREAK, MORE, FINISH],
        [None, None, FINISH, f"{FINISH} {GOOD}", None, None, MORE, None],
        [MORE, MORE, None, None, FINISH, FINISH, FINISH, MORE],
    ]
    reports = 0
    for step, actions in enumerate(script):
        out_one = one.step(actions)
        out_two = two.step(actions)
        assert out_two[0] == out_one[0], f"observations differ at step {step}"
        for got, want, dtype in zip(out_two[1:4], out_one[1:4], (np.float64, np.bool_, np.bool_), strict=True):
            assert got.dtype == dtype and got.tolist() == want.tolist(), f"step {step}: {got} != {want}"
        assert_same(out_two[4], out_one[4], f"step {step}")
        reports += int(out_two[4].get("_group_zero_variance", np.zeros(8, dtype=bool)).sum())
        if step == 0:  # the faults stayed in their slots, one in each worker
            infos = out_two[4]
            assert infos["_sim_fault"].tolist() == [False, True, False, False, False, True, False, False]
            assert infos["sim_fault"][5]["role"] == "user"
            assert out_two[3].tolist() == infos["_sim_fault"].tolist()
        if step == 1:  # slots 0, 1, 4, 5 and 7 were reset: their action was ignored
            assert out_two[4]["turn"].tolist() == [0, 0, 2, 2, 0, 0, 2, 0]

    for key in ("episodes", "sim_faults", "groups", "zero_variance_groups"):
        assert two.stats[key] == one.stats[key], key
    assert two.stats["sim_faults"] == 2 and two.stats["groups"] == reports >= 3
    assert two.stats["usage"].calls == one.stats["usage"].calls > 0
    assert two.stats["task_gate"]["tasks"] == one.roles.task_generator.gate_stats.tasks == 4 + 3 + 1  # rounds 0, then 1

    # both workers append to one JSONL; slots are global
    records_one = sorted(read_trajectories(tmp_path / "one.jsonl"), key=lambda r: (r.slot, r.group_id))
    records_two = sorted(read_trajectories(tmp_path / "two.jsonl"), key=lambda r: (r.slot, r.group_id))
    assert [(r.slot, r.group_id, r.member, r.reward) for r in records_two] == [
        (r.slot, r.group_id, r.member, r.reward) for r in records_one
    ]
    assert {r.slot for r in records_two} >= {0, 1, 4, 5, 7}


# ----------------------------------------------------------------------------- curriculum


def test_the_curriculum_stays_in_the_parent(make_vec: Callable[..., Any]) -> None:
    """The parent's rule is told every episode in slot order, exactly as with one process; workers read copies."""
    rule, rule_one = PaperCurriculum(difficulty=10.0), PaperCurriculum(difficulty=10.0)
    venv = make_vec(4, group_size=2, processes=2, curriculum=rule)
    one = make_vec(4, group_size=2, curriculum=rule_one, server=venv.server)
    _, infos = venv.reset(seed=3)
    assert_same(infos, one.reset(seed=3)[1], "reset")
    assert infos["difficulty"].tolist() == [10.0] * 4
    actions = [f"{FINISH} {GOOD}", MORE, BREAK, FINISH]
    _, _, _, _, infos = venv.step(actions)
    assert_same(infos, one.step(actions)[4], "step 0")
    # the parent's rule saw the two non-faulted episodes (slots 0 and 3), in slot order
    assert rule.episodes == 2 and rule.state_dict()["buffer"] == [0.0, -1.0]
    assert infos["_curriculum"].tolist() == [True, False, True, True]  # every finished episode, faulted too
    assert infos["curriculum"]["difficulty"][3] == 10.0

    for r in (rule, rule_one):
        r.update([1.0, 1.0])  # a training step: D 10 -> 13, to reach the workers with the next command
    assert rule.difficulty == 13.0
    actions = [None, MORE, None, None]  # slots 0, 2, 3 start new tasks at the new D
    _, _, _, _, infos = venv.step(actions)
    assert_same(infos, one.step(actions)[4], "step 1")
    assert infos["difficulty"].tolist() == [13.0, 10.0, 13.0, 13.0]
    assert rule.state_dict() == rule_one.state_dict()  # workers never change the rule


# ----------------------------------------------------------------------------- lifecycle and errors


def test_close_stops_every_worker_and_async_api_works(make_vec: Callable[..., Any]) -> None:
    import asyncio

    venv = make_vec(4, group_size=2, processes=2)
    pids = venv.pids
    assert all(alive(pid) for pid in pids) and os.getpid() not in pids

    async def main() -> Any:
        obs, infos = await venv.areset(seed=4)
        assert len(obs) == 4 and infos["task_id"][0] == infos["task_id"][1] != infos["task_id"][2]
        return await venv.astep([FINISH, MORE, MORE, FINISH])

    _, _, terminations, _, _ = asyncio.run(main())
    assert terminations.tolist() == [True, False, False, True]
    texts = venv.render()
    assert isinstance(texts, tuple) and len(texts) == 4 and all(isinstance(t, str) and t for t in texts)

    venv.close()
    assert not any(alive(pid) for pid in pids)
    venv.close()  # twice is fine
    with pytest.raises(EpisodeStateError):
        venv.step([MORE] * 4)


def test_errors_come_back_as_themselves_and_a_dead_worker_is_reported(make_vec: Callable[..., Any]) -> None:
    venv = make_vec(4, group_size=2, processes=2, raise_on_sim_fault=True)
    with pytest.raises(EpisodeStateError):
        venv.step([MORE] * 4)
    venv.reset(seed=1)
    with pytest.raises(ValueError, match="expected 4 actions"):
        venv.step([MORE])
    with pytest.raises(LLMError) as caught:  # raised in worker 1, re-raised here as its own class
        venv.step([MORE, MORE, BREAK, MORE])
    assert "worker 1" in "".join(getattr(caught.value, "__notes__", ["worker 1"]))
    with pytest.raises(EpisodeStateError):  # the shards are out of step: only a reset is safe
        venv.step([MORE] * 4)
    obs, _ = venv.reset(seed=1)
    assert len(obs) == 4

    os.kill(venv.pids[1], signal.SIGKILL)
    with pytest.raises(WorkerError, match="worker 1"):
        venv.step([MORE] * 4)
    venv.close()


def test_a_worker_exits_when_its_parent_dies(fake_server: Callable[..., FakeLLMServer], tmp_path: Path) -> None:
    server = fake_server(GroupScript())
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            import gymnasium as gym
            import trustee_env

            if __name__ == "__main__":
                envs = gym.make_vec("Trustee-v0", num_envs=2, group_size=2, processes=1,
                                    base_url={server.base_url!r}, model="fake-model", cache_mode="off")
                print(envs.pids[0], flush=True)
                time.sleep(120)
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert alive(worker)
    finally:
        parent.kill()  # no cleanup runs in the parent
        parent.wait(10)
    deadline = time.monotonic() + 15
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(worker)


@pytest.mark.parametrize("processes", [-1, True, 1.5, "2", 3])
def test_a_bad_processes_value_is_a_config_error(processes: Any) -> None:
    with pytest.raises(ConfigError, match="processes"):  # checked before any process starts
        gym.make_vec(
            "Trustee-v0", num_envs=4, group_size=2, processes=processes, base_url="http://127.0.0.1:9/v1", model="m"
        )


def test_processes_none_or_zero_is_the_single_process_env() -> None:
    for processes in (None, 0):
        venv = gym.make_vec("Trustee-v0", num_envs=2, processes=processes, base_url="http://127.0.0.1:9/v1", model="m")
        assert isinstance(venv, TrusteeVectorEnv)
        venv.close()


def test_an_unpicklable_curriculum_is_a_config_error() -> None:
    import threading

    class Locked(PaperCurriculum):
        def __getstate__(self) -> dict[str, Any]:
            return {"lock": threading.Lock()}

    with pytest.raises(ConfigError, match="pickle"):
        ShardedVectorEnv(4, 2, processes=2, curriculum=Locked(), base_url="http://127.0.0.1:9/v1", model="m")
