"""Deterministic reward checks: pure functions over the task and the calls the agent made.

The checks are computed and reported at every difficulty; only those at or below the
episode's strictness level cap the reward (DESIGN, decision 4):

===========  =====================  ==========================================
level        criterion              cap when violated
===========  =====================  ==========================================
1            intent                 the simulated user gave up -> reward <= 0
2            correct_tools          an expected call is missing -> reward <= 0
3            no_hallucination       unknown tool or schema error -> reward <= -1
4            no_redundancy          a repeated successful call -> reward <= 0
5            efficiency             graded mode only (extra calls lower the score)
===========  =====================  ==========================================
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date, datetime
from typing import Any, Literal

import jsonpointer
from pydantic import BaseModel, Field

from trustee_env.schemas import ExpectedCall, Task, ToolCall, canonical_json

__all__ = [
    "CRITERIA",
    "CallRecord",
    "Cap",
    "CheckReport",
    "choose_matcher",
    "match_value",
    "normalize",
    "run_checks",
]

CRITERIA = ("intent", "correct_tools", "no_hallucination", "no_redundancy", "efficiency")
FREE_TEXT_NAMES = frozenset(
    {
        "message",
        "body",
        "text",
        "content",
        "note",
        "notes",
        "description",
        "comment",
        "reason",
        "subject",
        "query",
        "title",
        "instructions",
        "question",
        "review",
    }
)

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
            "schema_errors": self.schema_errors,
            "redundant_calls": self.redundant,
            "parse_errors": self.parse_errors,
        }


def choose_matcher(name: str, schema: dict[str, Any], value: Any) -> str:
    """The matcher an expected argument gets from its JSON schema (DESIGN, decision 3)."""
    kind = schema.get("type")
    if "enum" in schema or kind in ("boolean", "integer") or isinstance(value, bool):
        return "exact"
    if kind == "array" or isinstance(value, list):
        return "set"
    if kind == "object" or isinstance(value, dict):
        return "any"
    if kind == "string" or isinstance(value, str):
        if schema.get("format") in ("date", "date-time"):
            return "normalized"
        if name.lower() in FREE_TEXT_NAMES or (isinstance(value, str) and len(value) > 60):
            return "any"
    return "normalized"


def normalize(value: Any) -> Any:
    """NFKC, casefold and collapsed whitespace for text; floats for numbers; ISO for dates."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = " ".join(unicodedata.normalize("NFKC", value).casefold().split())
        try:
            return float(text.replace(",", "")) if re.fullmatch(r"-?[\d,]*\.?\d+", text) else _as_date(text)
        except ValueError:
            return text
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    return value


def _as_date(text: str) -> str:
    for parse in (date.fromisoformat, lambda t: datetime.fromisoformat(t).date()):
        try:
            return parse(text).isoformat()
        except ValueError:
            continue
    for fmt in ("%Y/%m/%d", "%d/%m/%Y", "%B %d, %Y", "%b %d, %Y", "%d %B %Y"):
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return text


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return canonical_json(a) == canonical_json(b)


def match_value(matcher: str, expected: Any, actual: Any, results: list[Any] | None = None) -> bool:
    """Does ``actual`` satisfy ``expected`` under ``matcher``?

    ``results`` are the results of the agent's earlier successful calls, for
    ``from_result:<call>#<pointer>`` matchers.
    """
    if matcher == "any":
        return actual is not None
    if matcher == "exact":
        return canonical_json(expected) == canonical_json(actual)
    if matcher == "set":
        if not isinstance(actual, list) or not isinstance(expected, list):
            return False
        left = sorted(canonical_json(normalize(v)) for v in expected)
        right = sorted(canonical_json(normalize(v)) for v in actual)
        return left == right
    if matcher.startswith("from_result:"):
        spec = matcher.removeprefix("from_result:")
        call_part, _, pointer = spec.partition("#")
        try:
            source = (results or [])[int(call_part)]
            return _equal(normalize(jsonpointer.resolve_pointer(source, pointer)), normalize(actual))
        except (ValueError, IndexError, jsonpointer.JsonPointerException, TypeError):
            return False
    return _equal(normalize(expected), normalize(actual))


