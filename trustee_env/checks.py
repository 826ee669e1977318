"""Deterministic reward checks: pure functions over the task and the calls the agent made.

The checks are computed and reported at every difficulty; only those at or below the
episode's strictness level cap the reward (DESIGN, decision 4):

===========  =====================  ==========================================
level        criterion              cap when violated
===========  =====================  ==========================================
1            floor                  the task needs calls and no expected tool
                                    was called successfully -> reward <= 0
1            intent                 the simulated user gave up -> reward <= 0
2            correct_tools          an expected call is missing -> reward <= 0
3            no_hallucination       unknown tool, made-up argument or schema
                                    error -> reward <= -1
4            no_redundancy          a repeated successful call -> reward <= 0
5            efficiency             graded mode only (extra calls lower the score)
===========  =====================  ==========================================

The floor holds at every strictness: strictness changes how much more is demanded, never
whether doing nothing can win.

Each row is one :class:`Criterion` in a registry; the judge's answer schema, its prompt's
criteria list and the graded weights are generated from it, and :func:`register_criterion`
adds your own check (see docs/rewards.md).
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from trustee_env.matching import choose_matcher, match_value, normalize, parse_temporal, resolve_from_result
from trustee_env.schemas import ExpectedCall, Task, ToolCall, ToolSpec, schema_errors

__all__ = [
    "DEFAULT_CRITERIA",
    "CallRecord",
    "Cap",
    "CheckContext",
    "CheckReport",
    "Criterion",
    "choose_matcher",
    "criteria",
    "match_expected",
    "match_value",
    "normalize",
    "parse_temporal",
    "register_criterion",
    "run_checks",
    "unknown_arguments",
    "unregister_criterion",
    "validate_call",
]

CallStatus = Literal["ok", "unknown_tool", "invalid_arguments", "sim_fault"]


class CallRecord(BaseModel):
    """One tool call the agent made and what came of it."""

    step: int
    index: int
    call: ToolCall
    status: CallStatus
    result: Any = None
    error: str | None = None


class Cap(BaseModel):
    """A ceiling on the reward imposed by a failed deterministic check."""

    criterion: str
    level: int
    cap: int
    detail: str


class CheckReport(BaseModel):
    """Everything the deterministic checks found."""

    matched: dict[int, int] = Field(default_factory=dict, description="Expected call index -> actual call index.")
    missing: list[int] = Field(default_factory=list, description="Expected calls never made with matching arguments.")
    unknown_tools: list[str] = Field(default_factory=list)
    unknown_arguments: list[str] = Field(
        default_factory=list, description="Made-up argument names, as 'tool.argument' (hallucinations)."
    )
    schema_errors: int = 0
    redundant: int = 0
    extra_calls: int = 0
    parse_errors: int = 0
    violations: list[Cap] = Field(default_factory=list, description="Every failed check, active or not.")

    def caps(self, strictness: int) -> list[Cap]:
        """The violations that cap the reward at this strictness level."""
        return [cap for cap in self.violations if cap.level <= strictness]

    def summary(self) -> dict[str, Any]:
        """A compact view for prompts and logs."""
        return {
            "expected_calls_matched": len(self.matched),
            "expected_calls_missing": len(self.missing),
            "unknown_tools": self.unknown_tools,
            "unknown_arguments": self.unknown_arguments,
            "schema_errors": self.schema_errors,
            "redundant_calls": self.redundant,
            "parse_errors": self.parse_errors,
        }


ResultOf = Callable[[int], Any]
"""``k -> the result of the actual call matched to expected call k`` (LookupError if none is, yet)."""


def _arguments_match(expected: ExpectedCall, call: ToolCall, result_of: ResultOf | None) -> bool:
    """Does ``call`` give every expected argument? ``from_result`` arguments are skipped without ``result_of``."""
    for name, value in expected.arguments.items():
        matcher = expected.matchers.get(name, "normalized")
        if name not in call.arguments:
            if matcher == "absent_or_one_of":
                continue
            return False
        actual = call.arguments[name]
        if matcher.startswith("from_result:"):
            if result_of is not None and not _from_result_matches(matcher, actual, result_of):
                return False
        elif not match_value(matcher, value, actual, None, expected.alternatives.get(name)):
            return False
    return True


def _from_result_matches(matcher: str, actual: Any, result_of: ResultOf) -> bool:
    """``from_result:<k>#<pointer>``: the value at the pointer in the result of the call matched to expected call k.

    Indexing by expected call (not by position among the agent's calls) keeps a harmless extra
    call made earlier from shifting the reference onto the wrong result.
    """
    try:
        produced = resolve_from_result(matcher, result_of)
    except LookupError:
        return False
    return match_value("normalized", produced, actual)


def unknown_arguments(spec: ToolSpec, arguments: dict[str, Any]) -> list[str]:
    """Top-level argument names the tool does not have (when its schema is closed)."""
    if spec.parameters.get("additionalProperties", False) is not False:
        return []
    properties = spec.parameters.get("properties", {})
    return [name for name in arguments if name not in properties]


def validate_call(tools: Sequence[ToolSpec], call: ToolCall) -> tuple[CallStatus, str | None]:
    """Check a call against the offered tools by code: ``("ok", None)`` or a status and the agent's feedback.

    Schemas are closed (see :func:`~trustee_env.schemas.close_schema`) and integers strict, so a
    made-up argument or ``12.0`` for an integer is an invalid call, named in the feedback.
    """
    spec = next((tool for tool in tools if tool.name == call.name), None)
    if spec is None:
        names = [tool.name for tool in tools]
        close = difflib.get_close_matches(call.name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return "unknown_tool", f"Error: unknown tool {call.name!r}.{hint} Available tools: {', '.join(names)}."
    unknown = unknown_arguments(spec, call.arguments)
    problems = [
        problem
        for problem in schema_errors(spec.parameters, call.arguments, root="arguments", strict_integers=True)
        if not (unknown and "Additional properties are not allowed" in problem and problem.startswith("arguments:"))
    ]
    properties = list(spec.parameters.get("properties", {}))
    for name in unknown:
        close = difflib.get_close_matches(name, properties, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        accepted = ", ".join(properties) or "none"
        problems.insert(0, f"arguments: unknown argument {name!r}{hint}; {call.name} accepts: {accepted}")
    if problems:
        return "invalid_arguments", f"Error: invalid arguments for {call.name}: " + "; ".join(problems[:5])
    return "ok", None


def _ordered(expected: list[ExpectedCall], chosen: dict[int, int], index: int, act: int) -> bool:
    """Would matching expected call ``index`` to actual ``act`` keep every ``after`` among the chosen?"""
    if any(j in chosen and chosen[j] >= act for j in expected[index].after):
        return False
    return all(act < other for i, other in chosen.items() if index in expected[i].after)


def match_expected(task: Task, records: Sequence[CallRecord]) -> dict[int, int]:
    """Expected call index -> index among the successful calls, for the largest one-to-one matching.

    The matching part of :func:`run_checks`, on its own: the goal gate asks it before every user turn.
    """
    return _best_assignment(task.expected_calls, [record for record in records if record.status == "ok"])


def _best_assignment(expected: list[ExpectedCall], ok_records: list[CallRecord]) -> dict[int, int]:
    """Expected call index -> actual call index, matching as many expected calls as possible.

    A greedy pass can give an actual call to an expected call that asks less of it and starve a
    stricter one, so this searches the assignments (few expected calls, few actual ones); ties go
    to the earliest actual calls. ``after`` must hold between expected calls that are both matched.
    """
    candidates = [
        [
            act
            for act, record in enumerate(ok_records)
            if record.call.name == exp.name and _arguments_match(exp, record.call, None)
        ]
        for exp in expected
    ]
    needs_results = [any(m.startswith("from_result:") for m in exp.matchers.values()) for exp in expected]
    best: dict[int, int] = {}
    best_size = -1
    ceiling = min(sum(1 for c in candidates if c), len({act for c in candidates for act in c}))

    def search(index: int, chosen: dict[int, int]) -> None:
        nonlocal best, best_size
        if best_size >= ceiling or len(chosen) + len(expected) - index <= best_size:
            return
        if index == len(expected):
            best, best_size = dict(chosen), len(chosen)
            return
        for act in candidates[index]:
            if act in chosen.values() or not _ordered(expected, chosen, index, act):
                continue
            if needs_results[index]:

                def result_of(k: int, act: int = act) -> Any:
                    if k not in chosen or chosen[k] >= act:
                        raise LookupError(f"expected call {k} is not matched by an earlier call")
                    return ok_records[chosen[k]].result

                if not _arguments_match(expected[index], ok_records[act].call, result_of):
                    continue
            chosen[index] = act
            search(index + 1, chosen)
            del chosen[index]
        search(index + 1, chosen)

    search(0, {})
    return best


@dataclass(frozen=True)
class CheckContext:
    """What a criterion's check sees: the task, the calls, the measured facts, how the user ended."""

    task: Task
    records: list[CallRecord]
    report: CheckReport
    user_gave_up: bool


CheckFunction = Callable[[CheckContext], "str | None"]


@dataclass(frozen=True)
class Criterion:
    """One reward criterion: what the judge scores, and the deterministic check that caps the reward.

    Args:
        name: the key in the judge's ``scores`` and in ``Cap.criterion``.
        level: the strictness from which the check caps the reward (1-5); reported at every level.
        description: what it means, as the judge's prompt lists it.
        weight: its weight in ``graded`` mode (criteria the judge does not score weigh nothing).
        cap: the reward ceiling when ``check`` finds a violation.
        check: ``context -> detail of the violation, or None``; None for judge-only criteria.
        judged: whether the judge LM scores it (False for purely deterministic rules such as the floor).
    """

    name: str
    level: int
    description: str
    weight: float = 0.0
    cap: int = 0
    check: CheckFunction | None = None
    judged: bool = True

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"criterion name must be an identifier, got {self.name!r}")
        if not 1 <= self.level <= 5:
            raise ValueError(f"criterion {self.name!r}: level must be 1-5, got {self.level}")
        if self.cap not in (-1, 0, 1):
            raise ValueError(f"criterion {self.name!r}: cap must be -1, 0 or 1, got {self.cap}")
        if self.weight < 0:
            raise ValueError(f"criterion {self.name!r}: weight must be >= 0, got {self.weight}")


