"""How cheap is an env? Milliseconds per ``gym.make("Trustee-v0", base_url=...)`` after the first, as JSON.

The first construction pays for imports and for parsing the bundled catalog; every later one should
share that work (target: <= 5 ms). Nothing is sent to the endpoint: construction makes no request.
Also reports the first request's client set-up (SDK clients and TLS contexts for the endpoint's shards),
which happens on the first call rather than in the constructor.

Usage: ``python benchmarks/bench_construct.py [--n 100]`` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import gymnasium as gym

import trustee_env  # noqa: F401  (registers Trustee-v0)
from trustee_env.testing import FakeLLMServer, ScriptedSimulator


def bench_construct(base_url: str, n: int) -> dict[str, Any]:
    """First and later ``gym.make`` times (ms), every env closed after the run."""
    t0 = time.perf_counter()
    envs = [gym.make("Trustee-v0", base_url=base_url, model="fake-model")]
    first_ms = (time.perf_counter() - t0) * 1000
    later: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        envs.append(gym.make("Trustee-v0", base_url=base_url, model="fake-model"))
        later.append((time.perf_counter() - t0) * 1000)
    for env in envs:
        env.close()
    return {
        "first_ms": round(first_ms, 1),
        "n": n,
        "mean_ms_after_first": round(statistics.mean(later), 3),
        "median_ms_after_first": round(statistics.median(later), 3),
        "target_ms": 5.0,
    }


def bench_first_request(base_url: str) -> dict[str, Any]:
    """Wall time of the first reset on a fresh loop (client shards are built here) and of the second."""
    env = gym.make("Trustee-v0", base_url=base_url, model="fake-model")

    async def two_resets() -> tuple[float, float]:
        t0 = time.perf_counter()
        await env.unwrapped.areset(seed=0)
        t1 = time.perf_counter()
        await env.unwrapped.areset(seed=1)
        return t1 - t0, time.perf_counter() - t1

    first, second = asyncio.run(two_resets())
    env.close()
    return {"first_reset_ms": round(first * 1000, 1), "second_reset_ms": round(second * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="constructions after the first")
    args = parser.parse_args(argv)
    with FakeLLMServer(ScriptedSimulator()) as server:
        result = {
            "python": sys.version.split()[0],
            "construct": bench_construct(server.base_url, args.n),
            "first_request": bench_first_request(server.base_url),
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
