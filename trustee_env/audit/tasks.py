"""Task-generator probes: the validity gate's pass rates, the solvable fraction, near-duplicates over N tasks.

``solvable`` is checked by code, independently of the gate: every expected call is a valid call of an
offered tool (``validate_call``: closed schemas, strict integers) and every value matched ``exact`` or
``normalized`` appears in what the user says or knows or in the initial world state. A requested task
that could not be generated at all (a task sim fault) counts as not solvable.
"""

from __future__ import annotations

from typing import Any

from trustee_env.audit.context import AuditContext
from trustee_env.audit.signal import gate_report
from trustee_env.audit.text import mentions
from trustee_env.checks import validate_call
from trustee_env.difficulty import aspects_for
from trustee_env.roles.task_generator import TaskGenerator
from trustee_env.schemas import Role, Task, ToolCall, canonical_json, derive_seed

__all__ = ["solvable", "task_section"]

_GROUNDED_MATCHERS = ("exact", "normalized")


def solvable(task: Task) -> list[str]:
    """Why the task cannot be solved as written (empty list: it can)."""
    problems = []
    known = " ".join([task.first_query, canonical_json(task.user_facts), canonical_json(task.initial_state)])
    for index, expected in enumerate(task.expected_calls):
        status, error = validate_call(
            task.tools, ToolCall(id=f"x{index}", name=expected.name, arguments=expected.arguments)
        )
        if status != "ok":
            problems.append(f"call {index}: {error}")
        for name, value in expected.arguments.items():
            matcher = expected.matchers.get(name, "normalized")
            if matcher in _GROUNDED_MATCHERS and not isinstance(value, bool) and not mentions(known, value):
                problems.append(f"call {index}: {name}={value!r} is nowhere the user or the state could give it")
    return problems


def _counts(ctx: AuditContext) -> tuple[int, int]:
    entry = ctx.usage.roles.get(Role.TASK_GENERATOR.value)
    return (entry.calls, entry.repairs) if entry else (0, 0)


async def task_section(ctx: AuditContext, *, count: int = 4, difficulty: float = 30.0) -> dict[str, Any]:
    """Generate ``count`` tasks through the gate (fresh gate counters) and measure them."""
    cfg = ctx.config
    generator = TaskGenerator(
        ctx.client(Role.TASK_GENERATOR),
        ungrounded=cfg.ungrounded_arguments,
        prompt_dir=cfg.prompt_dir,
        require_records=cfg.task_require_records,
        dedup_window=0,
    )
    tasks: list[Task] = []
    max_repairs = cfg.endpoint(Role.TASK_GENERATOR).max_repairs
    requests = drafts = first_draft = 0
    for index in range(count):
        seed = derive_seed("audit-task", index)
        calls_before, repairs_before = _counts(ctx)
        task = await ctx.guard(
            Role.TASK_GENERATOR,
            generator.generate_with_attempts(
                ctx.catalog,
                seed,
                difficulty,
                aspects_for(difficulty),
                attempts=cfg.task_attempts,
                usage=ctx.usage,
            ),
        )
        calls, repairs = (
            now - before for now, before in zip(_counts(ctx), (calls_before, repairs_before), strict=True)
        )
        # Each request ends with one draft that passed or with every re-ask used; this holds on a cache replay too,
        # where the gate itself sees no drafts (its counters then say nothing about the model).
        failed = calls - (1 if task is not None else 0)
        requests += calls
        drafts += calls + repairs
        if task is not None:
            tasks.append(task)
            first_draft += int(repairs - failed * max_repairs == 0)
    unsolvable = {task.task_id: problems for task in tasks if (problems := solvable(task))}
    gate = gate_report(generator.gate_stats.as_dict())
    return {
        "requests": requests,
        "draft_pass_rate": round(len(tasks) / drafts, 4) if drafts else None,
        "first_draft_pass_rate": round(first_draft / requests, 4) if requests else None,
        "requested": count,
        "difficulty": difficulty,
        "generated": len(tasks),
        "generated_rate": round(len(tasks) / count, 4) if count else None,
        "solvable_fraction": round((len(tasks) - len(unsolvable)) / count, 4) if count else None,
        "code_repaired": sum(1 for task in tasks if any(note.startswith("gate:") for note in task.notes)),
        "unsolvable": {key: value[:3] for key, value in unsolvable.items()},
        "near_duplicate_rate": gate["near_duplicate_rate"],
        "gate": gate,
        "intents": [task.intent[:120] for task in tasks],
    }