def _floor(ctx: CheckContext) -> str | None:
    needed = {call.name for call in ctx.task.expected_calls}
    if needed and not any(r.status == "ok" and r.call.name in needed for r in ctx.records):
        return "the task needs tool calls and no expected tool was called successfully"
    return None


def _gave_up(ctx: CheckContext) -> str | None:
    return "the user gave up" if ctx.user_gave_up else None


def _missing(ctx: CheckContext) -> str | None:
    if not ctx.report.missing:
        return None
    return "missing expected call(s): " + ", ".join(ctx.task.expected_calls[i].name for i in ctx.report.missing)


def _hallucinated(ctx: CheckContext) -> str | None:
    report = ctx.report
    detail = []
    if report.unknown_tools:
        detail.append(f"unknown tool(s): {', '.join(report.unknown_tools)}")
    if report.unknown_arguments:
        detail.append(f"unknown argument(s): {', '.join(report.unknown_arguments)}")
    if report.schema_errors:
        detail.append(f"{report.schema_errors} call(s) with invalid arguments")
    return "; ".join(detail) or None


def _repeated(ctx: CheckContext) -> str | None:
    return f"{ctx.report.redundant} repeated successful call(s)" if ctx.report.redundant else None


DEFAULT_CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        "intent",
        1,
        "the user's goal was achieved, or the assistant correctly explained why it could not be",
        weight=0.4,
        cap=0,
        check=_gave_up,
    ),
    Criterion(
        "floor",
        1,
        "the task needs tool calls and none of the expected tools was called successfully",
        cap=0,
        check=_floor,
        judged=False,
    ),
    Criterion(
        "correct_tools", 2, "the right tools were called with the right arguments", weight=0.2, cap=0, check=_missing
    ),
    Criterion(
        "no_hallucination",
        3,
        "no made-up tools, arguments, facts or results; answers match what the tools returned",
        weight=0.2,
        cap=-1,
        check=_hallucinated,
    ),
    Criterion("no_redundancy", 4, "no repeated or unnecessary calls", weight=0.1, cap=0, check=_repeated),
    Criterion("efficiency", 5, "the goal was reached in few steps", weight=0.1),
)

