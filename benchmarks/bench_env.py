"""Is the env ever the bottleneck? Env overhead, throughput, replay speed and memory, as JSON.

Runs against the scripted OpenAI-compatible server (``trustee_env.testing.FakeLLMServer``) on
127.0.0.1 with a fixed latency per call, so only Trustee's own cost is measured:

* ``overhead``: env time per step minus LM wait, median over steps (0 ms server latency);
* ``throughput``: N episodes in flight through ``areset``/``astep`` at ``--latency`` seconds per call,
  as LM calls/s against a bare ``AsyncOpenAI`` loop with the same concurrency, and episodes/s against
  the latency-bound ideal (calls per episode × latency, all in flight);
* ``replay``: a recorded run of ``--replay-episodes`` seeded episodes replayed from the cache with the
  server stopped: speed-up and identity;
* ``memory``: RSS growth per in-flight episode between 16 and 1024 episodes.

Usage: ``python benchmarks/bench_env.py [--quick]`` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai

from trustee_env.catalog import Catalog
from trustee_env.env import TrusteeToolEnv
from trustee_env.parsing import render_tool_calls
from trustee_env.schemas import ToolCall
from trustee_env.testing import FakeLLMServer, ScriptedSimulator, example_for

CATALOG = Catalog.load(Path(__file__).resolve().parent.parent / "tests" / "data" / "mock_catalog.json")
PINNED = {"num_calls": 1, "num_turns": 1, "num_tools": 3}


def rss_mb() -> float:
    """Current resident set size in MB (Linux)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_env(base_url: str, **kwargs: Any) -> TrusteeToolEnv:
    options = {"base_url": base_url, "model": "fake-model", "aspects": PINNED, "max_retries": 0, **kwargs}
    return TrusteeToolEnv(catalog=CATALOG, **options)


def scripted_actions(obs: dict[str, Any]) -> list[Any]:
    """A tool call to the first offered tool, then a text answer: 5 LM calls per episode."""
    tool = obs["tools"][0]["function"]
    call = ToolCall(id="x", name=tool["name"], arguments=example_for(tool["parameters"]))
    return [render_tool_calls([call], "hermes"), "Done: I did what you asked."]


async def play(env: TrusteeToolEnv, seed: int) -> tuple[list[Any], float]:
    obs, info = await env.areset(seed=seed)
    observations: list[Any] = [obs]
    reward = 0.0
    for action in scripted_actions(obs):
        obs, reward, terminated, truncated, info = await env.astep(action)
        observations.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return observations, float(reward)


def _prompt_text(request: dict[str, Any]) -> str:
    return "".join(f"<{m['role']}>{m.get('content') or ''}" for m in request.get("messages", []))


def prefix_sharing(requests: list[tuple[str, dict[str, Any]]], limit: int = 150) -> dict[str, float]:
    """Per role: mean fraction of a prompt that an earlier prompt of the same role already started with.

    That is what vLLM's automatic prefix caching and llama.cpp's slot cache can reuse.
    """
    by_role: dict[str, list[str]] = {}
    for role, request in requests:
        by_role.setdefault(role, []).append(_prompt_text(request))
    out = {}
    for role, prompts in sorted(by_role.items()):
        prompts = prompts[:limit]
        fractions = []
        for i, prompt in enumerate(prompts[1:], start=1):
            best = 0
            for earlier in prompts[:i]:
                n = 0
                for a, b in zip(prompt, earlier, strict=False):
                    if a != b:
                        break
                    n += 1
                best = max(best, n)
            fractions.append(best / max(1, len(prompt)))
        out[role] = round(statistics.mean(fractions), 3) if fractions else 0.0
    return out


def bench_overhead(steps: int) -> dict[str, Any]:
    with FakeLLMServer(ScriptedSimulator()) as server:
        env = make_env(server.base_url)
        per_step: list[float] = []
        per_reset: list[float] = []

        async def run() -> None:
            for seed in range(steps // 2):
                t0 = time.perf_counter()
                obs, _ = await env.areset(seed=seed)  # reset starts a fresh usage: all its LM wait is this reset's
                per_reset.append((time.perf_counter() - t0 - env.episode.usage.latency_s) * 1000)
                for action in scripted_actions(obs):
                    before = env.episode.usage.latency_s
                    t0 = time.perf_counter()
                    _, _, terminated, truncated, _ = await env.astep(action)
                    per_step.append((time.perf_counter() - t0 - (env.episode.usage.latency_s - before)) * 1000)
                    if terminated or truncated:
                        break

        asyncio.run(run())
        env.close()
        sharing = prefix_sharing(server.requests)
    return {
        "shared_prefix_fraction": sharing,
        "steps": len(per_step),
        "median_step_overhead_ms": round(statistics.median(per_step), 3),
        "p90_step_overhead_ms": round(sorted(per_step)[int(0.9 * len(per_step))], 3),
        "median_reset_overhead_ms": round(statistics.median(per_reset), 3),
        "target_ms": 1.0,
    }


async def bare_client_calls_per_s(
    base_url: str, concurrency: int, calls: int, bodies: list[tuple[str, dict[str, Any]]] | None = None
) -> float:
    """Calls/s of a bare AsyncOpenAI loop: tiny "hello" requests, or the exact requests Trustee sent."""
    from openai.types.chat import ChatCompletion

    from trustee_env.llm.client import _http_client

    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, http_client=_http_client(concurrency))
    queue = list(range(calls)) if bodies is None else list(bodies)

    async def worker() -> None:
        while queue:
            item = queue.pop()
            if bodies is None:
                await client.chat.completions.create(
                    model="fake-model",
                    messages=[{"role": "user", "content": "hello"}],
                    extra_headers={"X-Trustee-Role": "policy"},
                )
            else:
                role, body = item  # type: ignore[misc]
                await client.post(
                    "/chat/completions",
                    cast_to=ChatCompletion,
                    body=body,
                    options={"headers": {"X-Trustee-Role": role}},
                )

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    await client.close()
    return calls / elapsed


