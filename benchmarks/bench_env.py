"""Is the env ever the bottleneck? Env overhead, throughput, replay speed and memory, as JSON.

Runs against the scripted OpenAI-compatible server (``trustee_env.testing.FakeLLMServer``) on
127.0.0.1 with a fixed latency per call, so only Trustee's own cost is measured:

* ``overhead``: env time per step minus LM wait, median over steps (0 ms server latency);
* ``throughput``: N episodes in flight through ``areset``/``astep`` at ``--latency`` seconds per call,
  as LM calls/s against a bare ``AsyncOpenAI`` loop with the same concurrency, and episodes/s against
  the latency-bound ideal (calls per episode × latency, all in flight). Two bare baselines send the
  very requests Trustee sent: ``same_requests`` (any free worker takes any request left) and
  ``same_episodes`` (one worker per episode, its requests in order: Trustee's dependency structure);
* ``throughput_1s``: the same at 1 s per call; its one-shot makespan is set by the longest episodes (a
  task regenerated twice takes 7 calls where most take 4), so read ``steady_1s`` for the steady rate;
* ``steady_1s``: ``--in-flight`` slots each play episodes back to back for ``--window`` s (after a 5 s
  warm-up) at 1 s per call; the server counts its answers, and the figure is calls in flight / slots, for
  Trustee and for bare SDK loops (httpx and aiohttp transports) replaying Trustee's own requests;
* ``replay``: a recorded run of ``--replay-episodes`` seeded episodes replayed from the cache with the
  server stopped: speed-up and identity;
* ``memory``: RSS growth per in-flight episode between 16 and 1024 episodes.

The server's answers carry random content as long as the answer schemas allow (a task of ~2,000
characters, tool results filled to their bounds, user turns and judge rationales of ~400 characters),
so parsing, validation and the growing transcripts cost what they cost against a real model.
``throughput`` also reports *process CPU ms per LM call* (``time.process_time``) for Trustee and for a
bare ``AsyncOpenAI`` loop sending the very same request bodies; the server runs in its own process, so
that is the client's CPU alone. The difference is Trustee's own cost per call (target: <= 1 ms).

Usage: ``python benchmarks/bench_env.py [--quick] [--sections throughput ...]`` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import openai

from trustee_env.catalog import Catalog
from trustee_env.env import TrusteeToolEnv
from trustee_env.parsing import render_tool_calls
from trustee_env.schemas import ToolCall
from trustee_env.testing import FakeLLMServer, ScriptedSimulator, example_for

MOCK_CATALOG = Path(__file__).resolve().parent.parent / "tests" / "data" / "mock_catalog.json"
CATALOG = Catalog.default()  # the bundled catalog: realistic tool and result schemas
PINNED = {"num_calls": 1, "num_turns": 1, "num_tools": 3}

_WORDS = (
    "the order account customer booking flight hotel payment invoice refund delivery address status "
    "please could you check update cancel confirm today tomorrow next week my our their with for about "
    "since because after before while details number reference request service support team store item "
    "price total balance schedule meeting room city weather forecast report record history note message "
    "agent user tool call result answer correct expected goal completed quickly carefully politely again "
    "shipping warranty subscription plan upgrade device network password email phone calendar reminder"
).split()


def prose(rng: random.Random, max_chars: int, min_chars: int = 0) -> str:
    """Random English-looking sentences, between ``min_chars`` and ``max_chars`` long, ending in a full stop."""
    target = rng.randint(max(min_chars, int(max_chars * 0.7)), max_chars) - 1
    words: list[str] = []
    length = 0
    while True:
        word = rng.choice(_WORDS)
        if length + len(word) + 1 > target:
            break
        words.append(word)
        length += len(word) + 1
    text = " ".join(words or ["ok"]).capitalize()
    return text[: max(1, max_chars - 1)] + "."


def fill(schema: dict[str, Any], rng: random.Random) -> Any:
    """A random value valid under an answer schema, as large as its bounds allow (strings, arrays)."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return fill(rng.choice(schema[key]), rng)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: fill(sub, rng) for name, sub in props.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 0)), min(int(schema.get("maxItems", 3)), 3))
        return [fill(schema.get("items", {"type": "string"}), rng) for _ in range(count)]
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date":
            return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if fmt == "date-time":
            return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:15:00Z"
        if fmt == "time":
            return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00"
        if fmt == "uuid":
            return str(__import__("uuid").UUID(int=rng.getrandbits(128)))
        if "pattern" in schema:
            return example_for(schema)
        return prose(rng, int(schema.get("maxLength", 200)), int(schema.get("minLength", 0)))
    if kind == "integer":
        low = int(schema.get("minimum", 0))
        return rng.randint(low, int(schema.get("maximum", low + 1000)))
    if kind == "number":
        low = float(schema.get("minimum", 0))
        return round(rng.uniform(low, float(schema.get("maximum", low + 1000))), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    return None


def _answer_schema(request: dict[str, Any]) -> dict[str, Any]:
    fmt = request.get("response_format") or {}
    return fmt["json_schema"]["schema"] if fmt.get("type") == "json_schema" else fmt.get("schema") or {}


class RealisticSimulator(ScriptedSimulator):
    """The scripted simulator with answers as long as a real model's: random prose up to each field's bound.

    Seeded by the request's own seed, so the same request gets the same answer (replays stay identical).
    """

    def __call__(self, role: str, request: dict[str, Any]) -> Any:
        answer = super().__call__(role, request)
        rng = random.Random(f"{role}:{request.get('seed')}:{len(request.get('messages', []))}")
        if not isinstance(answer, dict):
            return answer
        if role == "task_generator":
            task = dict(answer)
            task["system_prompt"] = prose(rng, 780, 600)
            task["persona"] = {**task["persona"], "description": prose(rng, 200, 150)}
            task["intent"] = prose(rng, 390, 300)
            details = task["first_query"]
            task["first_query"] = (prose(rng, max(20, 395 - len(details)), 10) + " " + details)[:400]
            task["rubric"] = [prose(rng, 150, 100) for _ in range(3)]
            return task
        if role == "tool":
            schema = _answer_schema(request)
            result = fill(schema.get("properties", {}).get("result", {"type": "object"}), rng)
            patch_schema = schema.get("properties", {}).get("state_patch", {})
            replace = [
                v
                for v in patch_schema.get("items", {}).get("anyOf", [])
                if v["properties"]["op"].get("const") == "replace"
            ]
            patch = [fill(replace[0], rng)] if replace and rng.random() < 0.5 else []
            return {"result": result, "state_patch": patch}
        if role == "user":
            return {**answer, "message": prose(rng, 400, 300)}
        if role == "judge":
            return {**answer, "rationale": prose(rng, 400, 300)}
        return answer


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
    with FakeLLMServer(RealisticSimulator()) as server:
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


def sdk_client(base_url: str, concurrency: int, transport: str = "httpx") -> openai.AsyncOpenAI:
    """A bare ``AsyncOpenAI`` client: on the SDK's default httpx (with ``concurrency`` keep-alive connections)
    or on its aiohttp option (``openai.DefaultAioHttpClient``, from ``openai[aiohttp]``)."""
    from trustee_env.llm.transport import sdk_http_client

    http = sdk_http_client(concurrency) if transport == "httpx" else openai.DefaultAioHttpClient()
    return openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, http_client=http)


