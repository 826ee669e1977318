"""Gymnasium spaces for chat: what an observation and an action really are.

Built-in spaces cannot hold chat (``Text`` rejects punctuation), so these are custom
``Space`` subclasses with working ``contains`` and ``sample``. They are equal by type and
parameters (else ``SyncVectorEnv`` calls two envs' spaces different) and not flattenable.
"""

from __future__ import annotations

from typing import Any, TypedDict, Union

import numpy as np
from gymnasium import spaces

from trustee_env.parsing import as_assistant_message

__all__ = ["Action", "ChatAction", "ChatObservation", "Message", "Observation", "StepInfo"]


class Message(TypedDict, total=False):
    """One chat message in OpenAI shape (``content`` is always a str, never None)."""

    role: str
    content: str
    tool_calls: list[dict[str, Any]]
    tool_call_id: str


class Observation(TypedDict):
    """What the policy sees: the conversation so far and the tools in OpenAI ``tools=`` form."""

    messages: list[Message]
    tools: list[dict[str, Any]]


Action = Union[dict[str, Any], str, Any]  # noqa: UP007 (a runtime alias)
"""An assistant message dict, raw model text, or an OpenAI SDK ``ChatCompletionMessage``."""


class StepInfo(TypedDict, total=False):
    """``info`` of ``reset`` and ``step``: a function of seed and action (no timings; see ``env.stats``).

    Every step carries the first group of keys; the final step of an episode adds the second.
    """

    task_id: str | None
    turn: int
    difficulty: float
    aspects: dict[str, Any] | None
    parse_errors: int
    tool_calls: int
    usage: dict[str, dict[str, int]]
    sim_fault: dict[str, Any] | None
    # at the end of an episode
    verdict: dict[str, Any] | None
    task: dict[str, Any] | None
    termination: str | None
    world_state: dict[str, Any]
    curriculum: dict[str, Any]
    # vector env
    group_id: str
    group_rewards: list[float | None]
    group_zero_variance: bool


_MESSAGE_ROLES = frozenset({"system", "user", "assistant", "tool"})
_SAMPLE_REPLIES = (
    "Could you tell me a bit more about what you need?",
    "Sure, I can help with that. Which details should I use?",
    "Let me check. Can you confirm the key details first?",
    "Thanks! What exactly would you like me to do?",
)


class ChatAction(spaces.Space[Any]):
    """An assistant message: a dict in OpenAI shape, a raw text str, or an OpenAI SDK message.

    ``sample()`` returns a plain text reply (a valid action that asks the user something).
    """

    def __init__(self, max_length: int = 32768, seed: int | np.random.Generator | None = None) -> None:
        self.max_length = max_length
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Chat cannot be flattened into a numpy array."""
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random plain-text assistant reply, drawn from ``self.np_random``."""
        return _SAMPLE_REPLIES[int(self.np_random.integers(len(_SAMPLE_REPLIES)))]

    def contains(self, x: Any) -> bool:
        """True for every action shape ``step`` accepts."""
        try:
            message = as_assistant_message(x)
        except TypeError:
            return False
        return len(message["content"]) <= self.max_length

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChatAction) and other.max_length == self.max_length

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.max_length))

    def __repr__(self) -> str:
        return f"ChatAction(max_length={self.max_length})"


class ChatObservation(spaces.Space[dict[str, Any]]):
    """``{"messages": [chat messages], "tools": [OpenAI tool dicts]}``, ready for ``chat.completions.create``."""

    def __init__(self, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Chat cannot be flattened into a numpy array."""
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> dict[str, Any]:
        """A minimal valid observation (a system and a user message, no tools)."""
        reply = _SAMPLE_REPLIES[int(self.np_random.integers(len(_SAMPLE_REPLIES)))]
        return {
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": reply},
            ],
            "tools": [],
        }

    def contains(self, x: Any) -> bool:
        """True for a dict with a list of well-formed messages and a list of function tools."""
        if not isinstance(x, dict) or set(x) != {"messages", "tools"}:
            return False
        messages, tools = x["messages"], x["tools"]
        if not isinstance(messages, list) or not isinstance(tools, list):
            return False
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in _MESSAGE_ROLES:
                return False
            if not isinstance(message.get("content"), str):
                return False
            if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
                return False
        return all(isinstance(tool, dict) and tool.get("type") == "function" for tool in tools)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChatObservation)

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        return "ChatObservation()"
