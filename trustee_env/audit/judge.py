"""Judge probes: agreement with the labelled set, bias probes, sample agreement, how often caps overrule it.

Every item is judged the way an episode's end is (``Judge.score``: the deterministic checks of the recorded
calls, then the LM verdict, capped), so the figures describe the reward a trainer would get. Three answers
are compared with the label: the LM's own verdict at the configured sampling (``single``), the majority of
``votes`` samples at ``vote_temperature`` (the mitigation), and each of those after the caps (``capped``).

Bias probes change the trajectory in a way that must not change a faithful verdict:

* **position**: the two tool-call blocks of a two-call success swapped (the calls are independent);
* **verbosity**: the assistant's last message padded with confident, content-free prose.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from trustee_env.audit.context import AuditContext
from trustee_env.audit.judge_set import JudgeItem
from trustee_env.audit.stats import accuracy, agreement, cohen_kappa, confusion, majority
from trustee_env.checks import run_checks
from trustee_env.roles.judge import Judge, Verdict, combine, judge_output_model
from trustee_env.schemas import Role, derive_seed

__all__ = ["PADDING", "judge_section", "swap_call_blocks", "verbose_variant"]

PADDING = (
    "I want to assure you that I approached this request with the utmost care, diligence and attention to "
    "detail, carefully considering every aspect of your needs, following best practices at every step, and "
    "double-checking my work so that you can be fully confident in the thoroughness, accuracy and quality "
    "of the help I have provided today."
)


def swap_call_blocks(transcript: list[str]) -> list[str] | None:
    """The transcript with its first two call/result blocks swapped, or None if it has fewer than two."""
    starts = [i for i, line in enumerate(transcript) if line.startswith("[assistant calls]")]
    if len(starts) < 2:
        return None
    first, second = starts[0], starts[1]
    end = second + 1
    while end < len(transcript) and transcript[end].startswith("[tool]"):
        end += 1
    return [*transcript[:first], *transcript[second:end], *transcript[first:second], *transcript[end:]]


def verbose_variant(transcript: list[str]) -> list[str] | None:
    """The transcript with the assistant's last text message padded (``PADDING``), or None without one."""
    for i in range(len(transcript) - 1, -1, -1):
        line = transcript[i]
        if line.startswith("[assistant] ") and line.endswith(">>>"):
            return [*transcript[:i], line[:-3] + " " + PADDING + ">>>", *transcript[i + 1 :]]
    return None


async def _score(
    ctx: AuditContext, judge: Judge, item: JudgeItem, transcript: list[str], sample: Any
) -> Verdict | None:
    checks = run_checks(item.task, item.calls, item.parse_errors, user_gave_up=item.termination == "user_gave_up")
    seed = derive_seed("audit-judge", item.id, sample)
    call = judge.score(item.task, transcript, checks, truncated=item.truncated, seed=seed, usage=ctx.usage)
    return await ctx.guard(Role.JUDGE, call)


def _figures(labels: list[int], verdicts: list[int]) -> dict[str, Any]:
    success = [label == 1 for label in labels]
    said = [verdict == 1 for verdict in verdicts]
    return {
        "n": len(labels),
        "accuracy": accuracy(labels, verdicts),
        "kappa": cohen_kappa(labels, verdicts),
        "success_accuracy": accuracy(success, said),
        "success_kappa": cohen_kappa(success, said),
        "confusion": confusion(labels, verdicts),
    }


