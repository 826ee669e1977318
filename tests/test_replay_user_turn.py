"""Same seed, same episode: a recorded episode whose simulated user answered with an extra key replays.

Found in a real audit run on SmolLM2-135M: the null agent's episode missed the cache at its third user turn.
``UserTurn.gated_from`` (the goal gate's note of the user's own status) was a pydantic field, so it was in the
answer schema the user LM was given; the model filled it in (``"gated_from": "continue"``), the live episode
took it as a gate override and wrote ``[env] the user's 'continue' became 'continue' (goal gate)`` into the
transcript. The cache stores the answer without it (the field is excluded from dumps), so a replay had no such
line, and the next user request differed from the recorded one. Now only the gate sets it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trustee_env.env import TrusteeToolEnv
from trustee_env.llm.client import _schema_for
from trustee_env.probes import REFUSAL
from trustee_env.roles.user_simulator import UserTurn
from trustee_env.testing import FakeLLMServer, ScriptedSimulator

CATALOG = Path(__file__).resolve().parent / "data" / "mock_catalog.json"
ASPECTS = {"num_tools": 3, "num_calls": 1, "num_turns": 1, "strictness": 2}


class ChattyUser:
    """The scripted simulator, but the user answers like the small model did: with the gate's own key."""

    def __init__(self) -> None:
        self.sim = ScriptedSimulator()
        self.turns = 0

    def __call__(self, role: str, request: dict[str, Any]) -> Any:
        if role != "user":
            return self.sim(role, request)
        self.turns += 1
        return {"message": f"I still need it done ({self.turns}).", "status": "continue", "gated_from": "continue"}


def _play(env: TrusteeToolEnv, steps: int = 3) -> list[Any]:
    obs, _ = env.reset(seed=5, options={"aspects": ASPECTS})
    out: list[Any] = [obs["messages"]]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(REFUSAL)
        out.append((obs["messages"][-1], reward, terminated, truncated, info.get("termination")))
    out.append(list(env.episode.transcript))
    return out


def test_the_user_answer_schema_has_only_what_the_user_decides() -> None:
    assert set(_schema_for(UserTurn)["properties"]) == {"message", "status"}


def test_an_episode_whose_user_answered_an_extra_key_replays(tmp_path: Path, dead_url: str) -> None:
    cache = str(tmp_path / "cache.sqlite")
    with FakeLLMServer(ChattyUser()) as server:
        with TrusteeToolEnv(
            base_url=server.base_url,
            model="fake-model",
            catalog=str(CATALOG),
            cache_mode="read_write",
            cache_path=cache,
            max_steps=3,
        ) as live:
            recorded = _play(live)
            assert live.episode.user_gate_overrides == 0  # the LM's key is not a gate decision
    assert not any("goal gate" in line for line in recorded[-1])
    with TrusteeToolEnv(
        base_url=dead_url,
        model="fake-model",
        catalog=str(CATALOG),
        cache_mode="replay_only",
        cache_path=cache,
        max_steps=3,
        max_retries=0,
    ) as replay:
        assert _play(replay) == recorded  # every user turn from the cache: no ReplayMissError


@pytest.mark.parametrize(("status", "goal_met"), [("satisfied", False), ("continue", True)])
def test_the_gate_still_notes_its_own_overrides(status: str, goal_met: bool) -> None:
    from trustee_env.roles.user_simulator import gate

    turn = gate(UserTurn.model_validate({"message": "ok", "status": status, "gated_from": "gave_up"}), goal_met)
    assert turn.gated_from == status and turn.status != status
    assert "gated_from" not in turn.model_dump()
