"""No lost trajectories: a run killed with SIGKILL keeps every finished episode and a usable cache.

A child process plays episodes against the scripted server with a JSONL trajectory file and a
record/replay cache, printing each episode's seed once ``step`` has returned its end. The test kills
it with SIGKILL mid-run, then checks that every episode it reported is in the JSONL, that a torn
last line is skipped with a :class:`~trustee_env.trajectory.TornLineWarning`, and that the cache
replays the reported episodes identically with no server at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from trustee_env.env import TrusteeToolEnv
from trustee_env.parsing import render_tool_calls
from trustee_env.schemas import ToolCall
from trustee_env.trajectory import TornLineWarning, Trajectory, append_trajectory, read_trajectories

MOCK_CATALOG = Path(__file__).resolve().parent / "data" / "mock_catalog.json"
SETTINGS: dict[str, Any] = {"model": "fake-model", "aspects": {"num_calls": 1, "num_turns": 1, "num_tools": 3}}

CHILD = textwrap.dedent(
    """
    import json, sys
    from trustee_env.catalog import Catalog
    from trustee_env.env import TrusteeToolEnv
    from trustee_env.testing import FakeLLMServer, ScriptedSimulator
    from test_kill_resume import actions_for

    settings = json.loads(sys.argv[1])
    server = FakeLLMServer(ScriptedSimulator()).start()
    env = TrusteeToolEnv(base_url=server.base_url, catalog=Catalog.load(settings.pop("catalog")), **settings)
    seed = 0
    while True:
        obs, info = env.reset(seed=seed)
        for action in actions_for(env):
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        print(f"done {seed}", flush=True)
        seed += 1
    """
)


def actions_for(env: TrusteeToolEnv) -> list[Any]:
    """The expected call, then a text reply with non-ASCII text (so a torn line may cut a character)."""
    task = env.episode.task
    assert task is not None
    expected = task.expected_calls[0]
    call = ToolCall(id="c", name=expected.name, arguments=dict(expected.arguments))
    return [render_tool_calls([call], "hermes"), "Voilà, c'est fait — déjà annulé. ✓"]


def _play(env: TrusteeToolEnv, seed: int) -> tuple[float, list[dict[str, Any]]]:
    env.reset(seed=seed)
    for action in actions_for(env):
        _obs, reward, terminated, truncated, _info = env.step(action)
        if terminated or truncated:
            return float(reward), env.episode.trajectory().messages
    raise AssertionError("the episode did not end")


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[int]]:
    """Run the child until it reports 6 finished episodes, then SIGKILL it; returns (jsonl, cache, seeds)."""
    tmp_path = tmp_path_factory.mktemp("killed")
    jsonl, cache = tmp_path / "run.jsonl", tmp_path / "cache.sqlite"
    settings = {
        **SETTINGS,
        "catalog": str(MOCK_CATALOG),
        "trajectory_path": str(jsonl),
        "cache_path": str(cache),
        "cache_mode": "read_write",
    }
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {name: value for name, value in os.environ.items() if not name.startswith("TRUSTEE_")}  # no shell settings
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    env["TRUSTEE_STATE_DIR"] = str(tmp_path / "state")
    child = subprocess.Popen(
        [sys.executable, str(script), json.dumps(settings)], stdout=subprocess.PIPE, text=True, env=env
    )
    reported: list[int] = []
    deadline = time.monotonic() + 120
    try:
        assert child.stdout is not None
        while len(reported) < 6 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            reported.append(int(line.split()[1]))
        child.send_signal(signal.SIGKILL)  # mid-way through the next episode (or its write)
    finally:
        child.kill()
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert len(reported) == 6, f"the child reported only {reported}"
    return jsonl, cache, reported


def test_every_reported_episode_survives_sigkill(killed_run: tuple[Path, Path, list[int]]):
    jsonl, _cache, reported = killed_run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seeds = [record.seed for record in read_trajectories(jsonl)]
    assert set(reported) <= set(seeds)
    assert seeds[: len(reported)] == reported  # in order, none lost, none interleaved
    torn = [w for w in caught if issubclass(w.category, TornLineWarning)]
    last_line_whole = jsonl.read_bytes().endswith(b"\n")
    assert len(torn) == (0 if last_line_whole else 1)


def test_a_torn_last_line_is_skipped_with_a_warning(killed_run: tuple[Path, Path, list[int]], tmp_path: Path):
    jsonl, _cache, reported = killed_run
    whole = [line for line in jsonl.read_bytes().splitlines(keepends=True) if line.endswith(b"\n")]
    last = whole[len(reported) - 1]
    cut = last.index("✓".encode()) + 1  # inside the three bytes of a UTF-8 character
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(b"".join(whole[: len(reported) - 1]) + last[:cut])
    with pytest.warns(TornLineWarning, match=rf"torn.jsonl:{len(reported)}: skipped an unreadable line"):
        seeds = [record.seed for record in read_trajectories(torn)]
    assert seeds == reported[:-1]
    # a writer appending after the crash starts on a fresh line, so only the torn line is lost
    append_trajectory(torn, Trajectory(seed=999))
    with pytest.warns(TornLineWarning, match=rf"torn.jsonl:{len(reported)}:"):
        seeds = [record.seed for record in read_trajectories(torn)]
    assert seeds == [*reported[:-1], 999]


def test_the_cache_replays_the_reported_episodes_without_a_server(
    killed_run: tuple[Path, Path, list[int]], dead_url: str
):
    jsonl, cache, reported = killed_run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TornLineWarning)
        recorded = {record.seed: record for record in read_trajectories(jsonl)}
    from trustee_env.catalog import Catalog

    env = TrusteeToolEnv(
        base_url=dead_url,
        catalog=Catalog.load(MOCK_CATALOG),
        cache_path=str(cache),
        cache_mode="replay_only",
        **SETTINGS,
    )
    try:
        for seed in reported:
            reward, messages = _play(env, seed)
            assert (reward, messages) == (recorded[seed].reward, recorded[seed].messages), seed
    finally:
        env.close()


def test_appends_are_fsynced_by_the_writer_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import threading

    from trustee_env.trajectory import flush_trajectories

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    path = tmp_path / "t.jsonl"
    for seed in range(50):
        append_trajectory(path, Trajectory(seed=seed))
    assert flush_trajectories(timeout=30) is True
    assert synced and set(synced) == {"trustee-trajectory-sync"}  # never on the caller's thread
    assert len(synced) <= 50  # one sync may cover many lines
    assert [record.seed for record in read_trajectories(path)] == list(range(50))
