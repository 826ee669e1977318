"""SkyRL adapter: ``init``/``step`` over real Trustee episodes (runs in the skyrl venv).

``scripts/test-integrations skyrl`` creates that venv; elsewhere these tests are skipped.
SkyRL's trainer needs GPUs (vLLM, flash-attn), so the test drives the environment the way its
generator does: ``skyrl_gym.make(env_class, env_config=..., extras=row)``, ``init``, ``step``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

skyrl_gym = pytest.importorskip(
    "skyrl_gym", reason="skyrl-gym is not installed here; run scripts/test-integrations skyrl"
)

import pyarrow.parquet as pq  # noqa: E402
from helpers import ENV_KWARGS, USER_REPLY, make_tasks, scripted_server  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from trustee_env.integrations.skyrl import ENV_CLASS, TrusteeTextEnv, register_env, write_dataset  # noqa: E402
from trustee_env.testing import Reply  # noqa: E402


def rows(tasks: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    """The dataset rows as SkyRL reads them back from parquet."""
    return pq.read_table(write_dataset(tasks, tmp_path / "train.parquet")).to_pylist()


def make(base_url: str, row: dict[str, Any], **config: Any) -> Any:
    register_env()
    env_config = OmegaConf.create({"env_kwargs": {"base_url": base_url, **ENV_KWARGS}, **config})
    return skyrl_gym.make(row["env_class"], env_config=env_config, extras=row)


def test_init_step_loop_plays_episodes(tmp_path: Path) -> None:
    with scripted_server() as server:
        tasks = make_tasks(server.base_url, 2)
        for row, task in zip(rows(tasks, tmp_path), tasks, strict=True):
            assert row["env_class"] == ENV_CLASS
            env = make(server.base_url, row)
            assert isinstance(env, TrusteeTextEnv) and env.max_turns == 8
            prompt, info = env.init(row["prompt"])
            assert info["task_id"] == task["task_id"]
            assert [m["role"] for m in prompt] == ["system", "user"] and "<tool_call>" in prompt[0]["content"]
            assert prompt[1]["content"] == task["first_query"]

            first = env.step("Which account do you mean?")
            assert not first["done"] and first["reward"] == 0.0
            assert first["observations"] == [{"role": "user", "content": USER_REPLY}]
            last = env.step("Done, anything else?")
            assert last["done"] and last["observations"] == []
            assert last["reward"] in (-1.0, 0.0) and last["metadata"]["sim_fault"] is None
            assert last["metadata"]["termination"] == "user_satisfied"
            assert env.get_metrics()["turns"] == 2
            env.close()


def test_max_turns_finishes_and_judges(tmp_path: Path) -> None:
    with scripted_server() as server:
        (row,) = rows(make_tasks(server.base_url, 1), tmp_path)
        env = make(server.base_url, row, max_turns=1)
        env.init(row["prompt"])
        out = env.step("Let me think about that.")
    assert out["done"] and out["metadata"]["termination"] == "agent_budget" and out["reward"] <= 0.0


def test_sim_fault_ends_the_episode_with_reward_zero(tmp_path: Path) -> None:
    with scripted_server() as server:
        (row,) = rows(make_tasks(server.base_url, 1), tmp_path)
    with scripted_server(faults={"user": [Reply(content="not json")] * 20}) as faulty:
        env = make(faulty.base_url, row)
        env.init(row["prompt"])
        out = env.step("Hello?")
    assert out["done"] and out["reward"] == 0.0 and out["metadata"]["sim_fault"] == "user"
    assert env.get_metrics()["sim_fault"] == 1
