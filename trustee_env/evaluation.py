"""Scoring a policy on a held-out task bank: mean reward with a 95% confidence interval, per difficulty and criterion.

The set never drifts: every task comes from a :class:`~trustee_env.bank.TaskBank` and is replayed with
``reset(options={"task": ...})``. A policy is an OpenAI-compatible endpoint (any served model, the
embedded one included) or a Hugging Face folder (sampled with transformers, via
:func:`trustee_env.hf.rollout`; needs the ``train`` extra). Episodes with a simulator fault are
counted and left out of every mean: they say nothing about the policy.

Confidence intervals are percentile bootstraps (rewards are bounded and few; no normal
approximation), seeded so a report is reproducible.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from trustee_env.bank import TaskBank
from trustee_env.checks import criteria

__all__ = ["Estimate", "EvalReport", "bootstrap_ci", "evaluate_endpoint", "evaluate_hf", "summarize"]

DIFFICULTY_BINS = (0, 20, 40, 60, 80, 100)


class Estimate(BaseModel):
    """A mean with its 95% bootstrap confidence interval."""

    n: int
    mean: float | None
    ci95: tuple[float, float] | None

    def __str__(self) -> str:
        if self.mean is None or self.ci95 is None:
            return "n/a (n=0)"
        return f"{self.mean:+.3f} [{self.ci95[0]:+.3f}, {self.ci95[1]:+.3f}] (n={self.n})"


class EvalReport(BaseModel):
    """What ``trustee eval`` prints and writes."""

    policy: str
    bank_id: str
    tasks: int
    repeats: int
    episodes: int
    sim_faults: int
    reward: Estimate
    success: Estimate = Field(description="Fraction of episodes with reward > 0.")
    per_difficulty: dict[str, Estimate]
    per_criterion: dict[str, float] = Field(description="Fraction of episodes whose deterministic check passed.")
    valid_call_rate: float = Field(description="Episodes with at least one well-formed, schema-valid tool call.")
    seconds: float
    rewards: list[float | None] = Field(description="Per episode, bank order, repeats adjacent (None: sim fault).")


def bootstrap_ci(values: Sequence[float], *, resamples: int = 4000, seed: int = 0) -> Estimate:
    """Mean and 95% percentile-bootstrap interval of ``values``."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return Estimate(n=0, mean=None, ci95=None)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(
        n=int(data.size), mean=round(float(data.mean()), 6), ci95=(round(float(low), 6), round(float(high), 6))
    )


def _bin(difficulty: float) -> str:
    for low, high in itertools.pairwise(DIFFICULTY_BINS):
        if difficulty <= high:
            return f"{low + 1 if low else 1}-{high}"
    return "81-100"


def summarize(
    policy: str,
    bank: TaskBank,
    outcomes: Sequence[tuple[int, float | None, dict[str, Any]]],
    *,
    repeats: int,
    seconds: float,
) -> EvalReport:
    """A report from ``(task index, reward or None, final info)`` per episode."""
    rewards = [reward for _, reward, _ in outcomes]
    valid = [(i, r, info) for i, r, info in outcomes if r is not None]
    by_difficulty: dict[str, list[float]] = defaultdict(list)
    for index, reward, _ in valid:
        by_difficulty[_bin(bank.tasks[index].difficulty)].append(reward)
    failed: dict[str, int] = defaultdict(int)
    calls = 0
    for _, _, info in valid:
        checks = ((info.get("verdict") or {}).get("checks")) or {}
        for name in {cap.get("criterion") for cap in checks.get("violations", [])}:
            failed[str(name)] += 1
        calls += int((((info.get("usage") or {}).get("tool")) or {}).get("calls", 0) > 0)
    n = len(valid)
    return EvalReport(
        policy=policy,
        bank_id=bank.bank_id,
        tasks=len(bank.tasks),
        repeats=repeats,
        episodes=len(outcomes),
        sim_faults=len(outcomes) - n,
        reward=bootstrap_ci([r for _, r, _ in valid]),
        success=bootstrap_ci([float(r > 0) for _, r, _ in valid]),
        per_difficulty={key: bootstrap_ci(values) for key, values in sorted(by_difficulty.items())},
        per_criterion={c.name: round(1 - failed[c.name] / n, 4) if n else 0.0 for c in criteria()},
        valid_call_rate=round(calls / n, 4) if n else 0.0,
        seconds=round(seconds, 2),
        rewards=rewards,
    )


