"""TaskGenerator: tools + difficulty aspects -> a validated Task.

The answer schema is built per request: each expected call must name an offered tool
and its arguments must follow that tool's own parameter schema, so a grammar-constrained
server cannot even write an invalid call. What a schema cannot say (values the user
could not know, duplicate calls) is checked in code and sent back as a repair.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from trustee_env.checks import choose_matcher, normalize
from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.prompts import render_messages
from trustee_env.schemas import (
    Aspects,
    ExpectedCall,
    Persona,
    Task,
    ToolSpec,
    bounded_schema,
    canonical_json,
    content_hash,
    schema_errors,
)

__all__ = ["RECORD_SCHEMA", "TaskDraft", "TaskGenerator", "task_schema"]

SCALAR_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "maxLength": 120}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]
}
RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {
        "anyOf": [
            *SCALAR_SCHEMA["anyOf"],
            {
                "type": "array",
                "items": {"anyOf": [{"type": "string", "maxLength": 80}, {"type": "number"}]},
                "maxItems": 8,
            },
        ]
    },
}
# The world state is collections of flat records: {"orders": [{...}, ...], "users": [...]}.
STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": RECORD_SCHEMA, "maxItems": 6},
}


class DraftPersona(BaseModel):
    """The persona as the LM writes it (expertise is set by code)."""

    name: str = Field(max_length=60)
    description: str = Field(max_length=300)


class DraftCall(BaseModel):
    """An expected call as the LM writes it."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class TaskDraft(BaseModel):
    """What the task-generator LM returns."""

    system_prompt: str = Field(max_length=1200)
    persona: DraftPersona
    intent: str = Field(max_length=600)
    user_facts: dict[str, Any] = Field(default_factory=dict)
    first_query: str = Field(min_length=1, max_length=600)
    expected_calls: list[DraftCall]
    initial_state: dict[str, Any] = Field(default_factory=dict)
    rubric: list[str] = Field(default_factory=list)


def task_schema(tools: list[ToolSpec], aspects: Aspects) -> dict[str, Any]:
    """The JSON schema the task generator must answer in, for these tools and aspects."""
    call_variants = [
        {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": bounded_schema(tool.parameters, max_string=120)},
            "required": ["name", "arguments"],
        }
        for tool in tools
    ]
    return {
        "type": "object",
        "properties": {
            "system_prompt": {"type": "string", "minLength": 10, "maxLength": 800},
            "persona": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 40},
                    "description": {"type": "string", "minLength": 1, "maxLength": 200},
                },
                "required": ["name", "description"],
            },
            "intent": {"type": "string", "minLength": 10, "maxLength": 400},
            "user_facts": {"type": "object", "additionalProperties": SCALAR_SCHEMA},
            "first_query": {"type": "string", "minLength": 5, "maxLength": 400},
            "expected_calls": {
                "type": "array",
                "items": {"anyOf": call_variants},
                "minItems": aspects.num_calls,
                "maxItems": aspects.num_calls,
            },
            "initial_state": STATE_SCHEMA,
            "rubric": {"type": "array", "items": {"type": "string", "maxLength": 150}, "minItems": 1, "maxItems": 4},
        },
        "required": [
            "system_prompt",
            "persona",
            "intent",
            "user_facts",
            "first_query",
            "expected_calls",
            "initial_state",
            "rubric",
        ],
    }


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _grounded(value: Any, texts: list[str], leaves: list[Any]) -> bool:
    """Could the agent learn ``value`` from the query, the user's facts or the world state?"""
    target = normalize(value)
    if any(normalize(leaf) == target for leaf in leaves):
        return True
    if isinstance(target, float):
        numbers = [float(n.replace(",", "")) for text in texts for n in re.findall(r"-?\d[\d,]*\.?\d*", text)]
        return any(abs(n - target) < 1e-9 for n in numbers)
    needle = str(target)
    return any(needle in str(normalize(text)) for text in texts)


def _ungrounded_arguments(draft: TaskDraft, by_name: dict[str, ToolSpec]) -> set[tuple[int, str]]:
    """(call index, argument) of every exact/normalized expected value the agent could not learn.

    Booleans are exempt: they follow from the intent rather than being stated.
    """
    texts = [draft.first_query, *(str(v) for v in draft.user_facts.values())]
    leaves = _leaves(draft.user_facts) + _leaves(draft.initial_state)
    out: set[tuple[int, str]] = set()
    for index, call in enumerate(draft.expected_calls):
        tool = by_name.get(call.name)
        if tool is None:
            continue
        properties = tool.parameters.get("properties", {})
        for arg, value in call.arguments.items():
            matcher = choose_matcher(arg, properties.get(arg, {}), value)
            if (
                matcher in ("exact", "normalized")
                and not isinstance(value, bool)
                and not _grounded(value, texts, leaves)
            ):
                out.add((index, arg))
    return out