_registry: dict[str, Criterion] = {criterion.name: criterion for criterion in DEFAULT_CRITERIA}
_registry_lock = threading.Lock()


def register_criterion(criterion: Criterion, *, replace: bool = False) -> None:
    """Add a reward criterion (its check, cap and weight, and a score the judge must give if ``judged``).

    Affects every env of the process created or judging afterwards: the judge's answer schema,
    its prompt's criteria list and the graded weights are all generated from the registry.
    """
    with _registry_lock:
        if criterion.name in _registry and not replace:
            raise ValueError(f"criterion {criterion.name!r} is already registered; pass replace=True to swap it")
        _registry[criterion.name] = criterion


def unregister_criterion(name: str) -> None:
    """Remove a criterion added with :func:`register_criterion` (the defaults can be replaced, not removed)."""
    if name in {criterion.name for criterion in DEFAULT_CRITERIA}:
        raise ValueError(f"{name!r} is a default criterion; replace it with register_criterion(..., replace=True)")
    with _registry_lock:
        _registry.pop(name, None)


def criteria(strictness: int | None = None, *, judged: bool | None = None) -> list[Criterion]:
    """Registered criteria ordered by level (active at ``strictness`` when given; only judged ones if asked)."""
    with _registry_lock:
        found = sorted(_registry.values(), key=lambda c: c.level)
    return [
        criterion
        for criterion in found
        if (strictness is None or criterion.level <= strictness) and (judged is None or criterion.judged == judged)
    ]


