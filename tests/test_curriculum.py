"""Tests for the adaptive curriculum: the paper's rule, the band rule, the wrapper, and the env using them."""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import trustee_env  # noqa: F401  (registers Trustee-v0)
from trustee_env.catalog import Catalog
from trustee_env.curriculum import BandCurriculum, Curriculum, PaperCurriculum, make_curriculum
from trustee_env.difficulty import ASPECT_LEVELS, aspect_level, aspects_for
from trustee_env.errors import ConfigError
from trustee_env.testing import FakeLLMServer, Reply, ScriptedSimulator
from trustee_env.wrappers import CurriculumWrapper

CATALOG = Catalog.load(Path(__file__).parent / "data" / "mock_catalog.json")
MASTERED = ("num_tools", "num_turns", "prompt_specificity", "persona", "strictness")
MOVING = ("num_calls", "ambiguity")


def _levels_of(aspects: dict[str, Any]) -> dict[str, int]:
    return {name: ASPECT_LEVELS[name].index(value) for name, value in aspects.items()}


# ---------------------------------------------------------------- the paper's rule


def test_paper_rule_raises_under_success() -> None:
    rule = PaperCurriculum(difficulty=10.0)
    rule.update([1.0] * 16)
    assert rule.difficulty == 13.0


def test_paper_rule_lowers_under_failure() -> None:
    rule = PaperCurriculum(difficulty=10.0)
    rule.update([-1.0] * 16)
    assert rule.difficulty == 7.0


@pytest.mark.parametrize("batch", [[0.0] * 8, [0.5] * 4, [1.0, -1.0], [1.0, 0.0, 0.0, 1.0]])
def test_paper_rule_holds_between_thresholds(batch: list[float]) -> None:
    rule = PaperCurriculum(difficulty=40.0)
    rule.update(batch)
    assert rule.difficulty == 40.0
    assert rule.history[-1]["mean_reward"] == pytest.approx(np.mean(batch))


def test_paper_rule_clamps_to_bounds() -> None:
    rule = PaperCurriculum(difficulty=50.0)
    for _ in range(40):
        rule.update([1.0])
    assert rule.difficulty == 100.0
    for _ in range(40):
        rule.update([-1.0])
    assert rule.difficulty == 1.0
    narrow = PaperCurriculum(difficulty=50.0, min_difficulty=20, max_difficulty=60)
    for _ in range(10):
        narrow.update([1.0])
    assert narrow.difficulty == 60.0
    assert PaperCurriculum(difficulty=500.0).difficulty == 100.0


def test_paper_thresholds_and_step_are_parameters() -> None:
    rule = PaperCurriculum(difficulty=30.0, step=5.0, raise_above=0.2, lower_below=-0.5)
    rule.update([0.3])
    assert rule.difficulty == 35.0
    rule.update([-0.4])
    assert rule.difficulty == 35.0
    rule.update([-0.6])
    assert rule.difficulty == 30.0


def test_history_entries() -> None:
    rule = PaperCurriculum(difficulty=10.0)
    rule.update([1.0, 1.0, 0.0, 1.0, -1.0])
    entry = rule.history[-1]
    assert entry["step"] == 1
    assert entry["difficulty"] == 10.0  # mean 0.4: inside the thresholds
    assert entry["mean_reward"] == pytest.approx(0.4)
    assert entry["success_rate"] == 0.6
    assert entry["episodes"] == 5
    assert entry["levels"] == {name: aspect_level(10.0, name) for name in ASPECT_LEVELS}


@pytest.mark.parametrize("difficulty", [1, 10, 33.3, 50, 77, 100])
def test_p_random_zero_gives_exactly_the_aspects_of_d(difficulty: float) -> None:
    rule = PaperCurriculum(difficulty=difficulty, p_random=0.0)
    for seed in range(20):
        got_d, aspects = rule.task_settings(np.random.default_rng(seed))
        assert got_d == difficulty
        assert aspects == aspects_for(difficulty)


def test_p_random_one_gives_aspects_at_or_below_level() -> None:
    rule = PaperCurriculum(difficulty=100.0, p_random=1.0)
    rng = np.random.default_rng(0)
    below = dict.fromkeys(ASPECT_LEVELS, 0)
    for _ in range(200):
        _, aspects = rule.task_settings(rng)
        for name, level in _levels_of(aspects.model_dump()).items():
            assert level <= aspect_level(100.0, name)
            below[name] += level < aspect_level(100.0, name)
    assert all(count > 20 for count in below.values()), below  # really diverse


