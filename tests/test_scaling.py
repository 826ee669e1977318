"""Several endpoints per role: least-loaded choice, failover when one dies, one limit across loops."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import gymnasium as gym

from trustee_env.llm.limits import EndpointLimiter, EndpointPool
from trustee_env.testing import FakeLLMServer, ScriptedSimulator


def _finish(env: gym.Env, seed: int) -> dict[str, Any]:
    _, info = env.reset(seed=seed)
    assert info["sim_fault"] is None, info["sim_fault"]
    done = False
    while not done:
        _obs, _reward, terminated, truncated, info = env.step("Here is what I found.")
        done = terminated or truncated
    return info


def test_requests_spread_over_two_servers_and_fail_over_when_one_dies(fake_server, mock_catalog) -> None:
    script = ScriptedSimulator()
    first, second = fake_server(script), fake_server(script)

    def make() -> gym.Env:
        return gym.make(
            "Trustee-v0",
            base_url=[first.base_url, second.base_url],
            model="fake-model",
            catalog=mock_catalog,
            max_retries=2,
            timeout=5,
        )

    env = make()

    # Concurrent episodes through the async API: least-loaded choice uses both servers.
    async def many() -> None:
        envs = [make().unwrapped for _ in range(8)]
        await asyncio.gather(*(e.areset(seed=i) for i, e in enumerate(envs)))
        for e in envs:
            e.close()

    asyncio.run(many())
    assert first.requests and second.requests, "both servers should have served requests"

    _finish(env, seed=1)
    first.stop()  # one server dies mid-run
    before = len(second.requests)
    infos = [_finish(env, seed=s) for s in (2, 3, 4)]
    assert all(info["sim_fault"] is None for info in infos)
    assert len(second.requests) > before
    env.close()


def test_all_servers_dead_is_a_labelled_connection_fault(dead_url, mock_catalog) -> None:
    env = gym.make(
        "Trustee-v0",
        base_url=[dead_url, dead_url.replace("/v1", "/x/v1")],
        model="m",
        catalog=mock_catalog,
        max_retries=1,
        timeout=2,
    )
    _obs, info = env.reset(seed=0)
    assert info["sim_fault"]["reason"] == "connection"
    assert info["sim_fault"]["role"] == "task_generator"
    env.close()


def test_pool_prefers_the_least_loaded_and_skips_a_dead_one() -> None:
    pool = EndpointPool(["a", "b"], cooldown_s=60)
    assert pool.choose() == "a"
    assert pool.choose() == "b"  # a is busy
    pool.done("a", failed=True)  # a died
    assert pool.choose() == "b"
    pool.done("b")
    pool.done("b")
    assert pool.choose() == "b"


def test_one_limit_holds_across_event_loops_in_threads() -> None:
    limiter = EndpointLimiter(3)
    peak = 0
    current = 0
    lock = threading.Lock()

    async def work() -> None:
        nonlocal peak, current
        async with limiter:
            with lock:
                current += 1
                peak = max(peak, current)
            await asyncio.sleep(0.01)
            with lock:
                current -= 1

    def loop_in_thread() -> None:
        async def main() -> None:
            await asyncio.gather(*(work() for _ in range(20)))

        asyncio.run(main())

    threads = [threading.Thread(target=loop_in_thread) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert peak == 3
    assert limiter.in_flight == 0


def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    limiter = EndpointLimiter(1)

    async def main() -> None:
        await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        limiter.release()
        await asyncio.sleep(0.01)
        assert limiter.in_flight == 0
        async with limiter:
            assert limiter.in_flight == 1

    asyncio.run(main())


def test_fake_server_helper_is_usable_directly() -> None:
    with FakeLLMServer(ScriptedSimulator()) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
