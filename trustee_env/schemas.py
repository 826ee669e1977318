"""The shapes that cross module borders: tool specs, tasks, tool calls, verdicts.

Everything here is a pydantic model, so every border validates its input and every
shape has a JSON schema (which is also what the simulator models are constrained to).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from enum import Enum
from typing import Any, Literal

from jsonschema import Draft202012Validator, validators
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Aspects",
    "ExpectedCall",
    "Persona",
    "Role",
    "Task",
    "ToolCall",
    "ToolSpec",
    "bounded_schema",
    "canonical_json",
    "close_schema",
    "content_hash",
    "derive_seed",
    "json_copy",
    "schema_errors",
]

TOOL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the one text form used for hashing and comparing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


_SCALARS = (str, int, float, bool, type(None))


def json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), 2-3x faster than ``copy.deepcopy``.

    Chat messages, tool schemas and world states are copied on every step; ``deepcopy``'s memo and
    dispatch cost more than the data. Anything that is not a plain dict, list or scalar is handed to
    ``copy.deepcopy``, so the result is always a full copy.
    """
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _SCALARS else json_copy(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _SCALARS else json_copy(item) for item in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)


def bounded_schema(schema: Any, *, max_string: int = 200, max_items: int = 10) -> Any:
    """A copy of a JSON schema where every free string and array has a length bound.

    Grammar-constrained decoding follows the schema token by token, so an unbounded string
    lets a small model run on until ``max_tokens``; bounds make the grammar itself close it.
    Strings with an ``enum``, ``const``, ``pattern`` or ``format`` are left as they are.
    """
    if isinstance(schema, list):
        return [bounded_schema(item, max_string=max_string, max_items=max_items) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: bounded_schema(value, max_string=max_string, max_items=max_items) for key, value in schema.items()}
    kinds = out.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    free = not any(key in out for key in ("enum", "const", "pattern", "format"))
    if "string" in kinds and free and "maxLength" not in out:
        out["maxLength"] = max_string
    if "array" in kinds and "maxItems" not in out:
        out["maxItems"] = max(max_items, int(out.get("minItems", 0)))
    return out


_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples", "example", "required"})
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties", "dependentSchemas"})


def close_schema(schema: Any) -> Any:
    """A copy of a JSON schema in which every object without an ``additionalProperties`` rule is closed.

    Tool schemas rarely say ``additionalProperties: false``, and JSON Schema then accepts any extra key:
    a made-up argument would pass validation and be rewarded. An object that explicitly allows extras
    (``additionalProperties: true`` or a schema, or ``patternProperties``) is left open.
    """
    if isinstance(schema, list):
        return [close_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DATA_KEYWORDS:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: close_schema(sub) for name, sub in value.items()}
        else:
            out[key] = close_schema(value)
    kinds = out.get("type")
    is_object = kinds == "object" or (isinstance(kinds, list) and "object" in kinds) or "properties" in out
    if is_object and "additionalProperties" not in out and "patternProperties" not in out:
        out["additionalProperties"] = False
    return out


def _is_strict_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


# Draft 2020-12 counts 12.0 as an integer; a tool argument typed integer must be written as one.
_StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_integer),
)


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str, strict_integers: bool) -> Draft202012Validator:
    cls = _StrictValidator if strict_integers else Draft202012Validator
    return cls(json.loads(schema_json))


def schema_errors(schema: dict[str, Any], value: Any, *, root: str, strict_integers: bool = False) -> list[str]:
    """``"<path>: <message>"`` for every way ``value`` breaks ``schema`` (``root`` names the empty path).

    Validators are built once per distinct schema: tool schemas are checked on every call.
    ``strict_integers`` rejects ``12.0`` where the schema says integer (tool arguments are strict).
    """
    return [
        f"{'/'.join(str(part) for part in err.absolute_path) or root}: {err.message}"
        for err in _validator(canonical_json(schema), strict_integers).iter_errors(value)
    ]


def content_hash(value: Any, length: int = 16) -> str:
    """A short sha256 of ``canonical_json(value)``: stable across processes and runs."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any JSON-able parts: stable across processes (no ``hash()`` salt)."""
    return int(content_hash(list(parts), length=8), 16) & 0x7FFFFFFF


class Role(str, Enum):
    """The language-model roles of an episode (each may use its own endpoint)."""

    TASK_GENERATOR = "task_generator"
    """Writes the task: persona, hidden intent, first query, expected calls, world state."""
    USER = "user"
    """Answers the agent's text replies in persona."""
    TOOL = "tool"
    """Plays the tools: returns a result and a patch of the world state."""
    JUDGE = "judge"
    """Scores the finished trajectory."""
    POLICY = "policy"
    """The agent under training (only used by ``trustee demo``/``rollout``/``eval``)."""