@contextlib.contextmanager
def server_process(latency: float) -> Iterator[str]:
    """The scripted server in its own process (its own GIL and core), as a real LM server would be."""
    ctx = multiprocessing.get_context("fork")
    ready: Any = ctx.Queue()

    def serve() -> None:
        server = FakeLLMServer(ScriptedSimulator(), latency_s=latency).start()
        ready.put(server.base_url)
        threading.Event().wait()

    process = ctx.Process(target=serve, daemon=True)
    process.start()
    try:
        yield ready.get(timeout=30)
    finally:
        process.terminate()
        process.join(10)


def bench_throughput(episodes: int, latency: float) -> dict[str, Any]:
    with FakeLLMServer(ScriptedSimulator()) as recorder:  # the exact requests one run sends, for a baseline
        asyncio.run(_record_requests(recorder.base_url, episodes))
        sent = list(recorder.requests)
    with server_process(latency) as base_url:
        bare = asyncio.run(bare_client_calls_per_s(base_url, episodes, episodes * 4))
        same = asyncio.run(bare_client_calls_per_s(base_url, episodes, len(sent), bodies=sent))
        envs = [make_env(base_url, concurrency=episodes) for _ in range(episodes)]

        async def run() -> float:
            t0 = time.perf_counter()
            await asyncio.gather(*(play(env, seed) for seed, env in enumerate(envs)))
            return time.perf_counter() - t0

        elapsed = asyncio.run(run())
        calls = sum(env.episode.usage.calls for env in envs)
        for env in envs:
            env.close()
    calls_per_episode = calls / episodes
    ideal_elapsed = calls_per_episode * latency  # every episode in flight at once, calls in sequence
    return {
        "episodes_in_flight": episodes,
        "latency_s": latency,
        "lm_calls": calls,
        "elapsed_s": round(elapsed, 3),
        "episodes_per_s": round(episodes / elapsed, 2),
        "ideal_episodes_per_s": round(episodes / ideal_elapsed, 2),
        "fraction_of_ideal": round(ideal_elapsed / elapsed, 3),
        "env_calls_per_s": round(calls / elapsed, 1),
        "bare_asyncopenai_calls_per_s": round(bare, 1),
        "fraction_of_bare_client": round((calls / elapsed) / bare, 3),
        "bare_client_same_requests_calls_per_s": round(same, 1),
        "fraction_of_bare_client_same_requests": round((calls / elapsed) / same, 3),
    }


async def _record_requests(base_url: str, episodes: int) -> None:
    envs = [make_env(base_url, concurrency=episodes) for _ in range(episodes)]
    await asyncio.gather(*(play(env, seed) for seed, env in enumerate(envs)))
    for env in envs:
        env.close()


def play_in_turn(env: TrusteeToolEnv, episodes: int) -> tuple[list[Any], float]:
    """Play seeds 0..episodes-1 one after another on ``env`` (then close it): (outcomes, seconds)."""

    async def run() -> list[Any]:
        return [await play(env, seed) for seed in range(episodes)]

    t0 = time.perf_counter()
    outcomes = asyncio.run(run())
    elapsed = time.perf_counter() - t0
    env.close()
    return outcomes, elapsed


def bench_replay(episodes: int, latency: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "cache.sqlite")
        with FakeLLMServer(ScriptedSimulator(), latency_s=latency) as server:
            base_url = server.base_url
            recorded, record_s = play_in_turn(make_env(base_url, cache_mode="read_write", cache_path=cache), episodes)
        # server stopped: every answer must come from the cache
        replayed, replay_s = play_in_turn(make_env(base_url, cache_mode="replay_only", cache_path=cache), episodes)
    return {
        "episodes": episodes,
        "record_s": round(record_s, 3),
        "replay_s": round(replay_s, 3),
        "speedup": round(record_s / replay_s, 1),
        "identical": recorded == replayed,
        "target_speedup": 50,
    }


def bench_memory(sizes: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with FakeLLMServer(ScriptedSimulator()) as server:
        shared = make_env(server.base_url)
        for size in sizes:
            gc.collect()
            base = rss_mb()
            envs = [TrusteeToolEnv(config=shared.config, catalog=CATALOG) for _ in range(size)]

            async def start(envs: list[TrusteeToolEnv] = envs) -> None:
                await asyncio.gather(*(env.areset(seed=seed) for seed, env in enumerate(envs)))

            asyncio.run(start())
            grown = rss_mb() - base
            out[str(size)] = {"rss_growth_mb": round(grown, 1), "kb_per_episode": round(grown * 1024 / size, 1)}
            for env in envs:
                env.close()
            del envs
        shared.close()
    small, large = sizes[0], sizes[-1]
    delta = out[str(large)]["rss_growth_mb"] - out[str(small)]["rss_growth_mb"]
    out["kb_per_episode_marginal"] = round(delta * 1024 / (large - small), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--replay-episodes", type=int, default=200)
    parser.add_argument("--replay-latency", type=float, default=0.1, help="server latency while recording")
    args = parser.parse_args(argv)
    quick = args.quick
    result = {
        "python": sys.version.split()[0],
        "overhead": bench_overhead(40 if quick else 400),
        "throughput": bench_throughput(32 if quick else args.in_flight, args.latency),
        "throughput_1s": bench_throughput(32 if quick else args.in_flight, 1.0) if not quick else None,
        "replay": bench_replay(20 if quick else args.replay_episodes, args.replay_latency),
        "memory": bench_memory((16, 64) if quick else (16, 1024)),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