class TaskGenerator:
    """Asks the LM for a task and turns the draft into a validated :class:`Task`."""

    def __init__(self, client: LLMClient, *, ungrounded: str = "reject", prompt_dir: str | None = None) -> None:
        self.client = client
        self.ungrounded = ungrounded
        self.prompt_dir = prompt_dir

    def problems(self, draft: TaskDraft, tools: list[ToolSpec], aspects: Aspects) -> list[str]:
        """What is wrong with a draft that its schema could not prevent (empty list = fine)."""
        by_name = {tool.name: tool for tool in tools}
        errors: list[str] = []
        if len(draft.expected_calls) != aspects.num_calls:
            errors.append(f"expected_calls must hold exactly {aspects.num_calls} call(s)")
        seen: set[str] = set()
        ungrounded = _ungrounded_arguments(draft, by_name) if self.ungrounded == "reject" else set()
        for index, call in enumerate(draft.expected_calls):
            tool = by_name.get(call.name)
            if tool is None:
                errors.append(f"expected_calls/{index}: {call.name!r} is not one of the tools: {', '.join(by_name)}")
                continue
            for error in schema_errors(tool.parameters, call.arguments, root="arguments"):
                errors.append(f"expected_calls/{index} ({call.name}) {error}")
            key = call.name + canonical_json(call.arguments)
            if key in seen:
                errors.append(f"expected_calls/{index}: repeats an earlier call; each expected call must differ")
            seen.add(key)
            for arg, value in call.arguments.items():
                if (index, arg) in ungrounded:
                    errors.append(
                        f"expected_calls/{index} ({call.name}) argument {arg}={value!r} appears nowhere in "
                        "first_query, user_facts or initial_state; add it to user_facts"
                    )
        return errors[:10]

    async def generate(
        self, tools: list[ToolSpec], aspects: Aspects, *, difficulty: float, seed: int, usage: Usage
    ) -> Task:
        """Generate one task; raises an LLMError subclass if no valid task comes back."""
        messages = render_messages(
            "task_generator.j2",
            self.prompt_dir,
            tools=[tool.model_dump() for tool in tools],
            aspects=aspects.model_dump(),
            difficulty=difficulty,
        )
        draft = await self.client.structured(
            messages,
            TaskDraft,
            seed=seed,
            usage=usage,
            schema=task_schema(tools, aspects),
            validate=lambda d: self.problems(d, tools, aspects),
        )
        return self.build(draft, tools, aspects, difficulty=difficulty, seed=seed)

    def build(self, draft: TaskDraft, tools: list[ToolSpec], aspects: Aspects, *, difficulty: float, seed: int) -> Task:
        """Turn a validated draft into a Task: matchers chosen by code, ungrounded values relaxed if asked."""
        by_name = {tool.name: tool for tool in tools}
        ungrounded = _ungrounded_arguments(draft, by_name)
        notes: list[str] = []
        expected: list[ExpectedCall] = []
        for index, call in enumerate(draft.expected_calls):
            properties = by_name[call.name].parameters.get("properties", {})
            matchers = {}
            for arg, value in call.arguments.items():
                matcher = choose_matcher(arg, properties.get(arg, {}), value)
                if (index, arg) in ungrounded:
                    matcher = "any"
                    notes.append(f"expected_calls/{index}.{arg}: value not given to the user; matched as 'any'")
                matchers[arg] = matcher
            expected.append(ExpectedCall(name=call.name, arguments=call.arguments, matchers=matchers))
        body = {
            "seed": seed,
            "difficulty": float(difficulty),
            "aspects": aspects,
            "tools": tools,
            "system_prompt": draft.system_prompt.strip(),
            "persona": Persona(
                name=draft.persona.name, expertise=aspects.persona, description=draft.persona.description
            ),
            "intent": draft.intent.strip(),
            "user_facts": draft.user_facts,
            "first_query": draft.first_query.strip(),
            "expected_calls": expected,
            "initial_state": draft.initial_state,
            "rubric": draft.rubric,
            "notes": notes,
        }
        task = Task(task_id="", **body)
        return task.model_copy(update={"task_id": content_hash(task.model_dump(mode="json", exclude={"task_id"}))})
