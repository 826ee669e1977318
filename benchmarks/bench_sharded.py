"""Does sharding the vector env over processes scale? Episodes/s and LM calls/s at 1, 2, ... processes, as JSON.

The scripted server (``trustee_env.testing.FakeLLMServer``) runs in its own process and answers every
call after ``--latency`` seconds; it counts the calls it answers. For each mode, ``gym.make_vec``
with ``num_envs=--envs`` and ``group_size=--group-size`` plays ``--episodes`` episodes in lockstep
(a tool call, then a text answer; ``None`` for autoresetting slots) after one warm-up step, and
reports episodes/s, LM calls/s (server side), and CPU seconds of the driver and of each worker
(from ``/proc``). Modes: ``0`` = the in-process ``TrusteeVectorEnv``; ``P`` >= 1 = ``processes=P``.
Start-up (spawning workers) is timed apart from the run. The load average is recorded before and
after: on a shared machine, read the figures against it.

Usage: ``python benchmarks/bench_sharded.py [--processes 0,1,2] [--envs 64] [--episodes 512] [--latency 0.1]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym

import trustee_env  # noqa: F401  (registers Trustee-v0)
from trustee_env.parsing import render_tool_calls
from trustee_env.schemas import ToolCall
from trustee_env.testing import FakeLLMServer, ScriptedSimulator, example_for

CATALOG_PATH = Path(__file__).resolve().parent.parent / "tests" / "data" / "mock_catalog.json"
PINNED = {"num_calls": 1, "num_turns": 1, "num_tools": 3}
TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server_process(latency: float) -> Iterator[tuple[str, Any]]:
    """The scripted server in its own process (its own GIL), with a shared count of the calls it answered."""
    ctx = multiprocessing.get_context("fork")  # before any env thread exists in this process
    ready: Any = ctx.Queue()
    calls: Any = ctx.Value("q", 0)

    def serve() -> None:
        script = ScriptedSimulator()

        def handler(role: str, request: dict[str, Any]) -> Any:
            with calls.get_lock():
                calls.value += 1
            return script(role, request)

        server = FakeLLMServer(handler, latency_s=latency).start()
        ready.put(server.base_url)
        threading.Event().wait()

    process = ctx.Process(target=serve, daemon=True)
    process.start()
    try:
        yield ready.get(timeout=60), calls
    finally:
        process.terminate()
        process.join(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def action_for(obs: dict[str, Any], turn: int) -> Any:
    """A tool call to the first offered tool, then a text answer (the user is then satisfied)."""
    if turn == 0 and obs["tools"]:
        tool = obs["tools"][0]["function"]
        call = ToolCall(id="x", name=tool["name"], arguments=example_for(tool["parameters"]))
        return render_tool_calls([call], "hermes")
    return "Done: I did what you asked."


def run_mode(processes: int, args: argparse.Namespace, base_url: str, calls: Any) -> dict[str, Any]:
    """Play ``args.episodes`` episodes with one vector env in this mode."""
    t0 = time.perf_counter()
    envs = gym.make_vec(
        "Trustee-v0",
        num_envs=args.envs,
        group_size=args.group_size,
        processes=processes or None,
        base_url=base_url,
        model="fake-model",
        catalog=str(CATALOG_PATH),
        aspects=PINNED,
        max_retries=0,
        cache_mode="off",
        concurrency=1024,
    )
    startup_s = time.perf_counter() - t0
    pids = list(getattr(envs, "pids", []))
    try:
        obs, _ = envs.reset(seed=args.seed)
        turns = [0] * args.envs
        ended = [False] * args.envs
        obs, _, terminations, truncations, _ = envs.step([action_for(o, 0) for o in obs])  # warm-up step
        turns = [1] * args.envs
        ended = list(terminations | truncations)
        cpu0 = {"driver": time.process_time(), **{f"worker{k}": cpu_seconds(p) for k, p in enumerate(pids)}}
        calls0, episodes0, steps = calls.value, envs.stats["episodes"], 0
        t0 = time.perf_counter()
        while envs.stats["episodes"] - episodes0 < args.episodes:
            actions = [None if ended[i] else action_for(o, turns[i]) for i, o in enumerate(obs)]
            obs, _, terminations, truncations, _ = envs.step(actions)
            turns = [0 if ended[i] else turns[i] + 1 for i in range(args.envs)]
            ended = list(terminations | truncations)
            steps += 1
        wall = time.perf_counter() - t0
        cpu = {"driver": time.process_time() - cpu0["driver"]}
        cpu.update({f"worker{k}": cpu_seconds(p) - cpu0[f"worker{k}"] for k, p in enumerate(pids)})
        episodes, lm_calls = envs.stats["episodes"] - episodes0, calls.value - calls0
        sim_faults = envs.stats["sim_faults"]
    finally:
        envs.close()
    return {
        "mode": "in-process" if not processes else f"processes={processes}",
        "startup_s": round(startup_s, 2),
        "wall_s": round(wall, 2),
        "steps": steps,
        "episodes": episodes,
        "episodes_per_s": round(episodes / wall, 1),
        "lm_calls": lm_calls,
        "lm_calls_per_s": round(lm_calls / wall, 1),
        "cpu_s": {name: round(value, 2) for name, value in cpu.items()},
        "env_cpu_ms_per_call": round(1000 * sum(cpu.values()) / max(1, lm_calls), 2),
        "sim_faults": sim_faults,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="0,1,2", help="comma-separated modes: 0 = in-process, P = P workers")
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per LM call at the server")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    modes = [int(p) for p in args.processes.split(",")]
    report: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in os.getloadavg()],
        "envs": args.envs,
        "group_size": args.group_size,
        "episodes": args.episodes,
        "latency_s": args.latency,
        "runs": [],
    }
    with server_process(args.latency) as (base_url, calls):
        for processes in modes:
            report["runs"].append(run_mode(processes, args, base_url, calls))
    report["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
