"""Driving episodes with an LM policy behind an OpenAI-compatible endpoint.

Used by ``trustee demo``: the policy is just another client (the "policy" role, cacheable
like the simulators), so the same local server can play both sides of the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from trustee_env._portal import portal
from trustee_env.config import TrusteeConfig
from trustee_env.env import TrusteeToolEnv
from trustee_env.llm.client import LLMClient
from trustee_env.schemas import Role, derive_seed

__all__ = ["EpisodeSummary", "LMPolicy", "run_episode", "run_episodes"]


class LMPolicy:
    """A policy that asks an LM for the next assistant message.

    With ``tool_format="native"`` it passes ``tools=`` to the server; otherwise the tools
    are already described in the system message by the env.
    """

    def __init__(self, config: TrusteeConfig, *, cache: Any = None) -> None:
        self.client = LLMClient(Role.POLICY.value, config.endpoint(Role.POLICY), cache=cache)
        self.native = config.tool_format == "native"

    async def act(self, observation: dict[str, Any], *, seed: int, usage: Any) -> dict[str, Any]:
        """The next assistant message for ``observation``."""
        tools = observation["tools"] if self.native and observation["tools"] else None
        return await self.client.chat(observation["messages"], seed=seed, usage=usage, tools=tools)


EpisodeSummary = dict[str, Any]


async def run_episode(
    env: TrusteeToolEnv, policy: LMPolicy, *, seed: int, options: dict[str, Any] | None = None
) -> EpisodeSummary:
    """Play one episode to its end on the caller's loop and summarise it (``options`` go to ``areset``)."""
    obs, info = await env.areset(seed=seed, options=options)
    reward, terminated, truncated = 0.0, False, False
    turn = 0
    while not (terminated or truncated):
        if info.get("sim_fault") and turn == 0:
            action: Any = ""
        else:
            action = await policy.act(obs, seed=derive_seed(seed, "policy", turn), usage=env.episode.usage)
        obs, reward, terminated, truncated, info = await env.astep(action)
        turn += 1
    record = env.episode.trajectory()
    usage = record.usage
    return {
        "seed": seed,
        "task_id": info.get("task_id"),
        "intent": (info.get("task") or {}).get("intent", ""),
        "turns": info.get("turn", 0),
        "tool_calls": info.get("tool_calls", 0),
        "parse_errors": info.get("parse_errors", 0),
        "reward": reward,
        "termination": info.get("termination"),
        "sim_fault": info.get("sim_fault"),
        "seconds": record.timings.wall_s,
        "lm_calls": sum(role["calls"] for role in usage.values()),
        "tokens": sum(role["prompt_tokens"] + role["completion_tokens"] for role in usage.values()),
        "repairs": sum(role["repairs"] for role in usage.values()),
        "usage": usage,
    }


def run_episodes(
    env: TrusteeToolEnv,
    policy: LMPolicy,
    seeds: list[int],
    *,
    concurrency: int = 1,
    on_done: Callable[[EpisodeSummary], None] | None = None,
    options: Callable[[int], dict[str, Any] | None] | None = None,
) -> list[EpisodeSummary]:
    """Run episodes (``concurrency`` at a time, each on its own env copy) and return their summaries.

    Runs on the package's background loop (the portal), so it works where a loop is already running
    (Jupyter). The extra envs are closed before returning; ``env`` itself stays open. ``options(seed)``
    gives each episode's reset options (e.g. a task from a task bank).
    """
    order = {seed: index for index, seed in enumerate(seeds)}

    async def main() -> list[EpisodeSummary]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for seed in seeds:
            queue.put_nowait(seed)
        results: list[EpisodeSummary] = []

        async def worker(worker_env: TrusteeToolEnv) -> None:
            while not queue.empty():
                seed = queue.get_nowait()
                summary = await run_episode(worker_env, policy, seed=seed, options=options(seed) if options else None)
                results.append(summary)
                if on_done:
                    on_done(summary)

        with contextlib.ExitStack() as extras:
            envs = [env]
            for _ in range(max(0, min(concurrency, len(seeds)) - 1)):
                extra = TrusteeToolEnv(config=env.config, catalog=env.catalog, curriculum=env.curriculum)
                extras.callback(extra.close)
                envs.append(extra)
            await asyncio.gather(*(worker(e) for e in envs))
        return sorted(results, key=lambda s: order[s["seed"]])

    return portal().run(main)
