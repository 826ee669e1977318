"""Judge: the deterministic checks plus one LM verdict, combined so the verdict cannot be talked up.

Ternary reward = min(LM verdict, every active cap, 0 if the episode was truncated).
Graded reward = the weighted mean of the active criteria's scores, under the same caps;
at strictness 5 each call beyond the expected ones costs 0.1.
Checks reward (``reward_mode="checks"``) = the deterministic checks alone, no LM asked: 1 unless a check up to
strictness 4 fails (every expected call made with matching, valid arguments; no unknown tool or made-up argument;
no repeated call), whatever the episode's own strictness, and whether or not a budget ended the episode; fast,
reproducible, and impossible to talk up.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from trustee_env.checks import Cap, CheckReport, criteria
from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.prompts import render_messages
from trustee_env.schemas import Task

__all__ = ["CHECKS_STRICTNESS", "Judge", "JudgeOutput", "Verdict", "checks_only", "combine", "judge_output_model"]

Score = Literal[-1, 0, 1]


class JudgeOutputBase(BaseModel):
    """What the judge LM returns (rationale first, so small models reason before scoring).

    ``scores`` holds one field per judged criterion of the registry (see :func:`judge_output_model`).
    """

    rationale: str = Field(max_length=400)
    scores: BaseModel
    verdict: Score


@functools.lru_cache(maxsize=32)
def _output_model(names: tuple[str, ...]) -> type[JudgeOutputBase]:
    scores = create_model(  # type: ignore[call-overload]
        "JudgeScores", __doc__="Per-criterion scores in {-1, 0, 1}.", **{name: (Score, ...) for name in names}
    )
    return create_model("JudgeOutput", __base__=JudgeOutputBase, scores=(scores, ...))  # type: ignore[call-overload]


def judge_output_model() -> type[JudgeOutputBase]:
    """The judge's answer model for the criteria registered now (one score per judged criterion)."""
    return _output_model(tuple(criterion.name for criterion in criteria(judged=True)))


JudgeOutput = judge_output_model()
"""The answer model for the default criteria."""


class Verdict(BaseModel):
    """The final, capped reward of an episode and the evidence behind it."""

    reward: float = Field(ge=-1, le=1)
    mode: Literal["ternary", "graded", "checks"]
    strictness: int
    criteria: list[str] = Field(description="Criteria active at this strictness.")
    judge_verdict: int | None = Field(description="The LM's own verdict, before caps (None if not asked).")
    scores: dict[str, int] = Field(default_factory=dict)
    rationale: str = ""
    caps: list[Cap] = Field(default_factory=list, description="Active caps that applied.")
    checks: CheckReport
    truncated: bool = False

    @property
    def success(self) -> bool:
        """Success for the curriculum: reward > 0."""
        return self.reward > 0


def combine(output: JudgeOutputBase, checks: CheckReport, *, strictness: int, mode: str, truncated: bool) -> Verdict:
    """Apply the caps to the LM's verdict; pure, so the reward table is testable without a server."""
    active = [criterion for criterion in criteria(strictness, judged=True)]
    names = [criterion.name for criterion in active]
    caps = checks.caps(strictness)
    ceiling = min([cap.cap for cap in caps] + ([0] if truncated else []) + [1])
    scores = output.scores.model_dump()
    if mode == "graded":
        weights = {criterion.name: criterion.weight for criterion in active if criterion.name in scores}
        total = sum(weights.values())
        raw = sum(scores[name] * weight for name, weight in weights.items()) / total if total else 0.0
        if strictness >= 5:
            raw -= 0.1 * checks.extra_calls
        reward = max(-1.0, min(float(ceiling), raw))
    else:
        reward = float(min(output.verdict, ceiling))
    return Verdict(
        reward=round(reward, 6),
        mode=mode,  # type: ignore[arg-type]
        strictness=strictness,
        criteria=names,
        judge_verdict=output.verdict,
        scores=scores,
        rationale=output.rationale,
        caps=caps,
        checks=checks,
        truncated=truncated,
    )


CHECKS_STRICTNESS = 4
"""The checks that pay in ``reward_mode="checks"``: every one up to "no redundancy" (efficiency is graded-only)."""


def checks_only(checks: CheckReport, *, strictness: int, truncated: bool) -> Verdict:
    """The reward of the deterministic checks alone: 1 capped by every check up to :data:`CHECKS_STRICTNESS`.

    A step or token budget running out does not cap it: the checks say whether the work was done, and the
    floor and the missing-call cap already keep an agent that did not do it at or below 0.
    """
    caps = checks.caps(max(strictness, CHECKS_STRICTNESS))
    ceiling = min([cap.cap for cap in caps] + [1])
    return Verdict(
        reward=float(ceiling),
        mode="checks",
        strictness=strictness,
        criteria=[],
        judge_verdict=None,
        rationale="deterministic checks only (reward_mode='checks'): the judge was not asked",
        caps=caps,
        checks=checks,
        truncated=truncated,
    )


class Judge:
    """Scores a finished trajectory."""

    def __init__(self, client: LLMClient, *, mode: str = "ternary", prompt_dir: str | None = None) -> None:
        self.client = client
        self.mode = mode
        self.prompt_dir = prompt_dir

    async def score(
        self, task: Task, transcript: list[str], checks: CheckReport, *, truncated: bool, seed: int, usage: Usage
    ) -> Verdict:
        """Ask the LM for its verdict and cap it by the checks (in ``checks`` mode: the checks alone, no LM)."""
        strictness = task.aspects.strictness
        if self.mode == "checks":
            return checks_only(checks, strictness=strictness, truncated=truncated)
        context: dict[str, Any] = {
            "task": task.model_dump(mode="json"),
            "transcript": transcript,
            "criteria": [criterion.name for criterion in criteria(strictness, judged=True)],
            "scored": [{"name": c.name, "description": c.description} for c in criteria(judged=True)],
            "checks": checks.summary(),
        }
        messages = render_messages("judge.j2", self.prompt_dir, **context)
        output = await self.client.structured(messages, judge_output_model(), seed=seed, usage=usage)
        return combine(output, checks, strictness=strictness, mode=self.mode, truncated=truncated)