async def sdk_post(client: openai.AsyncOpenAI, role: str, body: dict[str, Any]) -> None:
    """Send one recorded Trustee request as it is, through the SDK's ``post`` with a typed ``ChatCompletion``."""
    from openai.types.chat import ChatCompletion

    await client.post(
        "/chat/completions", cast_to=ChatCompletion, body=body, options={"headers": {"X-Trustee-Role": role}}
    )


def episode_chains(bodies: list[tuple[str, dict[str, Any]]]) -> list[list[tuple[str, dict[str, Any]]]]:
    """Recorded requests grouped by episode (named by the request's ``model``, see ``episode_model``), in order."""
    per_episode: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for role, body in bodies:
        per_episode.setdefault(body["model"], []).append((role, body))
    return list(per_episode.values())


async def bare_client_calls_per_s(
    base_url: str,
    concurrency: int,
    calls: int,
    bodies: list[tuple[str, dict[str, Any]]] | None = None,
    *,
    chains: bool = False,
) -> tuple[float, float, float]:
    """(calls/s, process CPU ms per call, seconds) of a bare AsyncOpenAI loop: tiny "hello" requests, or the
    exact requests Trustee sent.

    ``chains``: each worker sends one episode's requests in their order, the same dependency structure as
    Trustee's episodes; otherwise any free worker takes any request left.
    """
    client = sdk_client(base_url, concurrency)
    queue = list(range(calls)) if bodies is None else list(bodies)
    queues = [list(reversed(chain)) for chain in episode_chains(bodies)] if chains and bodies else [queue] * concurrency

    async def worker(queue: list[Any]) -> None:
        while queue:
            item = queue.pop()
            if bodies is None:
                await client.chat.completions.create(
                    model="fake-model",
                    messages=[{"role": "user", "content": "hello"}],
                    extra_headers={"X-Trustee-Role": "policy"},
                )
            else:
                await sdk_post(client, *item)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(queue) for queue in queues))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await client.close()
    return calls / elapsed, cpu * 1000 / calls, elapsed


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process so far (Linux ``/proc``; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class _Counting:
    """A handler that counts the requests it answers in a counter shared with the benchmark's process."""

    def __init__(self, handler: Any, counter: Any) -> None:
        self.handler, self.counter = handler, counter

    def __call__(self, role: str, request: dict[str, Any]) -> Any:
        with self.counter.get_lock():
            self.counter.value += 1
        return self.handler(role, request)


@contextlib.contextmanager
def server_process(latency: float, counter: Any = None) -> Iterator[tuple[str, int]]:
    """The scripted server in its own process (its own GIL and core), as a real LM server would be.

    ``counter``: a ``multiprocessing.Value`` the server adds one to per request it answers.
    """
    ctx = multiprocessing.get_context("fork")
    ready: Any = ctx.Queue()

    def serve() -> None:
        handler = RealisticSimulator() if counter is None else _Counting(RealisticSimulator(), counter)
        server = FakeLLMServer(handler, latency_s=latency).start()
        ready.put(server.base_url)
        threading.Event().wait()

    process = ctx.Process(target=serve, daemon=True)
    process.start()
    try:
        yield ready.get(timeout=30), int(process.pid or 0)
    finally:
        process.terminate()
        process.join(10)


def bench_throughput(episodes: int, latency: float, profile: str | None = None, repeat: int = 1) -> dict[str, Any]:
    """Trustee vs a bare client on the same requests, ``repeat`` times interleaved (medians reported).

    The load on a shared machine drifts within seconds, so each Trustee run is paired with a bare run
    just before it; CPU per call (``time.process_time``) is the figure that survives the load.
    """
    with FakeLLMServer(RealisticSimulator()) as recorder:  # the exact requests one run sends, for a baseline
        asyncio.run(_record_requests(recorder.base_url, episodes))
        sent = list(recorder.requests)
    runs: list[dict[str, float]] = []
    with server_process(latency) as (base_url, server_pid):
        bare, bare_cpu, _ = asyncio.run(bare_client_calls_per_s(base_url, episodes, episodes * 4))
        for index in range(repeat):
            server0 = process_cpu_s(server_pid)
            same, same_cpu, _ = asyncio.run(bare_client_calls_per_s(base_url, episodes, len(sent), bodies=sent))
            server_bare = process_cpu_s(server_pid) - server0
            chained, chained_cpu, chained_s = asyncio.run(
                bare_client_calls_per_s(base_url, episodes, len(sent), bodies=sent, chains=True)
            )
            envs = [make_env(base_url, concurrency=episodes, model=episode_model(i)) for i in range(episodes)]

            async def run(envs: list[TrusteeToolEnv] = envs) -> tuple[float, float]:
                cpu0, t0 = time.process_time(), time.perf_counter()
                await asyncio.gather(*(play(env, seed) for seed, env in enumerate(envs)))
                return time.perf_counter() - t0, time.process_time() - cpu0

            load = os.getloadavg()[0]
            server0 = process_cpu_s(server_pid)
            if profile and index == 0:
                import cProfile

                profiler = cProfile.Profile()
                elapsed, cpu = profiler.runcall(asyncio.run, run())
                profiler.dump_stats(profile)
            else:
                elapsed, cpu = asyncio.run(run())
            server_trustee = process_cpu_s(server_pid) - server0
            calls = sum(env.episode.usage.calls for env in envs)
            faults = sum(1 for env in envs if env.episode.sim_fault is not None)
            for env in envs:
                env.close()
            ideal_elapsed = calls / episodes * latency  # every episode in flight at once, calls in sequence
            runs.append(
                {
                    "load_average_1min": round(load, 2),
                    "lm_calls": calls,
                    "sim_faults": faults,
                    "elapsed_s": round(elapsed, 3),
                    "fraction_of_ideal": round(ideal_elapsed / elapsed, 3),
                    # The bare loop's calls spread over the same number of in-flight slots.
                    "bare_same_requests_fraction_of_ideal": round(
                        (len(sent) / episodes * latency) * same / len(sent), 3
                    ),
                    "env_calls_per_s": round(calls / elapsed, 1),
                    "bare_same_requests_calls_per_s": round(same, 1),
                    "trustee_cpu_ms_per_call": round(cpu * 1000 / calls, 3),
                    "bare_same_requests_cpu_ms_per_call": round(same_cpu, 3),
                    "bare_same_episodes_fraction_of_ideal": round(ideal_elapsed / chained_s, 3),
                    "bare_same_episodes_cpu_ms_per_call": round(chained_cpu, 3),
                    # The scripted server's own CPU (its process): it shares the machine's cores too.
                    "server_cpu_ms_per_call_trustee_run": round(server_trustee * 1000 / calls, 3),
                    "server_cpu_ms_per_call_bare_run": round(server_bare * 1000 / len(sent), 3),
                }
            )

    def median(name: str) -> float:
        return round(statistics.median(run[name] for run in runs), 3)

    trustee_cpu, bare_same_cpu = median("trustee_cpu_ms_per_call"), median("bare_same_requests_cpu_ms_per_call")
    return {
        "episodes_in_flight": episodes,
        "latency_s": latency,
        "repeat": repeat,
        "lm_calls": median("lm_calls"),
        "fraction_of_ideal": median("fraction_of_ideal"),
        "bare_same_requests_fraction_of_ideal": median("bare_same_requests_fraction_of_ideal"),
        "bare_same_episodes_fraction_of_ideal": median("bare_same_episodes_fraction_of_ideal"),
        "env_calls_per_s": median("env_calls_per_s"),
        "bare_asyncopenai_hello_calls_per_s": round(bare, 1),
        "bare_client_same_requests_calls_per_s": median("bare_same_requests_calls_per_s"),
        "fraction_of_bare_client_same_requests": round(
            median("env_calls_per_s") / median("bare_same_requests_calls_per_s"), 3
        ),
        "cpu_ms_per_call": {
            "trustee": trustee_cpu,
            "bare_same_requests": bare_same_cpu,
            "bare_same_episodes": median("bare_same_episodes_cpu_ms_per_call"),
            "bare_hello": round(bare_cpu, 3),
            "trustee_minus_bare_same_requests": round(
                statistics.median(
                    run["trustee_cpu_ms_per_call"] - run["bare_same_requests_cpu_ms_per_call"] for run in runs
                ),
                3,
            ),
            "target_extra_ms": 1.0,
        },
        "mean_request_bytes": round(statistics.mean(len(json.dumps(body)) for _, body in sent)),
        "runs": runs,
    }


async def _measure_window(
    slot: Callable[[int], Awaitable[None]], slots: int, counter: Any, warmup: float, window: float
) -> tuple[int, float, float]:
    """Run ``slot(i)`` for ``slots`` slots; after ``warmup`` s, count the server's answers over ``window`` s.

    Returns (answers, seconds, process CPU seconds) of the window; the slots are cancelled after it.
    """
    workers = [asyncio.create_task(slot(index)) for index in range(slots)]
    await asyncio.sleep(warmup)
    answers0, cpu0, t0 = counter.value, time.process_time(), time.perf_counter()
    await asyncio.sleep(window)
    answers, cpu, elapsed = counter.value - answers0, time.process_time() - cpu0, time.perf_counter() - t0
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return answers, elapsed, cpu


def _steady_trustee(base_url: str, slots: int) -> Callable[[int], Awaitable[None]]:
    """A slot that plays Trustee episodes back to back on its own env, as a vector env with autoreset does."""

    async def slot(index: int) -> None:
        env = make_env(base_url, concurrency=slots)
        try:
            for seed in itertools.count(index, slots):
                await play(env, seed)
        finally:
            env.close()

    return slot


def _steady_bare(
    client: openai.AsyncOpenAI, chains: list[list[tuple[str, dict[str, Any]]]], slots: int
) -> Callable[[int], Awaitable[None]]:
    """A slot that sends recorded episodes' requests back to back, each episode's in order."""

    async def slot(index: int) -> None:
        for turn in itertools.count(index, slots):
            for role, body in chains[turn % len(chains)]:
                await sdk_post(client, role, body)

    return slot


def bench_steady(slots: int, latency: float, window: float, warmup: float = 5.0, repeat: int = 1) -> dict[str, Any]:
    """Steady state: ``slots`` slots each play episodes back to back; the server counts answers over a window.

    The figure is calls in flight / slots (answers per second x latency / slots; 1.0 = every slot always
    waiting on the server). Unlike ``throughput``, no episode's length sets the end of the run. Trustee is
    compared, in the same run, with bare SDK loops sending Trustee's own recorded requests (each episode's in
    order) on the SDK's default transport (httpx) and on its aiohttp option.
    """
    with FakeLLMServer(RealisticSimulator()) as recorder:
        asyncio.run(_record_requests(recorder.base_url, slots))
        chains = episode_chains(list(recorder.requests))
    counter: Any = multiprocessing.get_context("fork").Value("q", 0)
    runs: list[dict[str, Any]] = []

    def figures(answers: int, elapsed: float, cpu: float) -> dict[str, float]:
        return {
            "calls_per_s": round(answers / elapsed, 1),
            "fraction_of_ideal": round(answers / elapsed * latency / slots, 3),
            "cpu_ms_per_call": round(cpu * 1000 / max(answers, 1), 3),
        }

    async def bare(base_url: str, transport: str) -> tuple[int, float, float]:
        client = sdk_client(base_url, slots, transport)
        try:
            return await _measure_window(_steady_bare(client, chains, slots), slots, counter, warmup, window)
        finally:
            await client.close()

    with server_process(latency, counter) as (base_url, _):
        for _ in range(repeat):
            runs.append(
                {
                    "load_average_1min": round(os.getloadavg()[0], 2),
                    "bare_sdk_httpx": figures(*asyncio.run(bare(base_url, "httpx"))),
                    "bare_sdk_aiohttp": figures(*asyncio.run(bare(base_url, "aiohttp"))),
                    "trustee": figures(
                        *asyncio.run(_measure_window(_steady_trustee(base_url, slots), slots, counter, warmup, window))
                    ),
                }
            )

    def median(who: str, name: str) -> float:
        return round(statistics.median(run[who][name] for run in runs), 3)

    whos = ("trustee", "bare_sdk_httpx", "bare_sdk_aiohttp")
    return {
        "slots": slots,
        "latency_s": latency,
        "window_s": window,
        "repeat": repeat,
        **{who: {name: median(who, name) for name in runs[0][who]} for who in whos},
        "target_fraction_of_ideal": 0.85,
        "runs": runs,
    }


def episode_model(index: int) -> str:
    """The model name episode ``index`` asks for: the scripted server ignores it, the bare loop groups by it."""
    return f"fake-model-{index}"


async def _record_requests(base_url: str, episodes: int) -> None:
    envs = [make_env(base_url, concurrency=episodes, model=episode_model(i)) for i in range(episodes)]
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
        with FakeLLMServer(RealisticSimulator(), latency_s=latency) as server:
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
    with FakeLLMServer(RealisticSimulator()) as server:
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


SECTIONS = ("overhead", "throughput", "throughput_1s", "steady_1s", "replay", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--replay-episodes", type=int, default=200)
    parser.add_argument("--replay-latency", type=float, default=0.1, help="server latency while recording")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=None, help="run only these sections")
    parser.add_argument("--profile", default=None, help="cProfile the Trustee run of `throughput` into this file")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved bare/Trustee runs per throughput section")
    parser.add_argument("--window", type=float, default=20.0, help="seconds counted per steady_1s run")
    args = parser.parse_args(argv)
    quick = args.quick
    in_flight = 32 if quick else args.in_flight
    wanted = set(args.sections or SECTIONS)
    if quick and args.sections is None:
        wanted -= {"throughput_1s", "steady_1s"}
    runs = {
        "overhead": lambda: bench_overhead(40 if quick else 400),
        "throughput": lambda: bench_throughput(in_flight, args.latency, profile=args.profile, repeat=args.repeat),
        "throughput_1s": lambda: bench_throughput(in_flight, 1.0, repeat=args.repeat),
        "steady_1s": lambda: bench_steady(in_flight, 1.0, 5.0 if quick else args.window, repeat=args.repeat),
        "replay": lambda: bench_replay(20 if quick else args.replay_episodes, args.replay_latency),
        "memory": lambda: bench_memory((16, 64) if quick else (16, 1024)),
    }
    result: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    for name in SECTIONS:
        if name in wanted:
            result[name] = runs[name]()
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