@pytest.mark.parametrize("rule", [PaperCurriculum(difficulty=90.0, p_random=1.0), BandCurriculum(p_random=1.0)])
def test_pinned_aspects_are_always_respected(rule: Curriculum) -> None:
    pinned = {"num_calls": 3, "persona": "expert", "ambiguity": "highly ambiguous"}
    rng = np.random.default_rng(1)
    for _ in range(100):
        _, aspects = rule.task_settings(rng, pinned=pinned)
        assert {k: getattr(aspects, k) for k in pinned} == pinned


def test_update_every_updates_automatically() -> None:
    rule = PaperCurriculum(difficulty=10.0, update_every=4)
    for _ in range(3):
        rule.observe(1.0, aspects_for(10).model_dump())
    assert rule.difficulty == 10.0 and not rule.history
    rule.observe(1.0, aspects_for(10).model_dump())
    assert rule.difficulty == 13.0
    assert rule.history[-1]["episodes"] == 4
    for _ in range(4):
        rule.observe(-1.0, aspects_for(13))  # an Aspects object works too
    assert rule.difficulty == 10.0 and len(rule.history) == 2


def test_observe_buffers_until_update() -> None:
    rule = PaperCurriculum(difficulty=10.0)
    for reward in (1.0, 1.0, 0.0):
        rule.observe(reward, aspects_for(10).model_dump())
    assert rule.difficulty == 10.0 and rule.episodes == 3
    rule.update()  # flushes the buffer: mean 2/3 > 0.5
    assert rule.difficulty == 13.0
    rule.update()  # empty buffer: nothing happens
    assert rule.difficulty == 13.0 and len(rule.history) == 1
    rule.observe(-1.0, aspects_for(10).model_dump())
    rule.update([1.0, 1.0])  # an explicit batch wins and empties the buffer
    assert rule.difficulty == 16.0
    assert rule.state_dict()["buffer"] == []


def test_rewards_must_be_finite() -> None:
    rule = PaperCurriculum()
    with pytest.raises(ValueError, match="finite"):
        rule.observe(float("nan"), aspects_for(10).model_dump())
    with pytest.raises(ValueError, match="finite"):
        rule.update([1.0, float("inf")])


def test_frozen_rule_ignores_observe_and_update() -> None:
    rule = PaperCurriculum(difficulty=10.0, update_every=1, frozen=True)
    rule.observe(1.0, aspects_for(10).model_dump())
    rule.update([1.0] * 8)
    assert rule.difficulty == 10.0 and rule.episodes == 0 and not rule.history


def test_driver_ships_state_to_frozen_workers() -> None:
    driver = BandCurriculum()
    worker = make_curriculum("band", frozen=True)
    _drive(driver, seed=0, episodes=100)
    worker.load_state_dict(driver.state_dict())
    assert worker.frozen and worker.levels == driver.levels
    assert worker.task_settings(np.random.default_rng(5)) == driver.task_settings(np.random.default_rng(5))
    before = worker.state_dict()
    _drive(worker, seed=1, episodes=50)  # the worker's own env reports episodes: ignored
    assert worker.state_dict() == before


# ---------------------------------------------------------------- state dicts


