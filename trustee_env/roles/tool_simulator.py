"""ToolSimulator: plays one tool call against the episode's JSON world state.

Arguments are validated by code *before* this role is used (see ``episode``); the LM
only ever sees well-formed calls. Its answer is ``{result, state_patch}``: the result is
checked against the tool's result schema and the patch is applied by code, so a later
read sees every earlier write.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.prompts import render_messages
from trustee_env.roles.task_generator import RECORD_SCHEMA
from trustee_env.schemas import ToolCall, ToolSpec, bounded_schema, schema_errors
from trustee_env.world import PatchError, apply_patch, patch_operation_schema

__all__ = ["ToolOutcome", "ToolSimulator", "outcome_schema"]

PATCH_VALUE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "maxLength": 200},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        RECORD_SCHEMA,
        {
            "type": "array",
            "items": {"anyOf": [{"type": "string", "maxLength": 80}, {"type": "number"}]},
            "maxItems": 10,
        },
    ]
}


class ToolOutcome(BaseModel):
    """What the tool simulator returns: the result and how the world changed."""

    result: Any = Field(description="The tool's response, following its result schema.")
    state_patch: list[dict[str, Any]] = Field(default_factory=list, description="RFC 6902 add/replace/remove ops.")


def outcome_schema(tool: ToolSpec) -> dict[str, Any]:
    """The answer schema for one tool: its result schema plus a bounded patch (empty if read-only)."""
    operation = patch_operation_schema(PATCH_VALUE_SCHEMA)
    return {
        "type": "object",
        "properties": {
            "result": bounded_schema(tool.result_schema),
            "state_patch": {"type": "array", "items": operation, "maxItems": 0 if tool.read_only else 6},
        },
        "required": ["result", "state_patch"],
    }


class ToolSimulator:
    """Simulates tool calls; one LM call per tool call."""

    def __init__(self, client: LLMClient, *, prompt_dir: str | None = None) -> None:
        self.client = client
        self.prompt_dir = prompt_dir

    def problems(self, outcome: ToolOutcome, tool: ToolSpec, state: dict[str, Any]) -> list[str]:
        """Schema and patch errors of an answer (empty list = usable)."""
        errors = [f"result/{error}" for error in schema_errors(tool.result_schema, outcome.result, root="(root)")]
        if tool.read_only and outcome.state_patch:
            errors.append("state_patch must be empty: this tool is read-only")
        else:
            try:
                apply_patch(state, outcome.state_patch)
            except PatchError as err:
                errors.append(f"state_patch {err}")
        return errors[:8]

    async def call(
        self,
        tool: ToolSpec,
        call: ToolCall,
        *,
        step: int,
        index: int,
        state: dict[str, Any],
        intent: str,
        previous: list[str],
        seed: int,
        usage: Usage,
    ) -> tuple[Any, dict[str, Any]]:
        """Simulate ``call``; return ``(result, new_state)``. Raises an LLMError subclass on failure."""
        messages = render_messages(
            "tool_simulator.j2",
            self.prompt_dir,
            tool=tool.model_dump(),
            call={"step": step, "index": index, "name": call.name, "arguments": call.arguments},
            state=state,
            intent=intent,
            previous=previous,
        )
        outcome = await self.client.structured(
            messages,
            ToolOutcome,
            seed=seed,
            usage=usage,
            schema=outcome_schema(tool),
            validate=lambda o: self.problems(o, tool, state),
        )
        return outcome.result, apply_patch(state, outcome.state_patch)
