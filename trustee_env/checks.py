"""Deterministic reward checks: pure functions over the task and the calls the agent made.

The checks are computed and reported at every difficulty; only those at or below the
episode's strictness level cap the reward (DESIGN, decision 4):

===========  =====================  ==========================================
level        criterion              cap when violated
===========  =====================  ==========================================
1            (floor)                the task needs calls and no expected tool
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
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections.abc import Sequence
from datetime import date, time
from typing import Any, Literal

import jsonpointer
from pydantic import BaseModel, Field

from trustee_env.schemas import ExpectedCall, Task, ToolCall, ToolSpec, canonical_json, schema_errors

__all__ = [
    "CRITERIA",
    "CallRecord",
    "Cap",
    "CheckReport",
    "choose_matcher",
    "match_value",
    "normalize",
    "parse_temporal",
    "run_checks",
    "unknown_arguments",
    "validate_call",
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


def choose_matcher(name: str, schema: dict[str, Any], value: Any) -> str:
    """The matcher an expected argument gets from its JSON schema (DESIGN, decision 3).

    Arrays are ordered unless the schema makes them set-like (``uniqueItems``).
    """
    kind = schema.get("type")
    if "enum" in schema or kind in ("boolean", "integer") or isinstance(value, bool):
        return "exact"
    if kind == "array" or isinstance(value, list):
        return "set" if schema.get("uniqueItems") else "ordered"
    if kind == "object" or isinstance(value, dict):
        return "any"
    if kind == "string" or isinstance(value, str):
        if schema.get("format") in ("date", "date-time", "time"):
            return "normalized"
        if name.lower() in FREE_TEXT_NAMES or (isinstance(value, str) and len(value) > 60):
            return "any"
    return "normalized"


# Punctuation that never carries meaning in an argument value: dropped, or read as a word break.
_TEXT_PUNCTUATION = str.maketrans({**{c: None for c in ".,;:!?'\"()[]{}‘’“”«»"}, **{c: " " for c in "-_/‐–—"}})
_NUMBER = re.compile(r"-?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")


def normalize(value: Any) -> Any:
    """The comparable form of a value: numbers as floats, dates and times as ISO 8601, text folded.

    Text is NFKC-normalised, casefolded, stripped of punctuation (``. , ; : ! ? ' " ( ) [ ] { }``;
    hyphens, underscores and slashes become spaces) and whitespace-collapsed. Symbols such as
    ``# + & @ % $`` are kept ("C#" is not "C"). Dates follow :func:`parse_temporal`.
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = " ".join(unicodedata.normalize("NFKC", value).casefold().split())
        if _NUMBER.fullmatch(text):
            return float(text.replace(",", ""))
        temporal = parse_temporal(text)
        if temporal is not None:
            return temporal
        return " ".join(text.translate(_TEXT_PUNCTUATION).split())
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    return value


_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_YEAR_FIRST = re.compile(
    r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})"
    r"(?:[t ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(z|[+-]\d{2}:?\d{2})?)?"
)
_NUMERIC_DMY = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4})")
_TIME = re.compile(r"(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?")


def _iso_date(year: int, month: int, day: int) -> str | None:
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def _iso_time(hour: int, minute: int, second: int, meridiem: str | None) -> str | None:
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem.startswith("p") else 0)
    try:
        return time(hour, minute, second).isoformat()
    except ValueError:
        return None


def parse_temporal(text: str) -> str | None:
    """An ISO 8601 form of a date, date-time or time written in an unambiguous way, else None.

    The rules, so no date is ever silently reinterpreted:

    * year first (``2022-01-05``, ``2022-1-5``, ``2022/01/05``, with an optional ``T``/space time and zone);
    * a month name with a day and a four-digit year in any order (``May 12, 2022``, ``May.12,2022``,
      ``12 May 2022``, ``12-May-2022``, ``Mar 17th 1915``);
    * numeric day/month/year only when one of the first two numbers is above 12 (``03/17/1915`` is
      March 17, ``17/03/1915`` too); ``03/04/2022`` is ambiguous and stays text;
    * a time with a colon or am/pm (``14:30``, ``2:30 PM``, ``2 pm``) as ``HH:MM:SS``.
    """
    text = text.strip().casefold()
    if match := _YEAR_FIRST.fullmatch(text):
        year, _, month, day, hour, minute, second, zone = match.groups()
        day_iso = _iso_date(int(year), int(month), int(day))
        if day_iso is None or hour is None:
            return day_iso
        clock = _iso_time(int(hour), int(minute), int(second or 0), None)
        if clock is None:
            return None
        suffix = "" if zone is None else ("+00:00" if zone == "z" else zone[:3] + ":" + zone[-2:])
        return f"{day_iso}T{clock}{suffix}"
    if match := _NUMERIC_DMY.fullmatch(text):
        first, _, second, year = match.groups()
        a, b = int(first), int(second)
        if a > 12 >= b:
            return _iso_date(int(year), b, a)
        if b > 12 >= a:
            return _iso_date(int(year), a, b)
        return None
    parts = [part for part in re.split(r"[\s.,/-]+", text) if part]
    if len(parts) == 3 and sum(part in _MONTHS for part in parts) == 1:
        month = next(_MONTHS[part] for part in parts if part in _MONTHS)
        numbers = [re.fullmatch(r"(\d{1,4})(?:st|nd|rd|th)?", part) for part in parts if part not in _MONTHS]
        if all(numbers):
            values = [m.group(1) for m in numbers if m]
            years = [v for v in values if len(v) == 4]
            days = [v for v in values if len(v) <= 2]
            if len(years) == 1 and len(days) == 1:
                return _iso_date(int(years[0]), month, int(days[0]))
        return None
    if (match := _TIME.fullmatch(text)) and (match.group(2) is not None or match.group(4)):
        hour, minute, second, meridiem = match.groups()
        return _iso_time(int(hour), int(minute or 0), int(second or 0), meridiem)
    return None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return canonical_json(a) == canonical_json(b)