def _drive(rule: Curriculum, seed: int, episodes: int) -> list[tuple[float, dict[str, Any]]]:
    """Run synthetic episodes through a rule; return the task settings it produced."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(episodes):
        difficulty, aspects = rule.task_settings(rng)
        out.append((difficulty, aspects.model_dump()))
        rule.observe(float(rng.choice([-1.0, 0.0, 1.0], p=[0.2, 0.2, 0.6])), aspects.model_dump())
        if i % 16 == 15:
            rule.update()
    return out


@pytest.mark.parametrize("name", ["paper", "band"])
def test_state_dict_round_trips_exactly(name: str) -> None:
    rule = make_curriculum(name, p_random=0.5)
    _drive(rule, seed=0, episodes=203)  # ends mid-batch: the buffer is part of the state
    state = json.loads(json.dumps(rule.state_dict()))
    restored = make_curriculum(name)  # default config: load_state_dict restores it
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    assert restored.history == rule.history
    assert _drive(restored, seed=7, episodes=300) == _drive(rule, seed=7, episodes=300)
    assert restored.state_dict() == rule.state_dict()
    assert Curriculum.from_state_dict(state).state_dict() == state


def test_load_state_dict_checks_the_rule() -> None:
    with pytest.raises(ConfigError, match="'paper' curriculum, not 'band'"):
        BandCurriculum().load_state_dict(PaperCurriculum().state_dict())
    state = PaperCurriculum().state_dict()
    del state["difficulty"]
    with pytest.raises(ConfigError, match="incomplete"):
        PaperCurriculum().load_state_dict(state)


@pytest.mark.parametrize("name", ["paper", "band"])
def test_pickles_with_a_fresh_lock(name: str) -> None:
    rule = make_curriculum(name)
    _drive(rule, seed=0, episodes=40)
    copy = pickle.loads(pickle.dumps(rule))
    assert copy.state_dict() == rule.state_dict()
    copy.observe(1.0, aspects_for(10).model_dump())  # the lock works
    assert copy.episodes == rule.episodes + 1


def test_write_history_jsonl(tmp_path: Path) -> None:
    rule = PaperCurriculum()
    for batch in ([1.0] * 4, [-1.0] * 4, [0.0] * 4):
        rule.update(batch)
    path = tmp_path / "history.jsonl"
    rule.write_history(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [row["difficulty"] for row in rows] == [13.0, 10.0, 10.0]
    assert rows == rule.history


# ---------------------------------------------------------------- the band rule


def test_band_moves_one_aspect_level_per_decision() -> None:
    rule = BandCurriculum(difficulty=50.0, p_random=0.0, min_episodes=4, alpha=0.5)
    start = rule.levels
    aspects = aspects_for(50).model_dump()
    for _ in range(3):
        rule.observe(1.0, aspects)
    assert rule.levels == start  # not enough episodes yet
    rule.observe(1.0, aspects)
    assert rule.levels == {name: min(level + 1, len(ASPECT_LEVELS[name]) - 1) for name, level in start.items()}
    for _ in range(4):
        rule.observe(-1.0, rule.task_settings(np.random.default_rng(0))[1].model_dump())
    assert rule.levels == start


def test_band_equivalent_difficulty_and_starting_levels() -> None:
    assert BandCurriculum(difficulty=1.0).difficulty == 1.0
    assert BandCurriculum(difficulty=100.0).difficulty == 100.0
    rule = BandCurriculum(difficulty=40.0, p_random=0.0)
    assert rule.levels == {name: aspect_level(40.0, name) for name in ASPECT_LEVELS}
    assert 1.0 <= rule.difficulty <= 100.0
    assert rule.task_settings(np.random.default_rng(0)) == (rule.difficulty, aspects_for(40.0))


def _synthetic_success(aspects: dict[str, Any]) -> float:
    """A policy that finds extra calls and ambiguity hard and does not mind the other aspects."""
    levels = _levels_of(aspects)
    return float(np.clip(0.95 - 0.3 * levels["num_calls"] - 0.15 * levels["ambiguity"], 0.02, 0.98))


def _simulate(rule: BandCurriculum, episodes: int = 3000, seed: int = 0, window: int = 1000) -> dict[str, Any]:
    """Train a synthetic policy under the rule; averages over the last ``window`` episodes."""
    rng = np.random.default_rng(seed)
    successes, rates, levels = [], [], []
    for i in range(episodes):
        _, aspects = rule.task_settings(rng)
        success = bool(rng.random() < _synthetic_success(aspects.model_dump()))
        rule.observe(1.0 if success else -1.0, aspects.model_dump())
        successes.append(success)
        if i >= episodes - window:
            rates.append(rule.success_rates())
            levels.append({name: level / (len(ASPECT_LEVELS[name]) - 1) for name, level in rule.levels.items()})
        if i % 128 == 127:
            rule.update()
    return {
        "success": float(np.mean(successes[-window:])),
        "rate": {name: float(np.mean([r[name] for r in rates])) for name in ASPECT_LEVELS},
        "level": {name: float(np.mean([lv[name] for lv in levels])) for name in ASPECT_LEVELS},
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_band_rule_converges_into_the_band(seed: int) -> None:
    rule = BandCurriculum(low=0.3, high=0.7, difficulty=10.0)
    start = {name: level / (len(ASPECT_LEVELS[name]) - 1) for name, level in rule.levels.items()}
    result = _simulate(rule, seed=seed)  # levels and EMAs averaged over the last 1000 episodes: they keep moving
    for name in MOVING:  # the aspects that matter settle where their success EMA is in (or near) the band
        assert rule.low - 0.1 <= result["rate"][name] <= rule.high + 0.1, (name, result)
    assert rule.low <= result["success"] <= rule.high
    for name in MASTERED:  # the ones the policy has mastered rise, most of the way to their hardest level
        assert result["level"][name] >= max(0.75, start[name] + 0.5), (name, result)
    assert result["level"]["num_calls"] < 1.0 and result["level"]["ambiguity"] < 1.0, result
    assert len(rule.history) == 3000 // 128 and set(rule.history[-1]["success_at_level"]) == set(ASPECT_LEVELS)


def test_band_free_raises_lift_mastered_aspects_inside_the_band() -> None:
    # With a slow EMA the joint success sits inside the band, where the plain rule stops moving aspects (only
    # noise lifts them); free raises (a level that costs no success against the levels below) lift mastered ones.
    plain, free = [], []
    for seed in range(3):
        plain.append(_simulate(BandCurriculum(alpha=0.03, min_episodes=30, free_margin=None), seed=seed))
        free.append(_simulate(BandCurriculum(alpha=0.03, min_episodes=30), seed=seed))
    assert all(result["level"][name] >= 0.9 for result in free for name in MASTERED), free
    mastered = [np.mean([r["level"][name] for r in results for name in MASTERED]) for results in (plain, free)]
    assert mastered[0] < mastered[1] - 0.05, mastered
    assert all(0.3 <= result["success"] <= 0.7 for result in plain + free)  # both keep the policy in the band


def test_band_without_diversity_moves_aspects_in_lockstep() -> None:
    # One success signal and no aspect seen below its level: every aspect sees the same evidence.
    rule = BandCurriculum(p_random=0.0)
    _simulate(rule, episodes=1000)
    assert len(set(rule.success_rates().values())) <= 2


# ---------------------------------------------------------------- thread safety


@pytest.mark.parametrize("rule", [PaperCurriculum(), PaperCurriculum(update_every=7), BandCurriculum()])
def test_concurrent_observes_lose_nothing(rule: Curriculum) -> None:
    aspects = aspects_for(10).model_dump()
    barrier = threading.Barrier(8)

    def worker(index: int) -> None:
        rng = np.random.default_rng(index)
        barrier.wait()
        for _ in range(500):
            rule.task_settings(rng)
            rule.observe(float(rng.choice([-1.0, 1.0])), aspects)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = rule.state_dict()
    assert rule.episodes == 8 * 500
    assert sum(entry["episodes"] for entry in rule.history) + len(state["buffer"]) == 8 * 500


# ---------------------------------------------------------------- make_curriculum


def test_make_curriculum_specs() -> None:
    assert isinstance(make_curriculum("paper"), PaperCurriculum)
    assert isinstance(make_curriculum("Band"), BandCurriculum)
    rule = make_curriculum({"name": "paper", "difficulty": 20, "step": 2})
    assert rule.difficulty == 20.0 and rule.step == 2.0
    assert make_curriculum("band", low=0.4).low == 0.4
    assert make_curriculum(rule) is rule


def test_make_curriculum_errors_teach() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'paper'"):
        make_curriculum("papr")
    with pytest.raises(ConfigError, match="Did you mean 'update_every'"):
        make_curriculum({"name": "paper", "update_evry": 8})
    with pytest.raises(ConfigError, match="needs a 'name'"):
        make_curriculum({"difficulty": 3})
    with pytest.raises(ConfigError, match="p_random"):
        make_curriculum("paper", p_random=2.0)
    with pytest.raises(ConfigError, match="ready rule object"):
        make_curriculum(PaperCurriculum(), difficulty=3)


# ---------------------------------------------------------------- with the env (scripted server)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(ScriptedSimulator()) as running:
        yield running


def _make_env(server: FakeLLMServer, **kwargs: Any) -> gym.Env:
    """An env whose scripted user ends every episode on the first text reply (goal gate off): these
    tests are about the curriculum's plumbing, not the reward."""
    kwargs.setdefault("user_goal_gate", False)
    return gym.make("Trustee-v0", base_url=server.base_url, catalog=CATALOG, **kwargs)


