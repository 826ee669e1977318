"""UserSimulator: plays the user in persona, from the hidden intent and the facts it was given."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr

from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.prompts import render_messages
from trustee_env.schemas import Task

__all__ = ["UserSimulator", "UserTurn", "gate"]


class UserTurn(BaseModel):
    """The simulated user's next message and whether the conversation is over."""

    message: str = Field(min_length=1, max_length=400, description="The user's next message.")
    status: Literal["continue", "satisfied", "gave_up"] = Field(
        description="'continue' while the goal is open; 'satisfied' when met; 'gave_up' when hopeless."
    )

    # Private, not a field: a field would be in the answer schema the LM is given and accepted from its
    # answer, yet left out of the cached dump, so a replay would diverge from the live episode.
    _gated_from: Literal["continue", "satisfied", "gave_up"] | None = PrivateAttr(default=None)

    @property
    def gated_from(self) -> Literal["continue", "satisfied", "gave_up"] | None:
        """The LM's own status when the goal gate changed it (set by :func:`gate` only)."""
        return self._gated_from

    @property
    def done(self) -> bool:
        """True when the user ends the conversation."""
        return self.status != "continue"


class UserSimulator:
    """Answers the agent's text replies."""

    def __init__(self, client: LLMClient, *, prompt_dir: str | None = None) -> None:
        self.client = client
        self.prompt_dir = prompt_dir

    async def reply(
        self, task: Task, transcript: list[str], *, goal_met: bool | None = None, seed: int, usage: Usage
    ) -> UserTurn:
        """The user's answer to the conversation so far (``transcript`` from ``Episode.transcript``).

        ``goal_met`` is the deterministic progress (every expected call succeeded, or None when the
        task expects none). It is shown to the LM and bounds its decision: see :func:`gate`.
        """
        messages = render_messages(
            "user_simulator.j2",
            self.prompt_dir,
            task=task.model_dump(mode="json"),
            transcript=transcript,
            goal_met=goal_met,
        )
        turn = await self.client.structured(messages, UserTurn, seed=seed, usage=usage)
        return gate(turn, goal_met)


def gate(turn: UserTurn, goal_met: bool | None) -> UserTurn:
    """Bound the user's stop decision by deterministic progress (the goal gate); its words stay its own.

    A small simulator both gives up after the agent did everything right and declares itself
    satisfied with a refusal; either would teach the policy the wrong thing. So once the goal is
    met the user ends satisfied, and while it is not, "satisfied" becomes "continue".
    """
    if goal_met is None:
        return turn
    status = turn.status
    if goal_met and status != "satisfied":
        status = "satisfied"
    elif not goal_met and status == "satisfied":
        status = "continue"
    if status == turn.status:
        return turn
    gated = turn.model_copy(update={"status": status})
    gated._gated_from = turn.status
    return gated
