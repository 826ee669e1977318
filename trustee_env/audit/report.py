"""The audit report: one JSON document, its Markdown rendering, and a side-by-side comparison of two.

``headline`` is a flat map of the figures that matter most, under stable dotted names, so two reports
(two models, two prompt sets, before and after a change) compare line by line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from trustee_env.errors import ConfigError

__all__ = ["AuditReport", "Mitigation", "compare", "headline", "is_audit_report", "load_report", "render_markdown"]


class Mitigation(BaseModel):
    """One mitigation of one role, measured before and after on the same probes."""

    role: str
    mitigation: str
    metric: str
    before: float | None
    after: float | None
    better: str = Field(description="'higher' or 'lower': which direction is an improvement.")


class AuditReport(BaseModel):
    """Everything ``trustee audit`` measured, and the settings it measured them under."""

    suite_version: str
    trustee_version: str
    created: str
    quick: bool
    options: dict[str, Any]
    endpoints: dict[str, dict[str, Any]] = Field(description="Per role: base_url, model and sampling settings.")
    cache: dict[str, Any]
    sections: dict[str, Any]
    sim_faults: dict[str, dict[str, Any]]
    mitigations: list[Mitigation]
    headline: dict[str, float | None]
    elapsed_s: float
    notes: list[str] = Field(default_factory=list, description="How the run was made, in words (for published runs).")


def _get(data: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


HEADLINE: dict[str, str] = {
    "judge.accuracy": "judge.single.accuracy",
    "judge.kappa": "judge.single.kappa",
    "judge.success_kappa": "judge.single.success_kappa",
    "judge.capped_accuracy": "judge.single_capped.accuracy",
    "judge.capped_kappa": "judge.single_capped.kappa",
    "judge.majority_accuracy": "judge.majority.accuracy",
    "judge.majority_capped_accuracy": "judge.majority_capped.accuracy",
    "judge.sample_agreement": "judge.sample_agreement",
    "judge.caps_overruled_rate": "judge.caps_overruled_rate",
    "judge.position_changed_rate": "judge.bias.position.changed_rate",
    "judge.verbosity_shift_on_failures": "judge.bias.verbosity_on_failures.mean_shift",
    "tool.contradiction_rate": "tool.typed.contradiction_rate",
    "tool.write_applied_rate": "tool.typed.write_applied_rate",
    "tool.schema_violation_rate": "tool.typed.schema_violation_rate",
    "tool.repair_rate": "tool.typed.repair_rate",
    "tool.loose_contradiction_rate": "tool.loose.contradiction_rate",
    "user.intent_leak_rate": "user.intent_leak_rate",
    "user.facts_revealed_unprompted": "user.facts_revealed_unprompted",
    "user.fact_answer_wrong_rate": "user.fact_answer_wrong_rate",
    "user.persona_answer_wrong_rate": "user.persona_answer_wrong_rate",
    "user.premature_satisfied_raw": "user.premature_satisfied_raw",
    "user.gave_up_after_success_raw": "user.gave_up_after_success_raw",
    "task_generator.generated_rate": "task_generator.generated_rate",
    "task_generator.solvable_fraction": "task_generator.solvable_fraction",
    "task_generator.first_draft_pass_rate": "task_generator.first_draft_pass_rate",
    "task_generator.draft_pass_rate": "task_generator.draft_pass_rate",
    "task_generator.near_duplicate_rate": "task_generator.near_duplicate_rate",
    "signal.oracle_p_reward_1": "signal.agents.oracle.p_reward_1",
    "signal.null_p_reward_1": "signal.agents.null.p_reward_1",
    "signal.wrong_tool_p_reward_1": "signal.agents.wrong_tool.p_reward_1",
    "signal.wrong_argument_p_reward_1": "signal.agents.wrong_argument.p_reward_1",
    "signal.sim_fault_rate": "signal.sim_fault_rate",
}
"""Headline name -> where it sits in ``sections``."""


def headline(sections: dict[str, Any], sim_faults: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The flat figures of a report (None where a section did not run or had nothing to measure)."""
    out: dict[str, float | None] = {name: _get(sections, path) for name, path in HEADLINE.items()}
    for role, entry in sim_faults.items():
        out[f"sim_fault_rate.{role}"] = entry.get("sim_fault_rate")
    return out


REPORT_MAX_BYTES = 64 << 20
"""Larger files are not taken for a report (a report of the full suite is well under 1 MB)."""


def is_audit_report(path: str | Path) -> bool:
    """Does ``path`` hold one JSON document with an audit report's marks (not a JSONL of trajectories)?"""
    try:
        if Path(path).stat().st_size > REPORT_MAX_BYTES:  # a run's JSONL can be gigabytes: never read it whole
            return False
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a JSONL of several lines is not one JSON document
        return False
    return isinstance(data, dict) and {"suite_version", "headline", "sections"} <= data.keys()