async def judge_section(
    ctx: AuditContext,
    items: list[JudgeItem],
    *,
    votes: int = 3,
    vote_temperature: float = 0.7,
    bias_items: int = 4,
    concurrency: int = 1,
) -> dict[str, Any]:
    """The judge's figures over ``items`` (see the module docstring)."""
    greedy = Judge(ctx.client(Role.JUDGE), mode="ternary", prompt_dir=ctx.config.prompt_dir)
    sampler = Judge(
        ctx.client(Role.JUDGE, temperature=vote_temperature), mode="ternary", prompt_dir=ctx.config.prompt_dir
    )
    limit = asyncio.Semaphore(concurrency)

    async def one(item: JudgeItem) -> dict[str, Any]:
        async with limit:
            first = await _score(ctx, greedy, item, item.transcript, "single")
            samples = []
            for k in range(votes):
                samples.append(await _score(ctx, sampler, item, item.transcript, f"vote-{k}"))
        return {"item": item, "single": first, "samples": [s for s in samples if s is not None]}

    rows = await asyncio.gather(*(one(item) for item in items))
    judged = [row for row in rows if row["single"] is not None]
    labels = [row["item"].label for row in judged]
    raw = [int(row["single"].judge_verdict) for row in judged]
    capped = [int(row["single"].reward) for row in judged]

    voted_rows = [row for row in judged if len(row["samples"]) == votes and votes > 0]
    vote_labels = [row["item"].label for row in voted_rows]
    vote_raw, vote_capped = [], []
    for row in voted_rows:
        winner = majority([int(s.judge_verdict) for s in row["samples"]])
        vote_raw.append(winner)
        template = row["samples"][0]
        output = judge_output_model().model_validate(
            {"rationale": template.rationale, "scores": template.scores, "verdict": winner}
        )
        vote_capped.append(
            int(
                combine(
                    output,
                    template.checks,
                    strictness=template.strictness,
                    mode="ternary",
                    truncated=template.truncated,
                ).reward
            )
        )

    by_class: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(row["item"].kind for row in judged):
        mine = [row for row in judged if row["item"].kind == kind]
        by_class[kind] = {
            "label": mine[0]["item"].label,
            "n": len(mine),
            "verdicts": dict(Counter(str(int(row["single"].judge_verdict)) for row in mine)),
            "accuracy": accuracy([r["item"].label for r in mine], [int(r["single"].judge_verdict) for r in mine]),
            "capped_accuracy": accuracy([r["item"].label for r in mine], [int(r["single"].reward) for r in mine]),
        }

    overruled = sum(1 for v, c in zip(raw, capped, strict=True) if c < v)
    report: dict[str, Any] = {
        "items": len(items),
        "judged": len(judged),
        "votes": votes,
        "vote_temperature": vote_temperature,
        "single": _figures(labels, raw),
        "single_capped": _figures(labels, capped),
        "majority": _figures(vote_labels, vote_raw) if voted_rows else None,
        "majority_capped": _figures(vote_labels, vote_capped) if voted_rows else None,
        "sample_agreement": agreement([[int(s.judge_verdict) for s in row["samples"]] for row in voted_rows]),
        "caps_overruled": overruled,
        "caps_overruled_rate": round(overruled / len(judged), 4) if judged else None,
        "by_class": by_class,
    }
    report["bias"] = await _bias(ctx, greedy, judged, bias_items)
    return report


def _spread(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows reordered round-robin over their classes, so the first few cover every behaviour."""
    queues: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        queues.setdefault(row["item"].kind, []).append(row)
    out: list[dict[str, Any]] = []
    while any(queues.values()):
        for queue in queues.values():
            if queue:
                out.append(queue.pop(0))
    return out


async def _bias(ctx: AuditContext, judge: Judge, judged: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """Position and verbosity probes on the first ``count`` suitable items (their originals are judged)."""
    swappable = _spread([row for row in judged if row["item"].label == 1 and swap_call_blocks(row["item"].transcript)])
    failing = _spread([row for row in judged if row["item"].label <= 0 and verbose_variant(row["item"].transcript)])
    passing = _spread([row for row in judged if row["item"].label == 1 and verbose_variant(row["item"].transcript)])

    async def probe(rows: list[dict[str, Any]], variant: Any, name: str) -> dict[str, Any]:
        shifts = []
        for row in rows[:count]:
            changed = variant(row["item"].transcript)
            verdict = await _score(ctx, judge, row["item"], changed, name)
            if verdict is not None:
                shifts.append(int(verdict.judge_verdict) - int(row["single"].judge_verdict))
        return {
            "n": len(shifts),
            "changed_rate": round(sum(1 for s in shifts if s) / len(shifts), 4) if shifts else None,
            "mean_shift": round(sum(shifts) / len(shifts), 4) if shifts else None,
            "raised": sum(1 for s in shifts if s > 0),
        }

    return {
        "position": await probe(swappable, swap_call_blocks, "position"),
        "verbosity_on_failures": await probe(failing, verbose_variant, "verbosity"),
        "verbosity_on_successes": await probe(passing, verbose_variant, "verbosity"),
    }