def __getattr__(name: str) -> Any:
    if name == "CRITERIA":  # deprecated: the judged criteria's names; use criteria(judged=True)
        return tuple(criterion.name for criterion in criteria(judged=True))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_checks(
    task: Task, records: list[CallRecord], parse_errors: int = 0, *, user_gave_up: bool = False
) -> CheckReport:
    """Measure the calls of one finished episode and run every registered criterion's check over them.

    ``user_gave_up``: the simulated user ended the conversation unsatisfied, so the
    intent was not met whatever the judge says (cap 0 at every strictness).
    """
    report = CheckReport(parse_errors=parse_errors)
    ok_records = [r for r in records if r.status == "ok"]

    # Expected calls as a multiset: the largest one-to-one assignment, honouring `after`.
    report.matched = _best_assignment(task.expected_calls, ok_records)
    report.missing = [i for i in range(len(task.expected_calls)) if i not in report.matched]
    report.extra_calls = max(0, len(records) - len(report.matched))

    report.unknown_tools = sorted({r.call.name for r in records if r.status == "unknown_tool"})
    report.schema_errors = sum(1 for r in records if r.status == "invalid_arguments")
    report.unknown_arguments = sorted(
        {
            f"{r.call.name}.{name}"
            for r in records
            if r.status == "invalid_arguments" and (spec := task.tool(r.call.name)) is not None
            for name in unknown_arguments(spec, r.call.arguments)
        }
    )
    seen: set[tuple[str, str]] = set()
    for record in ok_records:
        key = (record.call.name, record.call.canonical_arguments())
        if key in seen:
            report.redundant += 1
        seen.add(key)

    context = CheckContext(task=task, records=records, report=report, user_gave_up=user_gave_up)
    for criterion in criteria():
        if criterion.check is None:
            continue
        detail = criterion.check(context)
        if detail:
            report.violations.append(
                Cap(criterion=criterion.name, level=criterion.level, cap=criterion.cap, detail=detail)
            )
    return report
