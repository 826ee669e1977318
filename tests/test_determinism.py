"""Same seeds (and cache) give identical episodes: across processes, from the cache, across ``num_envs``.

The scripted simulator here answers as a seeded LM would: its user and judge texts carry the
``seed`` of the request, so an episode is identical only if every per-call seed is too. Records are
compared whole, less wall-clock fields (``timings``, ``created``) and the per-role usage (latency).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from trustee_env.parsing import render_tool_calls
from trustee_env.schemas import ToolCall
from trustee_env.testing import Reply, ScriptedSimulator
from trustee_env.trajectory import Trajectory, read_trajectories

MOCK_CATALOG = Path(__file__).resolve().parent / "data" / "mock_catalog.json"
SEEDS = [0, 1, 2, 3]
SETTINGS: dict[str, Any] = {"model": "fake-model", "aspects": {"num_calls": 1, "num_turns": 2, "num_tools": 3}}


class SeededSimulator(ScriptedSimulator):
    """Answers that depend on the request's seed, as a sampling LM's would."""

    def __call__(self, role: str, request: dict[str, Any]) -> Reply | str | dict[str, Any]:
        answer = super().__call__(role, request)
        seed = request.get("seed")
        if role == "user" and isinstance(answer, dict):
            return {**answer, "message": f"{answer['message']} (n{seed})"}
        if role == "judge" and isinstance(answer, dict):
            return {**answer, "rationale": f"{answer['rationale']} (n{seed})"}
        return answer


def actions_for(task: Any) -> list[Any]:
    """The expected call, then two text replies (the user answers each)."""
    expected = task.expected_calls[0]
    call = ToolCall(id="c", name=expected.name, arguments=dict(expected.arguments))
    return [render_tool_calls([call], "hermes"), "Is there anything else?", "Done."]


CHILD = textwrap.dedent(
    """
    import json, sys
    from trustee_env.catalog import Catalog
    from trustee_env.env import TrusteeToolEnv
    from trustee_env.testing import FakeLLMServer
    from test_determinism import SEEDS, SeededSimulator, actions_for

    settings = json.loads(sys.argv[1])
    server = FakeLLMServer(SeededSimulator()).start() if settings.pop("serve") else None
    base_url = server.base_url if server else settings.pop("dead_url")
    env = TrusteeToolEnv(base_url=base_url, catalog=Catalog.load(settings.pop("catalog")), **settings)
    for seed in SEEDS:
        env.reset(seed=seed)
        for action in actions_for(env.episode.task):
            *_, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
    env.close()
    if server:
        server.stop()
    """
)


def comparable(record: Trajectory) -> dict[str, Any]:
    """A trajectory without what legitimately differs between runs: wall-clock and latency."""
    return record.model_dump(mode="json", exclude={"timings", "created", "usage"})


def _child(tmp_path: Path, name: str, hash_seed: int, **settings: Any) -> list[dict[str, Any]]:
    path = tmp_path / f"{name}.jsonl"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    payload = {**SETTINGS, "catalog": str(MOCK_CATALOG), "trajectory_path": str(path), **settings}
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRUSTEE_")}
    env.update(
        PYTHONHASHSEED=str(hash_seed),
        TRUSTEE_STATE_DIR=str(tmp_path / "state"),
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    )
    subprocess.run([sys.executable, str(script), json.dumps(payload)], env=env, check=True, timeout=300)
    return [comparable(record) for record in read_trajectories(path)]


def test_same_seeds_same_episodes_across_processes_and_from_the_cache(tmp_path: Path, dead_url: str):
    cache = str(tmp_path / "cache.sqlite")
    recorded = _child(tmp_path, "record", 1, serve=True, cache_path=cache, cache_mode="read_write")
    fresh = _child(tmp_path, "fresh", 2, serve=True)  # another process, another hash seed, no cache
    replayed = _child(tmp_path, "replay", 3, serve=False, dead_url=dead_url, cache_path=cache, cache_mode="replay_only")
    assert [r["seed"] for r in recorded] == SEEDS
    assert len({json.dumps(r["task"], sort_keys=True) for r in recorded}) > 1  # the seeds do matter
    assert all("(n" in m["content"] for r in recorded for m in r["messages"][-1:] if m["role"] == "user")
    assert fresh == recorded
    assert replayed == recorded


def _first_episodes(venv: Any, path: Path, num_envs: int) -> dict[int, dict[str, Any]]:
    """Step every slot through its first episode; return the first record of each slot."""
    venv.reset(seed=7)
    unwrapped = venv.unwrapped
    done: set[int] = set()
    plans = {i: actions_for(unwrapped.episodes[i].task) for i in range(num_envs)}
    turn = 0
    while len(done) < num_envs and turn < 10:
        actions = [plans[i][min(turn, len(plans[i]) - 1)] if i not in done else None for i in range(num_envs)]
        _obs, _rewards, terminated, truncated, _infos = venv.step(actions)
        done |= {i for i in range(num_envs) if terminated[i] or truncated[i]}
        turn += 1
    first: dict[int, dict[str, Any]] = {}
    for record in read_trajectories(path):
        first.setdefault(record.slot, comparable(record))
    return first


@pytest.mark.parametrize("group_size", [1, 2])
def test_episodes_do_not_depend_on_num_envs(
    fake_server: Callable[..., Any], mock_catalog: Any, tmp_path: Path, group_size: int
):
    server = fake_server(SeededSimulator())
    runs = {}
    for num_envs in (2, 4):
        path = tmp_path / f"n{num_envs}.jsonl"
        venv = gym.make_vec(
            "Trustee-v0",
            num_envs=num_envs,
            group_size=group_size,
            base_url=server.base_url,
            catalog=mock_catalog,
            trajectory_path=str(path),
            **SETTINGS,
        )
        try:
            runs[num_envs] = _first_episodes(venv, path, num_envs)
        finally:
            venv.close()
    assert set(runs[4]) == {0, 1, 2, 3}
    assert runs[2] == {slot: runs[4][slot] for slot in (0, 1)}
    tasks = {json.dumps(runs[4][slot]["task"], sort_keys=True) for slot in range(4)}
    assert len(tasks) == 4 // group_size  # members share a task, other blocks differ