def _last_task_request(server: FakeLLMServer) -> tuple[str, dict[str, Any]]:
    body = [body for role, body in server.requests if role == "task_generator"][-1]
    return body["messages"][-1]["content"], body["response_format"]["json_schema"]["schema"]


def test_gym_make_with_curriculum_name(server: FakeLLMServer) -> None:
    env = _make_env(server, curriculum="paper")
    assert isinstance(env.unwrapped.curriculum, PaperCurriculum)
    band = _make_env(server, curriculum="band")
    _, info = band.reset(seed=0)
    assert info["difficulty"] == band.unwrapped.curriculum.difficulty


def test_generated_tasks_follow_the_difficulty(server: FakeLLMServer) -> None:
    seen = {}
    for difficulty in (1.0, 100.0):
        env = _make_env(server, curriculum=PaperCurriculum(difficulty=difficulty, p_random=0.0))
        _, info = env.reset(seed=3)
        prompt, schema = _last_task_request(server)
        assert info["difficulty"] == difficulty
        assert info["aspects"] == aspects_for(difficulty).model_dump()
        seen[difficulty] = (prompt, schema["properties"]["expected_calls"]["minItems"])
    (easy_prompt, easy_calls), (hard_prompt, hard_calls) = seen[1.0], seen[100.0]
    assert (easy_calls, hard_calls) == (1, 3)
    assert "Number of expected tool calls: 1." in easy_prompt
    assert "Number of expected tool calls: 3." in hard_prompt
    assert "User expertise: expert" in easy_prompt and "User expertise: novice" in hard_prompt
    assert "First query clarity: clear." in easy_prompt
    assert "First query clarity: highly ambiguous." in hard_prompt
    assert "contains every fact" in easy_prompt and "leave out one fact" in hard_prompt


