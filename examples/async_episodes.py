"""Many episodes in flight on your own event loop, with ``areset``/``astep``.

Runs against the scripted fake server, so it needs no model:

    python examples/async_episodes.py
"""

from __future__ import annotations

import asyncio

import gymnasium as gym

import trustee_env  # noqa: F401
from trustee_env.testing import FakeLLMServer, ScriptedSimulator


async def play(env: gym.Env, seed: int) -> float:
    obs, info = await env.unwrapped.areset(seed=seed)
    reward, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = await env.unwrapped.astep("Could you tell me more?")
        done = terminated or truncated
    return reward


async def main() -> None:
    with FakeLLMServer(ScriptedSimulator(), latency_s=0.05) as server:
        envs = [gym.make("Trustee-v0", base_url=server.base_url, difficulty=5) for _ in range(32)]
        rewards = await asyncio.gather(*(play(env, seed) for seed, env in enumerate(envs)))
        print(
            f"{len(rewards)} episodes, mean reward {sum(rewards) / len(rewards):+.2f}, "
            f"{len(server.requests)} simulator calls"
        )


if __name__ == "__main__":
    asyncio.run(main())
