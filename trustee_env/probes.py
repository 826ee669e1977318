"""Reference agents with known right answers, for measuring whether the reward tells good from bad.

Each agent sees the task's hidden expected calls (it is a probe, not a policy) and behaves in one
fixed way, so the reward it *should* get is known in advance:

=================  ===========================================================  ==================
agent              behaviour                                                    reward it deserves
=================  ===========================================================  ==================
``oracle``         makes exactly the expected calls (one per message, values    1
                   from earlier results where the task says so), then closes
``null``           only says "Sorry, I cannot help with that."                  <= 0
``wrong_tool``     calls an offered tool the task does not need, then closes    <= 0
``wrong_argument`` makes the expected calls with one argument value changed      <= 0
                   (still valid under the tool's schema), then closes
=================  ===========================================================  ==================

``benchmarks/bench_signal.py`` runs them on the same seeds; ``trustee audit`` reuses them.
Agents are pure functions of ``(task, observation)``: no hidden state, so the same seed replays.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from trustee_env.config import ToolFormat
from trustee_env.matching import resolve_from_result
from trustee_env.parsing import render_tool_calls
from trustee_env.schemas import ExpectedCall, Task, ToolCall, ToolSpec
from trustee_env.testing import example_for

__all__ = [
    "AGENTS",
    "NullAgent",
    "OracleAgent",
    "ProbeAgent",
    "WrongArgumentAgent",
    "WrongToolAgent",
    "make_agent",
]

REFUSAL = "Sorry, I cannot help with that."


class ProbeAgent(Protocol):
    """A scripted agent: the next assistant message for this task and observation."""

    name: str

    def applicable(self, task: Task) -> bool:
        """Can this agent show its behaviour on this task (e.g. is there an argument to get wrong)?"""
        ...

    def act(self, task: Task, observation: dict[str, Any]) -> dict[str, Any]:
        """The next assistant message."""
        ...


def _message(calls: list[ToolCall], tool_format: ToolFormat, text: str = "") -> dict[str, Any]:
    if not calls:
        return {"role": "assistant", "content": text}
    if tool_format == "native":
        return {"role": "assistant", "content": text, "tool_calls": [call.to_openai() for call in calls]}
    return {"role": "assistant", "content": (text + "\n" if text else "") + render_tool_calls(calls, tool_format)}


def _calls_made(observation: dict[str, Any]) -> int:
    """Tool results the agent has received so far (each call gets exactly one tool message)."""
    return sum(1 for message in observation["messages"] if message["role"] == "tool")


def _results(observation: dict[str, Any]) -> list[Any]:
    """The results of successful calls, in order (error feedback starts with 'Error:')."""
    out: list[Any] = []
    for message in observation["messages"]:
        if message["role"] != "tool" or message["content"].startswith("Error:"):
            continue
        try:
            out.append(json.loads(message["content"]))
        except json.JSONDecodeError:
            out.append(message["content"])
    return out


def _ordered(expected: list[ExpectedCall]) -> list[int]:
    """Expected-call indexes in an order that honours every ``after``."""
    order: list[int] = []
    pending = list(range(len(expected)))
    while pending:
        ready = [i for i in pending if all(j in order for j in expected[i].after if j < len(expected))]
        index = ready[0] if ready else pending[0]
        order.append(index)
        pending.remove(index)
    return order


def _resolved_arguments(call: ExpectedCall, result_of: dict[int, Any]) -> dict[str, Any]:
    """The expected arguments, with ``from_result:<k>`` values read from the result of expected call k."""
    arguments = dict(call.arguments)
    for name, matcher in call.matchers.items():
        if not matcher.startswith("from_result:"):
            continue
        try:
            arguments[name] = resolve_from_result(matcher, result_of.__getitem__)
        except LookupError:
            pass  # keep the generator's own value
    return arguments


def _closing(task: Task, made: list[str]) -> str:
    if not made:
        return "I have looked into it. Is there anything else I can do for you?"
    return f"Done: I used {', '.join(made)} for you, as you asked. Is there anything else I can do for you?"


class OracleAgent:
    """Makes exactly the expected calls, one per message, then closes."""

    name = "oracle"

    def __init__(self, tool_format: ToolFormat = "native") -> None:
        self.tool_format = tool_format

    def applicable(self, task: Task) -> bool:
        return bool(task.expected_calls)

    def arguments(self, task: Task, index: int, result_of: dict[int, Any]) -> dict[str, Any]:
        """The arguments this agent sends for expected call ``index`` (``result_of``: expected index -> result)."""
        return _resolved_arguments(task.expected_calls[index], result_of)

    def act(self, task: Task, observation: dict[str, Any]) -> dict[str, Any]:
        order = _ordered(task.expected_calls)
        made = _calls_made(observation)
        if made < len(order):
            index = order[made]
            name = task.expected_calls[index].name
            result_of = dict(zip(order, _results(observation), strict=False))  # one call per expected call, in order
            call = ToolCall(id=f"probe_{made}", name=name, arguments=self.arguments(task, index, result_of))
            return _message([call], self.tool_format)
        return _message([], self.tool_format, _closing(task, [task.expected_calls[i].name for i in order]))


class NullAgent:
    """Refuses every time."""

    name = "null"

    def __init__(self, tool_format: ToolFormat = "native") -> None:
        self.tool_format = tool_format

    def applicable(self, task: Task) -> bool:
        return True

    def act(self, task: Task, observation: dict[str, Any]) -> dict[str, Any]:
        return _message([], self.tool_format, REFUSAL)


class WrongToolAgent:
    """Calls an offered tool that no expected call uses (or a made-up one if every tool is needed)."""

    name = "wrong_tool"

    def __init__(self, tool_format: ToolFormat = "native") -> None:
        self.tool_format = tool_format

    def applicable(self, task: Task) -> bool:
        return bool(task.expected_calls)

    def act(self, task: Task, observation: dict[str, Any]) -> dict[str, Any]:
        needed = {call.name for call in task.expected_calls}
        spare = [tool for tool in task.tools if tool.name not in needed]
        if _calls_made(observation) == 0:
            if spare:
                call = ToolCall(id="probe_0", name=spare[0].name, arguments=example_for(spare[0].parameters))
            else:
                call = ToolCall(id="probe_0", name="lookup_everything", arguments={})
            return _message([call], self.tool_format)
        return _message([], self.tool_format, _closing(task, [spare[0].name if spare else "lookup_everything"]))


def _mutated(value: Any, schema: dict[str, Any]) -> Any:
    """A different value of the same kind, still valid under ``schema`` where possible."""
    if "enum" in schema:
        others = [option for option in schema["enum"] if option != value]
        return others[0] if others else None
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        maximum = schema.get("maximum")
        return value - 1 if maximum is not None and value + 1 > maximum else value + 1
    if isinstance(value, float):
        return value + 1.5
    if isinstance(value, str):
        if schema.get("format") == "date":
            return "1999-12-31" if value != "1999-12-31" else "2000-01-01"
        return ("Zanzibar " + value)[: schema.get("maxLength", 200)]
    if isinstance(value, list) and value:
        return [_mutated(value[0], schema.get("items", {})), *value[1:]]
    return None


class WrongArgumentAgent(OracleAgent):
    """Makes the expected calls, but with one argument value changed (the first one that is checked)."""

    name = "wrong_argument"

    def _target(self, task: Task) -> tuple[int, str, Any] | None:
        for index in _ordered(task.expected_calls):
            call = task.expected_calls[index]
            spec: ToolSpec | None = task.tool(call.name)
            properties = spec.parameters.get("properties", {}) if spec else {}
            for name, value in call.arguments.items():
                matcher = call.matchers.get(name, "normalized")
                if matcher in ("any", "absent_or_one_of") or matcher.startswith("from_result:"):
                    continue
                wrong = _mutated(value, properties.get(name, {}))
                if wrong is not None and wrong != value:
                    return index, name, wrong
        return None

    def applicable(self, task: Task) -> bool:
        return self._target(task) is not None

    def arguments(self, task: Task, index: int, result_of: dict[int, Any]) -> dict[str, Any]:
        arguments = super().arguments(task, index, result_of)
        target = self._target(task)
        if target is not None and target[0] == index:
            arguments[target[1]] = target[2]
        return arguments


AGENTS: dict[str, type[OracleAgent] | type[NullAgent] | type[WrongToolAgent]] = {
    "oracle": OracleAgent,
    "null": NullAgent,
    "wrong_tool": WrongToolAgent,
    "wrong_argument": WrongArgumentAgent,
}


def make_agent(name: str, tool_format: ToolFormat = "native") -> ProbeAgent:
    """A reference agent by name (see :data:`AGENTS`)."""
    try:
        return AGENTS[name](tool_format)
    except KeyError:
        raise ValueError(f"unknown probe agent {name!r}; choose from {', '.join(AGENTS)}") from None
