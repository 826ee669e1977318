"""Drive Trustee episodes with any OpenAI-compatible model as the policy.

    trustee serve --port 8000 &                     # or vLLM on a GPU, see the README
    python examples/openai_policy.py --base-url http://127.0.0.1:8000/v1 --episodes 2

The policy sees exactly what a trainer would give it: ``obs["messages"]`` and ``obs["tools"]``.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import openai

import trustee_env  # noqa: F401  (registers Trustee-v0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default=None)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--native-tools", action="store_true", help="the model supports tools= natively")
    args = parser.parse_args()

    client = openai.OpenAI(base_url=args.base_url, api_key="EMPTY")
    model = args.model or client.models.list().data[0].id
    env = gym.make(
        "Trustee-v0",
        base_url=args.base_url,
        model=model,
        difficulty=20,
        max_steps=4,
        tool_format="native" if args.native_tools else "hermes",
        trajectory_path="trustee_runs/openai_policy.jsonl",
    )
    for seed in range(args.episodes):
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            reply = client.chat.completions.create(
                model=model,
                messages=obs["messages"],
                tools=obs["tools"] if args.native_tools else None,
                max_tokens=200,
            )
            # the SDK message object is a valid action as is
            obs, reward, terminated, truncated, info = env.step(reply.choices[0].message)
            done = terminated or truncated
        print(f"episode {seed}: reward {reward:+.0f}  ended {info['termination']}  sim_fault {info['sim_fault']}")
        print(env.render())
    env.close()


if __name__ == "__main__":
    main()