def evaluate_hf(
    policy_path: str | None,
    bank: TaskBank,
    *,
    repeats: int = 1,
    batch_tasks: int = 4,
    temperature: float = 0.7,
    max_turn_tokens: int = 96,
    max_completion_tokens: int = 512,
    seed: int = 0,
    on_episode: Callable[[], None] | None = None,
    **env_kwargs: Any,
) -> EvalReport:
    """Score a Hugging Face policy (None: the bundled SmolLM2): ``repeats`` samples of every bank task."""
    import gymnasium as gym

    from trustee_env.hf import HFPolicy, load_policy, rollout
    from trustee_env.tokens import TurnTokenizer

    began = time.perf_counter()
    model, tokenizer = load_policy(policy_path)
    policy = HFPolicy(
        model, tokenizer, TurnTokenizer(tokenizer), temperature=temperature, max_turn_tokens=max_turn_tokens
    )
    env_kwargs.setdefault("tool_format", "hermes")
    outcomes: list[tuple[int, float | None, dict[str, Any]]] = []
    for start in range(0, len(bank.tasks), batch_tasks):
        chunk = bank.tasks[start : start + batch_tasks]
        env = gym.make_vec("Trustee-v0", num_envs=len(chunk) * repeats, group_size=repeats, **env_kwargs)
        try:
            episodes = rollout(
                env,
                policy,
                tasks=chunk,
                seed=seed + start,
                max_completion_tokens=max_completion_tokens,
                on_episode=(lambda _ep: on_episode()) if on_episode else None,
            )
        finally:
            env.close()
        outcomes.extend((start + i // repeats, ep.reward, ep.info) for i, ep in enumerate(episodes))
    return summarize(
        policy_path or "bundled SmolLM2-135M-Instruct (transformers)",
        bank,
        outcomes,
        repeats=repeats,
        seconds=time.perf_counter() - began,
    )


async def _aevaluate_endpoint(
    bank: TaskBank,
    *,
    repeats: int,
    concurrency: int,
    seed: int,
    on_episode: Callable[[], None] | None,
    **env_kwargs: Any,
) -> list[tuple[int, float | None, dict[str, Any]]]:
    from trustee_env.env import TrusteeToolEnv
    from trustee_env.rollout import LMPolicy
    from trustee_env.schemas import derive_seed

    gate = asyncio.Semaphore(max(1, concurrency))
    first = TrusteeToolEnv(**env_kwargs)
    policy = LMPolicy(first.config)

    async def one(index: int, repeat: int) -> tuple[int, float | None, dict[str, Any]]:
        async with gate:
            env = TrusteeToolEnv(config=first.config, catalog=first.catalog)
            try:
                episode_seed = derive_seed(seed, index, repeat)
                obs, info = await env.areset(seed=episode_seed, options={"task": bank.tasks[index]})
                reward, done, turn = 0.0, bool(info.get("sim_fault")), 0
                while not done:
                    action = await policy.act(
                        obs, seed=derive_seed(episode_seed, "policy", turn), usage=env.episode.usage
                    )
                    obs, reward, terminated, truncated, info = await env.astep(action)
                    done, turn = terminated or truncated, turn + 1
            finally:
                env.close()
        if on_episode is not None:
            on_episode()
        return index, (None if info.get("sim_fault") else float(reward)), info

    try:
        return list(await asyncio.gather(*(one(i, r) for i in range(len(bank.tasks)) for r in range(repeats))))
    finally:
        first.close()


def evaluate_endpoint(
    bank: TaskBank,
    *,
    repeats: int = 1,
    concurrency: int = 8,
    seed: int = 0,
    on_episode: Callable[[], None] | None = None,
    **env_kwargs: Any,
) -> EvalReport:
    """Score the policy endpoint of the config (``policy={"base_url": ..., "model": ...}``) on the bank."""
    from trustee_env._portal import portal

    began = time.perf_counter()
    outcomes = portal().run(
        lambda: _aevaluate_endpoint(
            bank, repeats=repeats, concurrency=concurrency, seed=seed, on_episode=on_episode, **env_kwargs
        )
    )
    policy = env_kwargs.get("policy") or {}
    name = str(policy.get("model") or policy.get("base_url") or env_kwargs.get("base_url") or "embedded server")
    return summarize(name, bank, outcomes, repeats=repeats, seconds=time.perf_counter() - began)
