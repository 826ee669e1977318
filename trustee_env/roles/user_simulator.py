"""UserSimulator: plays the user in persona, from the hidden intent and the facts it was given."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.prompts import render_messages
from trustee_env.schemas import Task

__all__ = ["UserSimulator", "UserTurn"]


class UserTurn(BaseModel):
    """The simulated user's next message and whether the conversation is over."""

    message: str = Field(min_length=1, max_length=400, description="The user's next message.")
    status: Literal["continue", "satisfied", "gave_up"] = Field(
        description="'continue' while the goal is open; 'satisfied' when met; 'gave_up' when hopeless."
    )

    @property
    def done(self) -> bool:
        """True when the user ends the conversation."""
        return self.status != "continue"


class UserSimulator:
    """Answers the agent's text replies."""

    def __init__(self, client: LLMClient, *, prompt_dir: str | None = None) -> None:
        self.client = client
        self.prompt_dir = prompt_dir

    async def reply(self, task: Task, transcript: list[str], *, seed: int, usage: Usage) -> UserTurn:
        """The user's answer to the conversation so far (``transcript`` from ``Episode.transcript``)."""
        messages = render_messages(
            "user_simulator.j2", self.prompt_dir, task=task.model_dump(mode="json"), transcript=transcript
        )
        return await self.client.structured(messages, UserTurn, seed=seed, usage=usage)
