"""Soak: many episodes against the scripted server with random faults; does anything leak or escape?

Plays ``--episodes`` episodes (default 10,000) through ``areset``/``astep`` with ``--concurrency``
episodes in flight on one event loop, against :class:`~trustee_env.testing.FakeLLMServer` running
in its own process, where :class:`~trustee_env.faults.RandomFaults` spoils ``--fault-rate`` (default
5%) of the answers with a random kind of :data:`~trustee_env.faults.REPLY_FAULTS` (HTTP 429/500/503,
cut connections, read timeouts, stalled responses, empty, truncated, wrong-schema, out-of-range
and 10 MB answers). Every episode is a tool call to the expected tool, then a text reply, so all
four simulated roles are called. Trajectories go to a JSONL file, read back at the end.

Prints one JSON object: episodes completed, episodes labelled with a sim fault (by role and
reason), faults injected (by role and kind), faults recovered by transport retries and by repair
re-asks, unhandled exceptions (must be 0), trajectories read
back, and at 1k/5k/10k episodes and after closing every env: RSS, Python objects and allocated
blocks, open file descriptors, sockets and threads (RSS must stay flat within 10%, descriptors and
sockets must not grow). RSS counts the episodes in flight, 10 MB answers included; the object and
block counts are the leak signal that those do not move.

Usage: ``nice -n 19 python benchmarks/soak.py [--episodes 10000] [--concurrency 32]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

MOCK_CATALOG = Path(__file__).resolve().parent.parent / "tests" / "data" / "mock_catalog.json"


def serve(rate: float, seed: int, slow_s: float, ready: Any, stop: Any, report: Any) -> None:
    """The scripted server with random faults, in its own process; reports what it injected at the end."""
    from collections import deque

    from trustee_env.faults import RandomFaults
    from trustee_env.testing import FakeLLMServer, ScriptedSimulator

    handler = RandomFaults(ScriptedSimulator(), rate=rate, seed=seed, slow_s=slow_s)
    server = FakeLLMServer(handler)
    server.requests = deque(maxlen=100)  # type: ignore[assignment]  # keep the server's own memory flat
    server.start()
    ready.put(server.base_url)
    stop.wait()
    report.put({"requests": handler.requests, "injected": {f"{r}/{k}": n for (r, k), n in handler.injected.items()}})
    server.stop()


def rss_mb() -> float:
    """Resident set size in MB (Linux ``/proc``)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def descriptors() -> dict[str, int]:
    """Open file descriptors and, among them, sockets (Linux ``/proc/self/fd``)."""
    fds = sockets = 0
    for name in os.listdir("/proc/self/fd"):
        fds += 1
        try:
            sockets += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
        except OSError:
            pass
    return {"fds": fds, "sockets": sockets}