def load_report(path: str | Path) -> AuditReport:
    """Read a report written by ``trustee audit`` (ConfigError if it is not one)."""
    try:
        return AuditReport.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not a trustee audit report: {str(err)[:300]}") from None


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"
    return str(value)


def _model_line(report: AuditReport) -> str:
    models = {entry.get("model") for entry in report.endpoints.values()}
    return ", ".join(sorted(str(m) for m in models))


def render_markdown(report: AuditReport) -> str:
    """The report as Markdown: settings, headline figures by role, mitigations, sim faults, judge detail."""
    lines = [
        f"# Trustee audit: {_model_line(report)}",
        "",
        f"Suite version {report.suite_version} (trustee-env {report.trustee_version}), {report.created}, "
        f"{'quick' if report.quick else 'full'} run, {report.elapsed_s:.0f} s. "
        f"Cache: {report.cache.get('mode')} ({report.cache.get('entries_before')} entries before, "
        f"{report.cache.get('entries_after')} after).",
        "",
        *[f"> {note}" for note in report.notes],
        *([""] if report.notes else []),
        "| role | endpoint | model | temperature | top_p | max_tokens |",
        "|---|---|---|---|---|---|",
    ]
    for role, entry in report.endpoints.items():
        lines.append(
            f"| {role} | {entry.get('base_url')} | {entry.get('model')} | {entry.get('temperature')} | "
            f"{entry.get('top_p')} | {entry.get('max_tokens')} |"
        )
    lines += ["", "## Headline figures", "", "| figure | value |", "|---|---|"]
    lines += [f"| `{name}` | {_fmt(value)} |" for name, value in report.headline.items()]
    lines += [
        "",
        "## Mitigations, before and after",
        "",
        "| role | mitigation | metric | before | after | better |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {m.role} | {m.mitigation} | {m.metric} | {_fmt(m.before)} | {_fmt(m.after)} | {m.better} |"
        for m in report.mitigations
    ]
    lines += ["", "## Sim faults per role", "", "| role | LM calls | sim faults | rate | repairs | cache hits |"]
    lines.append("|---|---|---|---|---|---|")
    for role, entry in report.sim_faults.items():
        lines.append(
            f"| {role} | {entry.get('calls')} | {entry.get('sim_faults')} | {_fmt(entry.get('sim_fault_rate'))} | "
            f"{entry.get('repairs')} | {entry.get('cache_hits')} |"
        )
    judge = report.sections.get("judge")
    if judge:
        lines += _judge_markdown(judge)
    lines += ["", "Raw figures of every section: the JSON report.", ""]
    return "\n".join(lines)


def _judge_markdown(judge: dict[str, Any]) -> list[str]:
    lines = ["", "## Judge on the labelled set", ""]
    confusion = judge["single"]["confusion"]
    labels = confusion["labels"]
    lines.append("Confusion (rows: deserved verdict, columns: the judge's own verdict):")
    lines += ["", "| deserved \\ judged | " + " | ".join(str(x) for x in labels) + " |"]
    lines.append("|---|" + "---|" * len(labels))
    for label, row in zip(labels, confusion["matrix"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(x) for x in row) + " |")
    lines += ["", "| class | deserved | n | judge's verdicts | accuracy | after caps |", "|---|---|---|---|---|---|"]
    for kind, entry in judge.get("by_class", {}).items():
        verdicts = ", ".join(f"{k}: {v}" for k, v in sorted(entry["verdicts"].items()))
        lines.append(
            f"| {kind} | {entry['label']} | {entry['n']} | {verdicts} | {_fmt(entry['accuracy'])} | "
            f"{_fmt(entry['capped_accuracy'])} |"
        )
    return lines


def compare(a: AuditReport, b: AuditReport) -> str:
    """Two reports side by side (Markdown table of every headline figure and mitigation)."""
    if a.suite_version != b.suite_version:
        note = f"\nNote: suite versions differ ({a.suite_version} vs {b.suite_version}); figures may not compare.\n"
    else:
        note = ""
    lines = [
        f"| figure | A: {_model_line(a)} | B: {_model_line(b)} |",
        "|---|---|---|",
        f"| suite version | {a.suite_version} | {b.suite_version} |",
        f"| run | {'quick' if a.quick else 'full'} | {'quick' if b.quick else 'full'} |",
    ]
    for name in dict.fromkeys([*a.headline, *b.headline]):
        lines.append(f"| `{name}` | {_fmt(a.headline.get(name))} | {_fmt(b.headline.get(name))} |")
    after_b = {(m.role, m.mitigation, m.metric): m for m in b.mitigations}
    for m in a.mitigations:
        other = after_b.get((m.role, m.mitigation, m.metric))
        lines.append(
            f"| {m.role}: {m.mitigation} ({m.metric}, before → after) | {_fmt(m.before)} → {_fmt(m.after)} | "
            f"{_fmt(other.before) if other else '–'} → {_fmt(other.after) if other else '–'} |"
        )
    return "\n".join(lines) + "\n" + note
