"""Task banks (trustee_env.bank) and replaying them through the vector env (``tasks`` option, held slots)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from trustee_env.bank import TaskBank, build_bank
from trustee_env.catalog import Catalog
from trustee_env.errors import ConfigError
from trustee_env.testing import FakeLLMServer, ScriptedSimulator


@pytest.fixture
def bank(fake_server: Callable[..., FakeLLMServer], mock_catalog: Catalog) -> TaskBank:
    server = fake_server(ScriptedSimulator())
    return build_bank(4, seed=3, difficulties=(1, 40), base_url=server.base_url, catalog=mock_catalog, timeout=10.0)


def test_bank_is_built_saved_and_loaded_unchanged(bank: TaskBank, tmp_path: Path):
    assert len(bank) == 4 and bank.failed == 0
    assert [task.difficulty for task in bank.tasks] == [1.0, 14.0, 27.0, 40.0]
    path = bank.save(tmp_path / "banks" / "heldout.json")
    again = TaskBank.load(path)
    assert again.bank_id == bank.bank_id
    assert again.tasks == bank.tasks
    summary = again.summary()
    assert summary["tasks"] == 4 and summary["difficulty"]["max"] == 40.0


def test_a_plain_list_of_tasks_loads(bank: TaskBank, tmp_path: Path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([task.model_dump(mode="json") for task in bank.tasks]))
    assert TaskBank.load(path).bank_id == bank.bank_id


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "not readable JSON"),
        ('{"tasks": [{"intent": 3}]}', "not valid: tasks.0"),
    ],
)
def test_bad_bank_files_get_one_clear_error(tmp_path: Path, content: str | None, message: str):
    path = tmp_path / "bank.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        TaskBank.load(path)


def test_select_follows_the_difficulty(bank: TaskBank):
    rng = np.random.default_rng(0)
    picks = [task for _ in range(10) for task in bank.select(2, difficulty=1.0, rng=rng)]
    assert {task.difficulty for task in picks} == {1.0, 14.0}  # the nearest quarter, but at least n candidates
    assert {task.difficulty for task in bank.select(1, difficulty=33.0, rng=rng)} == {27.0}
    first, second = bank.split(0.5, seed=1)
    assert len(first) == len(second) == 2
    assert not {t.model_dump_json() for t in first.tasks} & {t.model_dump_json() for t in second.tasks}


def test_vector_env_replays_one_bank_task_per_group(
    bank: TaskBank, fake_server: Callable[..., FakeLLMServer], mock_catalog: Catalog
):
    server = fake_server(ScriptedSimulator())
    env = gym.make_vec(
        "Trustee-v0", num_envs=4, group_size=2, base_url=server.base_url, catalog=mock_catalog, timeout=10.0
    )
    try:
        tasks = [bank.tasks[2].model_dump(mode="json"), bank.tasks[0]]
        obs, infos = env.reset(seed=5, options={"tasks": tasks})
        assert "task_generator" not in server.roles()  # nothing generated: the bank's tasks are played
        assert [o["messages"][1]["content"] for o in obs] == [bank.tasks[2].first_query] * 2 + [
            bank.tasks[0].first_query
        ] * 2
        assert list(infos["difficulty"]) == [27.0, 27.0, 1.0, 1.0]
    finally:
        env.close()


def test_tasks_option_errors(bank: TaskBank, fake_server: Callable[..., FakeLLMServer], mock_catalog: Catalog):
    server = fake_server(ScriptedSimulator())
    env = gym.make_vec("Trustee-v0", num_envs=2, base_url=server.base_url, catalog=mock_catalog, timeout=10.0)
    try:
        with pytest.raises(ConfigError, match="exclude each other"):
            env.reset(options={"tasks": bank.tasks, "task": bank.tasks[0]})
        with pytest.raises(ConfigError, match="non-empty list"):
            env.reset(options={"tasks": []})
    finally:
        env.close()


def test_none_holds_a_running_slot_without_calling_a_simulator(
    bank: TaskBank, fake_server: Callable[..., FakeLLMServer], mock_catalog: Catalog
):
    server = fake_server(ScriptedSimulator())
    env = gym.make_vec("Trustee-v0", num_envs=2, base_url=server.base_url, catalog=mock_catalog, timeout=10.0)
    try:
        obs, _ = env.reset(seed=1, options={"tasks": bank.tasks[:2]})
        before = len(server.requests)
        held: Any = None
        obs2, rewards, terminated, truncated, infos = env.step([held, "Could you tell me more?"])
        assert obs2[0] == obs[0] and rewards[0] == 0.0 and not terminated[0] and not truncated[0]
        assert bool(infos["held"][0]) and not infos["_held"][1]
        assert [role for role, _ in server.requests[before:]] == ["user"]  # only slot 1 was stepped
    finally:
        env.close()
