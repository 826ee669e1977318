"""Readable views of an episode or a recorded trajectory, for ``env.render()`` and ``trustee view``."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustee_env.trajectory import Trajectory

__all__ = ["render_episode", "render_trajectory"]

_ROLE_LABEL = {"system": "SYSTEM", "user": "USER", "assistant": "AGENT", "tool": "TOOL"}


def _message_lines(message: dict[str, Any], width: int) -> list[str]:
    label = _ROLE_LABEL.get(message.get("role", ""), str(message.get("role", "?")).upper())
    if message.get("role") == "tool":
        label += f" [{message.get('tool_call_id', '?')}]"
    body = str(message.get("content") or "")
    lines = [f"{label}:"]
    for paragraph in body.splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, width - 4, initial_indent="    ", subsequent_indent="    ") or ["    "])
    for call in message.get("tool_calls") or []:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        lines.append(f"    -> {function.get('name')}({function.get('arguments')})  [{call.get('id')}]")
    return lines


def render_trajectory(record: Trajectory, *, width: int = 100, show_system: bool = False) -> str:
    """A recorded trajectory (one JSONL line) as plain text."""
    task = record.task
    head = [
        "=" * width,
        f"task {task.task_id if task else '?'}  difficulty {record.difficulty}  seed {record.seed}",
    ]
    if task:
        head.append(f"intent (hidden): {task.intent}")
        expected = "; ".join(f"{c.name}({json.dumps(c.arguments)})" for c in task.expected_calls)
        head.append(f"expected calls: {expected}")
    head.append("-" * width)
    body: list[str] = []
    for message in record.messages:
        if message.get("role") == "system" and not show_system:
            continue
        body.extend(_message_lines(message, width))
    tail = ["-" * width]
    if record.termination:
        tail.append(f"ended: {record.termination}   reward: {record.reward}")
    verdict = record.verdict
    if verdict:
        tail.append(f"judge: {verdict.judge_verdict}  scores: {verdict.scores}")
        if verdict.caps:
            tail.append("caps: " + "; ".join(f"{c.criterion}<={c.cap} ({c.detail})" for c in verdict.caps))
        if verdict.rationale:
            tail.append(f"rationale: {verdict.rationale}")
    if record.sim_fault:
        tail.append(f"SIM FAULT: {record.sim_fault.model_dump()}")
    return "\n".join(head + body + tail)


def render_episode(episode: Any, *, width: int = 100) -> str:
    """The live episode as plain text (what ``env.render()`` returns in ``ansi`` mode)."""
    if episode.task is None and not episode.sim_fault:
        return "(no episode yet: call reset())"
    return render_trajectory(episode.trajectory(), width=width)