def test_wrapper_reports_and_updates(server: FakeLLMServer) -> None:
    env = CurriculumWrapper(_make_env(server), curriculum="paper", difficulty=10.0)
    assert env.curriculum is env.unwrapped.curriculum
    _, info = env.reset(seed=0)
    assert info["curriculum"] == {"difficulty": 10.0, "levels": PaperCurriculum(difficulty=10.0).levels}
    _, _, terminated, truncated, info = env.step("All done, thank you.")
    assert terminated or truncated
    assert info["curriculum"]["difficulty"] == 10.0
    env.update([1.0] * 16)
    assert env.curriculum.difficulty == 13.0
    state = env.state_dict()
    other = CurriculumWrapper(_make_env(server), curriculum="paper")
    other.load_state_dict(state)
    assert other.curriculum.difficulty == 13.0
    assert other.spec is not None and other.spec.additional_wrappers[-1].kwargs["curriculum"] == "paper"


def test_wrapper_keeps_the_envs_own_rule(server: FakeLLMServer) -> None:
    rule = BandCurriculum()
    env = CurriculumWrapper(_make_env(server, curriculum=rule))
    assert env.curriculum is rule


def test_finished_episodes_feed_the_curriculum(server: FakeLLMServer) -> None:
    env = CurriculumWrapper(_make_env(server), curriculum="paper", difficulty=10.0, update_every=2)
    rewards = []
    for seed in range(2):
        env.reset(seed=seed)
        _, reward, _, _, info = env.step("All done, thank you.")
        rewards.append(reward)
    assert env.curriculum.episodes == 2
    expected = 13.0 if np.mean(rewards) > 0.5 else 7.0 if np.mean(rewards) < 0 else 10.0
    assert rewards == [0.0, 0.0] and env.curriculum.difficulty == expected  # no call made: the floor caps at 0
    assert info["curriculum"]["difficulty"] == expected  # the final step already counts its episode


def test_sim_faults_never_feed_the_curriculum() -> None:
    faults = {"judge": [Reply(status=400) for _ in range(8)]}
    with FakeLLMServer(ScriptedSimulator(faults=faults)) as faulty:
        env = CurriculumWrapper(_make_env(faulty), curriculum="paper")
        env.reset(seed=0)
        _, _, _, truncated, info = env.step("All done, thank you.")
    assert truncated and info["sim_fault"] is not None
    assert env.curriculum.episodes == 0