class ToolSpec(BaseModel):
    """One tool the agent may call, in OpenAI function form plus a result schema."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOOL_NAME_PATTERN, description="Function name the agent calls.")
    description: str = Field(min_length=1, description="What the tool does, shown to the agent.")
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema (type object) of the arguments.",
    )
    result_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"}, description="JSON Schema of the tool's result."
    )
    result_schema_inferred: bool = Field(
        default=False, description="True when the source had no result schema and a generic one was used."
    )
    category: str = Field(default="general", description="Catalog category; tools of a task share one first.")
    read_only: bool = Field(default=False, description="A read-only tool must not change the world state.")

    @field_validator("parameters")
    @classmethod
    def _parameters_are_an_object(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type", "object") != "object":
            raise ValueError(f"parameters must be a JSON Schema of type 'object', got type {value.get('type')!r}")
        value = dict(value)
        value.setdefault("type", "object")
        value.setdefault("properties", {})
        return close_schema(value)

    @property
    def required(self) -> list[str]:
        """Names of the required arguments."""
        return list(self.parameters.get("required", []))

    def to_openai(self) -> dict[str, Any]:
        """The ``tools=`` entry for an OpenAI-compatible chat completion request.

        A fresh copy: the spec (often the catalog's, shared by every env) must not change when a caller
        edits what it was given.
        """
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": json_copy(self.parameters)},
        }


class ToolCall(BaseModel):
    """One tool call made by the agent, after parsing."""

    id: str = Field(description="The call id: the model's own, or 'call_<step>_<index>' when parsed from text.")
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def canonical_arguments(self) -> str:
        """Arguments as canonical JSON, for redundancy checks and cache keys."""
        return canonical_json(self.arguments)

    def to_openai(self) -> dict[str, Any]:
        """The entry in an assistant message's ``tool_calls`` list."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }


PromptSpecificity = Literal["detailed", "standard", "generic"]
Expertise = Literal["expert", "beginner", "novice"]
Ambiguity = Literal["clear", "slightly ambiguous", "ambiguous", "highly ambiguous"]
Matcher = str
"""How an expected argument is compared (see :mod:`trustee_env.checks`): ``exact``, ``normalized``,
``one_of``, ``absent_or_one_of``, ``ordered``, ``set``, ``any`` or ``from_result:<call index>#<json pointer>``."""


class Aspects(BaseModel):
    """The seven difficulty aspects of a task (see :mod:`trustee_env.difficulty`)."""

    model_config = ConfigDict(extra="forbid")

    num_tools: int = Field(ge=1, le=10, description="Tools offered to the agent.")
    num_calls: int = Field(ge=1, le=3, description="Tool calls the task needs.")
    num_turns: int = Field(ge=1, le=2, description="User turns the task needs (1 = everything in the first query).")
    prompt_specificity: PromptSpecificity = Field(description="How detailed the agent's system prompt is.")
    persona: Expertise = Field(description="How expert the simulated user is.")
    ambiguity: Ambiguity = Field(description="How ambiguous the first query is.")
    strictness: int = Field(
        ge=1,
        le=5,
        description="Judge strictness: 1 intent, 2 correct tools, 3 no hallucination, 4 no redundancy, 5 efficiency.",
    )


class Persona(BaseModel):
    """Who the simulated user is."""

    name: str = Field(max_length=60)
    expertise: Expertise
    description: str = Field(max_length=300, description="Background and speaking style.")


class ExpectedCall(BaseModel):
    """A tool call the task needs, with how each argument is matched."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    matchers: dict[str, Matcher] = Field(
        default_factory=dict, description="Argument name -> matcher; arguments not listed use 'normalized'."
    )
    alternatives: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Argument name -> other acceptable values (for 'one_of' and 'absent_or_one_of').",
    )
    after: list[int] = Field(default_factory=list, description="Indexes of expected calls that must come first.")


class Task(BaseModel):
    """A complete, validated task: what the agent sees, and what only the simulators see."""

    task_id: str = Field(description="Content hash of the task.")
    seed: int
    difficulty: float = Field(ge=1, le=100)
    aspects: Aspects
    tools: list[ToolSpec]
    system_prompt: str
    persona: Persona
    intent: str = Field(description="The user's hidden goal; revealed in info only when the episode ends.")
    user_facts: dict[str, Any] = Field(
        default_factory=dict, description="Facts the user knows and can give when asked."
    )
    first_query: str
    expected_calls: list[ExpectedCall]
    initial_state: dict[str, Any] = Field(default_factory=dict)
    rubric: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Adjustments code made to the generated task.")

    def tool(self, name: str) -> ToolSpec | None:
        """The offered tool with this name, if any."""
        return next((spec for spec in self.tools if spec.name == name), None)
