"""Does the embedded llama-cpp-python server re-read prompts? Prompt tokens evaluated, cache off vs on (JSON).

Records the exact requests of a few demo-like episodes (task generator, policy, tool, user, judge; scripted
answers from ``FakeLLMServer``), then replays them in order to the real server serving the bundled
SmolLM2-135M with ``max_tokens=1``: as started today, with ``--logits_all false`` (logits of the last
position only; Trustee never asks for logprobs), and with that plus llama-cpp-python's RAM prompt cache.
Per run: wall seconds and the prompt tokens the server actually evaluated (from its ``llama_perf`` log
lines), which does not depend on how busy the machine is. Generation is not measured (the cache cannot
help it).

Usage: ``python benchmarks/bench_prompt_cache.py [--episodes 2]`` (starts one server at a time).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

import httpx2 as httpx

from trustee_env.env import TrusteeToolEnv
from trustee_env.rollout import LMPolicy, run_episodes
from trustee_env.serve.local import LocalServer, ServerSpec
from trustee_env.testing import FakeLLMServer, ScriptedSimulator, example_for

_PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")


def probe_policy(request: dict[str, Any]) -> str:
    """First turn: call the first listed tool with example arguments (so the tool role is exercised)."""
    if any(m["role"] == "assistant" for m in request["messages"]):
        return "Done: I did what you asked."
    system = request["messages"][0]["content"]
    tool = json.loads(system.split("<tools>", 1)[1].split("</tools>", 1)[0].strip().splitlines()[0])
    call = {"name": tool["name"], "arguments": example_for(tool["parameters"])}
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"


def record_requests(episodes: int) -> list[tuple[str, dict[str, Any]]]:
    """The requests ``episodes`` scripted episodes send, in order (hermes policy, demo settings)."""
    with FakeLLMServer(ScriptedSimulator(policy=probe_policy)) as server:
        env = TrusteeToolEnv(
            base_url=server.base_url, model="fake-model", tool_format="hermes", difficulty=10.0, max_steps=3
        )
        run_episodes(env, LMPolicy(env.config), list(range(episodes)))
        env.close()
        return list(server.requests)


def replay(requests: list[tuple[str, dict[str, Any]]], cache_mb: int, logits_all: bool) -> dict[str, Any]:
    """Replay to a fresh server; wall time and prompt tokens evaluated."""
    spec = ServerSpec(
        engine="llama-cpp-python",
        prompt_cache_mb=cache_mb,
        extra_args=[] if logits_all else ["--logits_all", "false"],
    )
    with LocalServer(spec) as server:
        t0 = time.perf_counter()
        with httpx.Client(base_url=server.base_url, timeout=600) as client:
            for _role, body in requests:
                payload = {"model": server.model_name, "messages": body["messages"], "max_tokens": 1, "temperature": 0}
                client.post("/chat/completions", json=payload).raise_for_status()
        elapsed = time.perf_counter() - t0
        log = server.log_tail(100_000)
    evals = [(float(ms), int(n)) for ms, n in _PROMPT_EVAL.findall(log)]
    return {
        "prompt_cache_mb": cache_mb,
        "logits_all": logits_all,
        "requests": len(requests),
        "wall_s": round(elapsed, 1),
        "prompt_tokens_evaluated": sum(n for _, n in evals),
        "prompt_eval_s": round(sum(ms for ms, _ in evals) / 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--cache-mb", type=int, default=ServerSpec().prompt_cache_mb)
    parser.add_argument("--only-cache", action="store_true", help="only the cached run (its token count)")
    args = parser.parse_args(argv)
    requests = record_requests(args.episodes)
    # logits_all=True with the cache is not measured: each saved state would copy every prompt position's
    # logits (~0.2 MB per token, not counted against the cache size), gigabytes after a few calls.
    if args.only_cache:
        print(json.dumps({"episodes": args.episodes, "cache": replay(requests, args.cache_mb, False)}, indent=2))
        return 0
    result: dict[str, Any] = {
        "episodes": args.episodes,
        "default": replay(requests, 0, logits_all=True),
        "no_logits_all": replay(requests, 0, logits_all=False),
        "no_logits_all_cache": replay(requests, args.cache_mb, logits_all=False),
    }
    base = result["default"]
    for name in ("no_logits_all", "no_logits_all_cache"):
        run = result[name]
        run["prompt_tokens_vs_default"] = round(
            run["prompt_tokens_evaluated"] / max(1, base["prompt_tokens_evaluated"]), 3
        )
        run["wall_speedup_vs_default"] = round(base["wall_s"] / max(1e-9, run["wall_s"]), 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