def _same(expected: Any, actual: Any) -> bool:
    """Equal after normalisation: arrays element by element in order, objects key by key."""
    if isinstance(expected, list) or isinstance(actual, list):
        return (
            isinstance(expected, list)
            and isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_same(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, dict) or isinstance(actual, dict):
        return (
            isinstance(expected, dict)
            and isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(_same(expected[k], actual[k]) for k in expected)
        )
    left, right = normalize(expected), normalize(actual)
    if isinstance(left, str) and isinstance(right, str) and _same_day(left, right):
        return True
    return _equal(left, right)


def _same_day(left: str, right: str) -> bool:
    """A date-only value matches a date-time on that day (the date did not ask for a time)."""
    short, long = sorted((left, right), key=len)
    return len(short) == 10 and parse_temporal(short) == short and long.startswith(short + "T")


def match_value(
    matcher: str,
    expected: Any,
    actual: Any,
    results: list[Any] | None = None,
    alternatives: list[Any] | None = None,
) -> bool:
    """Does ``actual`` satisfy ``expected`` under ``matcher``?

    ``results`` are the results of the agent's earlier successful calls, for
    ``from_result:<call>#<pointer>`` matchers; ``alternatives`` are the other acceptable values of
    ``one_of`` and ``absent_or_one_of`` (absence itself is decided by the caller).
    """
    if matcher == "any":
        return actual is not None
    if matcher == "exact":
        return canonical_json(expected) == canonical_json(actual)
    if matcher in ("one_of", "absent_or_one_of"):
        return any(_same(option, actual) for option in [expected, *(alternatives or [])])
    if matcher == "set":
        if not isinstance(actual, list) or not isinstance(expected, list):
            return False
        left = sorted(canonical_json(normalize(v)) for v in expected)
        right = sorted(canonical_json(normalize(v)) for v in actual)
        return left == right
    if matcher == "ordered":
        return isinstance(expected, list) and _same(expected, actual)
    if matcher.startswith("from_result:"):
        spec = matcher.removeprefix("from_result:")
        call_part, _, pointer = spec.partition("#")
        try:
            source = (results or [])[int(call_part)]
            return _same(jsonpointer.resolve_pointer(source, pointer), actual)
        except (ValueError, IndexError, jsonpointer.JsonPointerException, TypeError):
            return False
    return _same(expected, actual)


def _arguments_match(expected: ExpectedCall, call: ToolCall, results: list[Any]) -> bool:
    for name, value in expected.arguments.items():
        matcher = expected.matchers.get(name, "normalized")
        if name not in call.arguments:
            if matcher == "absent_or_one_of":
                continue
            return False
        if not match_value(matcher, value, call.arguments[name], results, expected.alternatives.get(name)):
            return False
    return True


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

    if user_gave_up:
        report.violations.append(Cap(criterion="intent", level=1, cap=0, detail="the user gave up"))
    expected_names = {call.name for call in task.expected_calls}
    if expected_names and not any(record.call.name in expected_names for record in ok_records):
        report.violations.append(
            Cap(
                criterion="correct_tools",
                level=1,
                cap=0,
                detail="floor: the task needs tool calls and no expected tool was called successfully",
            )
        )
    if report.missing:
        names = ", ".join(task.expected_calls[i].name for i in report.missing)
        report.violations.append(
            Cap(criterion="correct_tools", level=2, cap=0, detail=f"missing expected call(s): {names}")
        )
    if report.unknown_tools or report.schema_errors:
        detail = []
        if report.unknown_tools:
            detail.append(f"unknown tool(s): {', '.join(report.unknown_tools)}")
        if report.unknown_arguments:
            detail.append(f"unknown argument(s): {', '.join(report.unknown_arguments)}")
        if report.schema_errors:
            detail.append(f"{report.schema_errors} call(s) with invalid arguments")
        report.violations.append(Cap(criterion="no_hallucination", level=3, cap=-1, detail="; ".join(detail)))
    if report.redundant:
        report.violations.append(
            Cap(criterion="no_redundancy", level=4, cap=0, detail=f"{report.redundant} repeated successful call(s)")
        )
    return report
