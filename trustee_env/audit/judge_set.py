"""The labelled judge set: trajectories whose deserved verdict is known by construction.

Built by ``scripts/build_judge_set.py`` (scripted agents against the scripted server; each class of
behaviour has its label) and shipped as package data in ``trustee_env/audit/data/judge_set.jsonl``
(so ``trustee audit`` finds it from an installed wheel). Pass another file with
``trustee audit --judge-set`` (same line format) to score the judge on your own labelled trajectories.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from trustee_env.checks import CallRecord
from trustee_env.errors import ConfigError
from trustee_env.schemas import Task

__all__ = ["DEFAULT_JUDGE_SET", "JudgeItem", "load_judge_set", "stratified"]

DEFAULT_JUDGE_SET = Path(__file__).resolve().parent / "data" / "judge_set.jsonl"
"""The bundled set: package data, present in a source checkout and in an installed wheel alike."""


class JudgeItem(BaseModel):
    """One labelled trajectory: what the judge sees, and the verdict it deserves."""

    id: str
    kind: str = Field(alias="class", description="The behaviour that produced it (goal_met, wrong_tool, ...).")
    label: Literal[-1, 0, 1] = Field(description="The deserved ternary verdict at this strictness.")
    strictness: int = Field(ge=1, le=5)
    termination: str | None
    parse_errors: int = 0
    task: Task
    calls: list[CallRecord]
    transcript: list[str]

    @property
    def truncated(self) -> bool:
        """Ended by a budget rather than by the user (the judge caps such an episode at 0)."""
        return self.termination not in ("user_satisfied", "user_gave_up")


def load_judge_set(path: str | Path | None = None) -> list[JudgeItem]:
    """Every item of a labelled set (JSON lines); a ConfigError names the first bad line."""
    source = Path(path) if path else DEFAULT_JUDGE_SET
    if not source.is_file():
        raise ConfigError(f"no judge set at {source}; build it with scripts/build_judge_set.py or pass --judge-set")
    items = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(JudgeItem.model_validate(json.loads(line)))
        except ValueError as err:
            raise ConfigError(f"{source}:{number}: not a judge-set item: {str(err)[:300]}") from None
    return items


def stratified(items: list[JudgeItem], per_class: int | None) -> list[JudgeItem]:
    """The first ``per_class`` items of every class (all when None): a fixed, balanced subset."""
    if per_class is None:
        return list(items)
    taken: dict[str, int] = defaultdict(int)
    chosen = []
    for item in items:
        if taken[item.kind] < per_class:
            taken[item.kind] += 1
            chosen.append(item)
    return chosen