def _arguments_match(expected: ExpectedCall, call: ToolCall, results: list[Any]) -> bool:
    for name, value in expected.arguments.items():
        if name not in call.arguments:
            return False
        if not match_value(expected.matchers.get(name, "normalized"), value, call.arguments[name], results):
            return False
    return True


def _ordered(expected: list[ExpectedCall], chosen: dict[int, int], index: int, act: int) -> bool:
    """Would matching expected call ``index`` to actual ``act`` keep every ``after`` among the chosen?"""
    if any(j in chosen and chosen[j] >= act for j in expected[index].after):
        return False
    return all(act < other for i, other in chosen.items() if index in expected[i].after)


def _best_assignment(expected: list[ExpectedCall], ok_records: list[CallRecord], results: list[Any]) -> dict[int, int]:
    """Expected call index -> actual call index, matching as many expected calls as possible.

    A greedy pass can give an actual call to an expected call that asks less of it and starve a
    stricter one, so this searches the assignments (few expected calls, few actual ones); ties go
    to the earliest actual calls. ``after`` must hold between expected calls that are both matched.
    """
    candidates = [
        [
            act
            for act, record in enumerate(ok_records)
            if record.call.name == exp.name and _arguments_match(exp, record.call, results[:act])
        ]
        for exp in expected
    ]
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
            if act not in chosen.values() and _ordered(expected, chosen, index, act):
                chosen[index] = act
                search(index + 1, chosen)
                del chosen[index]
        search(index + 1, chosen)

    search(0, {})
    return best


def run_checks(
    task: Task, records: list[CallRecord], parse_errors: int = 0, *, user_gave_up: bool = False
) -> CheckReport:
    """Run every deterministic check over the calls of one finished episode.

    ``user_gave_up``: the simulated user ended the conversation unsatisfied, so the
    intent was not met whatever the judge says (cap 0 at every strictness).
    """
    report = CheckReport(parse_errors=parse_errors)
    ok_records = [r for r in records if r.status == "ok"]
    ok_results = [r.result for r in ok_records]

    # Expected calls as a multiset: the largest one-to-one assignment, honouring `after`.
    report.matched = _best_assignment(task.expected_calls, ok_records, ok_results)
    report.missing = [i for i in range(len(task.expected_calls)) if i not in report.matched]
    report.extra_calls = max(0, len(records) - len(report.matched))

    report.unknown_tools = sorted({r.call.name for r in records if r.status == "unknown_tool"})
    report.schema_errors = sum(1 for r in records if r.status == "invalid_arguments")
    seen: set[tuple[str, str]] = set()
    for record in ok_records:
        key = (record.call.name, record.call.canonical_arguments())
        if key in seen:
            report.redundant += 1
        seen.add(key)

    if user_gave_up:
        report.violations.append(Cap(criterion="intent", level=1, cap=0, detail="the user gave up"))
    if report.missing:
        names = ", ".join(task.expected_calls[i].name for i in report.missing)
        report.violations.append(
            Cap(criterion="correct_tools", level=2, cap=0, detail=f"missing expected call(s): {names}")
        )
    if report.unknown_tools or report.schema_errors:
        detail = []
        if report.unknown_tools:
            detail.append(f"unknown tool(s): {', '.join(report.unknown_tools)}")
        if report.schema_errors:
            detail.append(f"{report.schema_errors} call(s) with invalid arguments")
        report.violations.append(Cap(criterion="no_hallucination", level=3, cap=-1, detail="; ".join(detail)))
    if report.redundant:
        report.violations.append(
            Cap(criterion="no_redundancy", level=4, cap=0, detail=f"{report.redundant} repeated successful call(s)")
        )
    return report
