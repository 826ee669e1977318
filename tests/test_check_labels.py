"""The deterministic call checks against an independent, hand-labelled set (tests/data/call_checks.jsonl).

The labels were written from the specification of the checks, not from the code, so a failure here
names cases where the checks and a careful grader disagree (see each case's ``note``). The cases are
written by ``tests/data/make_call_checks.py``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from trustee_env.checks import CallRecord, run_checks, validate_call
from trustee_env.schemas import ExpectedCall, Task, ToolCall, ToolSpec
from trustee_env.testing import checks_task

DATA = Path(__file__).resolve().parent / "data" / "call_checks.jsonl"

# Schema validation and redundancy are rule-exact: every case there must be judged right. The fuzzy
# matchers (normalisation, dates, alternatives, arrays) get the 0.95 floor.
FLOORS: dict[str, float] = {
    "correct": 1.0,
    "hallucinated_argument": 1.0,
    "nested_hallucinated_argument": 1.0,
    "alternatives": 0.95,
    "optional_argument": 1.0,
    "integer_float": 1.0,
    "array_order": 0.95,
    "dates": 0.95,
    "normalization": 0.95,
    "wrong_function": 1.0,
    "unknown_tool": 1.0,
    "missing_required": 1.0,
    "wrong_value": 0.95,
    "extra_calls": 1.0,
    "repeated_calls": 1.0,
    "reordered_parallel": 1.0,
    "ordered_after": 1.0,
    "from_result": 0.95,
}
OVERALL_FLOOR = 0.95
MIN_PER_CLASS = 12


@cache
def load_cases() -> tuple[dict[str, Any], ...]:
    """The labelled cases, in file order."""
    lines = DATA.read_text(encoding="utf-8").splitlines()
    return tuple(json.loads(line) for line in lines if line.strip())


def _task(case: dict[str, Any], tools: list[ToolSpec]) -> Task:
    return checks_task([ExpectedCall(**e) for e in case["expected_calls"]], tools, strictness=4)


def judge(case: dict[str, Any]) -> bool:
    """The checks' verdict on one case: accepted when nothing caps the score at strictness 4."""
    tools = [ToolSpec(**t) for t in case["tools"]]
    records = []
    for i, c in enumerate(case["calls"]):
        call = ToolCall(id=f"c{i}", name=c["name"], arguments=c["arguments"])
        status, error = validate_call(tools, call)
        records.append(
            CallRecord(
                step=i + 1,
                index=0,
                call=call,
                status=status,
                result=(c.get("result", {}) if status == "ok" else None),
                error=error,
            )
        )
    report = run_checks(_task(case, tools), records)
    return not report.caps(4)


@cache
def verdicts() -> dict[str, bool]:
    """Case id -> the checks' verdict (computed once for all tests)."""
    return {case["id"]: judge(case) for case in load_cases()}


def _misjudged(cases: list[dict[str, Any]]) -> list[str]:
    got = verdicts()
    return [
        f"{c['id']}: label {'accept' if c['accept'] else 'reject'}, checks said "
        f"{'accept' if got[c['id']] else 'reject'} -- {c['note']}"
        for c in cases
        if got[c["id"]] != c["accept"]
    ]


def test_data_file_is_well_formed() -> None:
    cases = load_cases()
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    classes = Counter(c["class"] for c in cases)
    assert set(classes) == set(FLOORS), set(classes) ^ set(FLOORS)
    assert all(n >= MIN_PER_CLASS for n in classes.values()), classes
    assert len(cases) >= 230
    for c in cases:
        assert isinstance(c["accept"], bool) and c["note"], c["id"]
        offered = {t["name"] for t in c["tools"]}
        for e in c["expected_calls"]:
            assert e["name"] in offered, (c["id"], e["name"])
            assert all(0 <= i < len(c["expected_calls"]) for i in e["after"]), c["id"]
        for t in c["tools"]:
            Draft202012Validator.check_schema(t["parameters"])
            assert t["parameters"]["type"] == "object", (c["id"], t["name"])


def test_overall_accuracy() -> None:
    cases = list(load_cases())
    wrong = _misjudged(cases)
    accuracy = 1 - len(wrong) / len(cases)
    assert accuracy >= OVERALL_FLOOR, f"accuracy {accuracy:.3f} < {OVERALL_FLOOR}:\n" + "\n".join(wrong)


def _by_class() -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in load_cases():
        groups[case["class"]].append(case)
    return groups


@pytest.mark.parametrize("cls", sorted(FLOORS))
def test_class_accuracy(cls: str) -> None:
    cases = _by_class()[cls]
    wrong = _misjudged(cases)
    accuracy = 1 - len(wrong) / len(cases)
    assert accuracy >= FLOORS[cls], f"{cls}: accuracy {accuracy:.3f} < {FLOORS[cls]}:\n" + "\n".join(wrong)
