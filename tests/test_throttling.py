"""No silent throttling: a high default limit, and queuing behind the limit is logged once and counted."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import gymnasium as gym
import pytest

from trustee_env.config import DEFAULT_CONCURRENCY, TrusteeConfig
from trustee_env.llm.limits import EndpointLimiter, limiter_for
from trustee_env.schemas import Role


def test_default_concurrency_takes_a_full_vllm_batch() -> None:
    cfg = TrusteeConfig(base_url="http://127.0.0.1:9/v1")
    assert DEFAULT_CONCURRENCY >= 256
    assert all(cfg.endpoint(role).concurrency >= 256 for role in Role)


async def _play(env: gym.Env[Any, Any], seed: int) -> dict[str, Any]:
    _, info = await env.unwrapped.areset(seed=seed)
    done = False
    while not done:
        _, _, terminated, truncated, info = await env.unwrapped.astep("Here is what I found.")
        done = terminated or truncated
    return info


def _queuing_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "queuing behind its concurrency limit" in r.getMessage()]


def test_queuing_behind_a_low_limit_is_logged_once_and_counted(make_env, fake_server, caplog) -> None:
    server = fake_server()
    # Limiters are per URL and process-wide, and the OS reuses ports: a path of its own keeps an earlier test's
    # limiter (with a higher limit, or its one warning already given) off this server's URL.
    server_url = f"{server.base_url}/{uuid.uuid4().hex}"
    envs = [make_env(base_url=server_url, concurrency=2) for _ in range(6)]
    server.latency_s = 0.05  # every call takes a while: six episodes contend for two slots

    async def run() -> list[dict[str, Any]]:
        return await asyncio.gather(*(_play(env, seed) for seed, env in enumerate(envs)))

    with caplog.at_level(logging.WARNING, logger="trustee_env"):
        infos = asyncio.run(run())
    assert all(info["sim_fault"] is None for info in infos)
    lines = _queuing_lines(caplog)
    assert len(lines) == 1, lines
    assert server_url in lines[0] and "concurrency" in lines[0]
    queued = sum(env.unwrapped.stats["usage"].queued for env in envs)
    assert queued > 0
    assert limiter_for(server_url, 2).queued == queued
    waits = [entry["queue_wait_s"] for env in envs for entry in env.unwrapped.stats["usage"].timing_view().values()]
    assert sum(waits) > 0
    # Deterministic info stays free of timing-dependent counters.
    assert all("queued" not in entry for info in infos for entry in info["usage"].values())


def test_no_queuing_no_warning_under_the_default_limit(make_env, caplog) -> None:
    first = make_env()
    envs = [first] + [make_env(server=make_env.server) for _ in range(3)]

    async def run() -> list[dict[str, Any]]:
        return await asyncio.gather(*(_play(env, seed) for seed, env in enumerate(envs)))

    with caplog.at_level(logging.WARNING, logger="trustee_env"):
        asyncio.run(run())
    assert _queuing_lines(caplog) == []
    assert sum(env.unwrapped.stats["usage"].queued for env in envs) == 0


def test_a_larger_limit_asked_later_grows_the_shared_limiter_and_wakes_waiters() -> None:
    url = "http://127.0.0.1:1/v1-growth-test"
    limiter = limiter_for(url, 1)

    async def run() -> None:
        assert await limiter.acquire() is False
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.01)
        assert not waiter.done() and limiter.waiting == 1
        assert limiter_for(url, 3) is limiter  # another env asks for more: the largest limit holds
        assert await asyncio.wait_for(waiter, 1) is True
        assert limiter.limit == 3 and limiter.in_flight == 2
        assert await limiter.acquire() is False  # the third slot is free
        limiter_for(url, 2)  # a smaller ask never shrinks it
        assert limiter.limit == 3
        for _ in range(3):
            limiter.release()
        assert limiter.in_flight == 0

    asyncio.run(run())


def test_limiter_counts_only_waits() -> None:
    limiter = EndpointLimiter(1, name="x")

    async def run() -> None:
        await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        limiter.release()
        assert await waiter is True
        limiter.release()

    asyncio.run(run())
    assert limiter.queued == 1 and limiter.in_flight == 0