def snapshot(done: int, started: float) -> dict[str, Any]:
    """Memory and descriptors now (after a full collection, so garbage not yet collected is not counted)."""
    gc.collect()
    return {
        "episodes": done,
        "rss_mb": round(rss_mb(), 1),
        # leak signals that transient big strings (a 10 MB answer in flight) do not move
        "gc_objects": len(gc.get_objects()),
        "allocated_blocks": sys.getallocatedblocks(),
        **descriptors(),
        "threads": threading.active_count(),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


async def soak(base_url: str, episodes: int, concurrency: int, timeout: float, path: str) -> dict[str, Any]:
    """Play the episodes; returns counts and the checkpoints."""
    from trustee_env.catalog import Catalog
    from trustee_env.env import TrusteeToolEnv
    from trustee_env.parsing import render_tool_calls
    from trustee_env.schemas import ToolCall

    catalog = Catalog.load(MOCK_CATALOG)
    envs = [
        TrusteeToolEnv(
            base_url=base_url,
            model="fake-model",
            catalog=catalog,
            timeout=timeout,
            aspects={"num_calls": 1, "num_turns": 1, "num_tools": 3},
            trajectory_path=path,
        )
        for _ in range(concurrency)
    ]
    marks = sorted({m for m in (100, 1000, 5000, 10000, episodes) if m <= episodes})
    checkpoints: list[dict[str, Any]] = []
    faults: Counter[str] = Counter()
    terminations: Counter[str] = Counter()
    unhandled: Counter[str] = Counter()
    started = time.perf_counter()
    next_seed = 0
    done = 0

    async def play(env: TrusteeToolEnv, seed: int) -> None:
        obs, info = await env.areset(seed=seed)
        task = env.episode.task
        actions: list[Any] = []
        if task is not None and task.expected_calls:
            expected = task.expected_calls[0]
            call = ToolCall(id="x", name=expected.name, arguments=dict(expected.arguments))
            actions.append(render_tool_calls([call], "hermes"))
        actions += ["Done: I did what you asked.", "Anything else?", "Goodbye."]
        for action in actions:
            obs, reward, terminated, truncated, info = await env.astep(action)
            if terminated or truncated:
                fault = info.get("sim_fault")
                if fault:
                    faults[f"{fault['role']}/{fault['reason']}"] += 1
                terminations[str(info.get("termination"))] += 1
                return
        unhandled["episode did not end"] += 1

    async def worker(env: TrusteeToolEnv) -> None:
        nonlocal next_seed, done
        while next_seed < episodes:
            seed = next_seed
            next_seed += 1
            try:
                await play(env, seed)
            except Exception as err:  # what the soak is looking for: nothing may escape
                unhandled[type(err).__name__] += 1
                print(f"unhandled at seed {seed}: {err!r}"[:300], file=sys.stderr)
            done += 1
            if done in marks:
                checkpoints.append(snapshot(done, started))
                print(json.dumps(checkpoints[-1]), file=sys.stderr, flush=True)

    checkpoints.append(snapshot(0, started))
    await asyncio.gather(*(worker(env) for env in envs))
    elapsed = time.perf_counter() - started
    recovered: Counter[str] = Counter()
    for env in envs:
        for role, counts in env.stats["usage"].timing_view().items():
            recovered[f"{role}/retries"] += counts["retries"]
            recovered[f"{role}/repairs"] += counts["repairs"]
        env.close()
    envs.clear()
    after_close = snapshot(done, started)  # every episode over and every env closed: what is left is a leak
    return {
        "episodes": done,
        "elapsed_s": round(elapsed, 1),
        "episodes_per_s": round(done / elapsed, 1),
        "sim_faults": sum(faults.values()),
        "sim_faults_by_role_reason": dict(sorted(faults.items())),
        "terminations": dict(sorted(terminations.items())),
        "recovered_by_retries": sum(v for k, v in recovered.items() if k.endswith("/retries")),
        "recovered_by_repairs": sum(v for k, v in recovered.items() if k.endswith("/repairs")),
        "recovered_by_role": dict(sorted(recovered.items())),
        "unhandled_exceptions": sum(unhandled.values()),
        "unhandled_by_type": dict(unhandled),
        "checkpoints": checkpoints,
        "after_close": after_close,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32, help="episodes in flight")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of LM answers spoiled")
    parser.add_argument("--timeout", type=float, default=1.0, help="client timeout per request (s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    ctx = multiprocessing.get_context("spawn")
    ready, report, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    server = ctx.Process(
        target=serve, args=(args.fault_rate, args.seed, args.timeout * 1.5, ready, stop, report), daemon=True
    )
    server.start()
    try:
        base_url = ready.get(timeout=60)
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "soak.jsonl")
            result = asyncio.run(soak(base_url, args.episodes, args.concurrency, args.timeout, path))
            from trustee_env.trajectory import read_trajectories

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                records = sum(1 for _ in read_trajectories(path))
            result["trajectories_read"] = records
            result["trajectory_warnings"] = len(caught)
            result["trajectory_mb"] = round(os.path.getsize(path) / 2**20, 1)
        stop.set()
        server_report = report.get(timeout=60)
    finally:
        stop.set()
        server.join(30)
        if server.is_alive():
            server.kill()
    marks = {c["episodes"]: c for c in result["checkpoints"]}
    first = marks.get(1000) or result["checkpoints"][0]
    last = result["checkpoints"][-1]
    result.update(
        fault_rate=args.fault_rate,
        concurrency=args.concurrency,
        lm_requests=server_report["requests"],
        faults_injected=sum(server_report["injected"].values()),
        faults_injected_by_role_kind=dict(sorted(server_report["injected"].items())),
        rss_growth_1k_to_end=round(last["rss_mb"] / first["rss_mb"] - 1, 4),
        rss_flat_within_10pct=abs(last["rss_mb"] / first["rss_mb"] - 1) <= 0.10,
        fds_grew=last["fds"] > first["fds"],
        sockets_grew=last["sockets"] > first["sockets"],
    )
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
