"""The audit suite: every role's probes on the configured simulators, one report.

The suite is versioned (``SUITE_VERSION``): the probes, their data and how figures are computed are fixed
for a version, so two reports of one version compare across models. Bump it when any of them changes.

Cheap by design: small default sizes, ``quick`` sizes for CI, and the record/replay cache (every LM answer
is stored under its exact request, so a rerun of the same suite on the same model costs nothing and a
stopped run resumes).
"""

from __future__ import annotations

import asyncio
import datetime
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from trustee_env import __version__
from trustee_env.audit.context import AuditContext
from trustee_env.audit.judge import judge_section
from trustee_env.audit.judge_set import load_judge_set, stratified
from trustee_env.audit.report import AuditReport, Mitigation, headline
from trustee_env.audit.signal import gate_report, report, run_all
from trustee_env.audit.tasks import task_section
from trustee_env.audit.tools import tool_section
from trustee_env.audit.user import user_section
from trustee_env.catalog import Catalog
from trustee_env.config import TrusteeConfig
from trustee_env.runtime import build_roles, open_cache, resolve_catalog, resolve_config
from trustee_env.schemas import Role

__all__ = ["SECTIONS", "SUITE_VERSION", "AuditOptions", "arun_audit", "run_audit"]

SUITE_VERSION = "1"
SECTIONS = ("judge", "tool", "user", "task_generator", "signal")
Section = Literal["judge", "tool", "user", "task_generator", "signal"]


class AuditOptions(BaseModel):
    """Sizes and choices of one audit run (the defaults are the full suite; :meth:`quick` the CI one)."""

    sections: list[Section] = Field(default_factory=lambda: list(SECTIONS))
    judge_set: str | None = Field(default=None, description="Labelled set (JSONL); None: the bundled one.")
    judge_per_class: int | None = Field(default=4, ge=1, description="Items per class (None: every item).")
    votes: int = Field(default=3, ge=0, description="Judge samples for the majority-vote mitigation.")
    vote_temperature: float = Field(default=0.7, ge=0, le=2)
    bias_items: int = Field(default=3, ge=0, description="Items per bias probe.")
    tool_rounds: int = Field(default=1, ge=1)
    user_tasks: int | None = Field(default=None, ge=1, description="Probe tasks for the user (None: all).")
    tasks: int = Field(default=4, ge=1, description="Tasks the task generator is asked for.")
    task_difficulty: float = Field(default=30.0, ge=1, le=100)
    signal_seeds: int = Field(default=2, ge=1)
    signal_agents: list[str] = Field(default_factory=lambda: ["oracle", "null", "wrong_tool", "wrong_argument"])
    signal_difficulty: float = Field(default=10.0, ge=1, le=100)
    signal_max_steps: int = Field(default=4, ge=1)
    quick: bool = False

    @classmethod
    def quick_options(cls, **overrides: Any) -> AuditOptions:
        """The smallest run that still touches every probe (for CI and a first look)."""
        values: dict[str, Any] = {
            "judge_per_class": 1,
            "votes": 3,
            "bias_items": 1,
            "user_tasks": 1,
            "tasks": 1,
            "signal_seeds": 1,
            "signal_agents": ["oracle", "null"],
            "signal_max_steps": 3,
            "quick": True,
        }
        values.update(overrides)
        return cls(**values)


def _endpoints(config: TrusteeConfig) -> dict[str, dict[str, Any]]:
    from trustee_env.serve.local import server_answers

    out: dict[str, dict[str, Any]] = {}
    for role in (Role.TASK_GENERATOR, Role.USER, Role.TOOL, Role.JUDGE):
        endpoint = config.endpoint(role)
        urls = [endpoint.base_url] if isinstance(endpoint.base_url, str) else list(endpoint.base_url or [])
        model = endpoint.model or (server_answers(urls[0]) if urls else None)
        out[role.value] = {
            "base_url": endpoint.base_url,
            "model": model,
            "temperature": endpoint.temperature,
            "top_p": endpoint.top_p,
            "max_tokens": endpoint.max_tokens,
            "max_repairs": endpoint.max_repairs,
            "response_format": endpoint.response_format,
        }
    return out


def _mitigations(sections: dict[str, Any]) -> list[Mitigation]:
    out: list[Mitigation] = []
    judge = sections.get("judge")
    if judge:
        out.append(
            Mitigation(
                role="judge",
                mitigation="deterministic caps on the verdict",
                metric="accuracy vs label",
                before=judge["single"]["accuracy"],
                after=judge["single_capped"]["accuracy"],
                better="higher",
            )
        )
        if judge.get("majority"):
            out.append(
                Mitigation(
                    role="judge",
                    mitigation=f"majority of {judge['votes']} samples (T={judge['vote_temperature']})",
                    metric="accuracy vs label",
                    before=judge["single"]["accuracy"],
                    after=judge["majority"]["accuracy"],
                    better="higher",
                )
            )
    tool = sections.get("tool")
    if tool:
        for metric, better in (("contradiction_rate", "lower"), ("write_applied_rate", "higher")):
            out.append(
                Mitigation(
                    role="tool",
                    mitigation="typed result schemas (vs {'type': 'object'})",
                    metric=metric,
                    before=tool["loose"][metric],
                    after=tool["typed"][metric],
                    better=better,
                )
            )
    user = sections.get("user")
    if user:
        for metric in ("premature_satisfied", "gave_up_after_success", "not_done_after_success"):
            out.append(
                Mitigation(
                    role="user",
                    mitigation="goal gate (progress hint + code bound)",
                    metric=metric,
                    before=user[f"{metric}_raw"],
                    after=user[f"{metric}_gated"],
                    better="lower",
                )
            )
    tasks = sections.get("task_generator")
    if tasks:
        out.append(
            Mitigation(
                role="task_generator",
                mitigation="gate repairs (code, re-ask, regenerate)",
                metric="usable task rate",
                before=tasks["draft_pass_rate"],
                after=tasks["generated_rate"],
                better="higher",
            )
        )
    return out


async def _signal(ctx: AuditContext, options: AuditOptions, workdir: Path) -> dict[str, Any]:
    env_options: dict[str, Any] = {
        "config": ctx.config.model_copy(
            update={
                # ``is not None``: an empty cache is falsy (it has a length), and still the cache to record in.
                # The audit's own mode: a replay-only audit must not ask a server here either.
                "cache_path": str(ctx.cache.path) if ctx.cache is not None else None,
                "cache_mode": ctx.config.cache_mode if ctx.cache is not None else "off",
                "trajectory_path": str(workdir / "signal-trajectories.jsonl"),
                "max_steps": options.signal_max_steps,
            }
        ),
        "catalog": ctx.catalog,
    }
    gate: dict[str, Any] = {}
    jobs = [(options.signal_difficulty, seed) for seed in range(options.signal_seeds)]
    per_agent = await run_all(options.signal_agents, env_options, jobs, gate, usage=ctx.usage)
    for rows in per_agent.values():
        for row in rows:
            if row.get("sim_fault"):
                role = row["sim_fault"]["role"]
                ctx.faults[role] += 1
                ctx.fault_reasons[f"{role}: {row['sim_fault']['reason']}"] += 1
    out = report(per_agent, [options.signal_difficulty])
    out["task_gate"] = gate_report(gate)
    out["seeds"] = options.signal_seeds
    return out


async def arun_audit(
    config: TrusteeConfig | None = None,
    options: AuditOptions | None = None,
    *,
    catalog: Catalog | str | None = None,
    workdir: str | Path | None = None,
    progress: Any = None,
    **kwargs: Any,
) -> AuditReport:
    """Run the suite against the configured simulators (``kwargs``: any config field) and return the report.

    ``progress``: called with each section's name as it starts (e.g. ``print``).
    """
    options = options or AuditOptions()
    cfg = resolve_config(config, **kwargs)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="trustee-audit-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = open_cache(cfg)
    entries_before = len(cache) if cache is not None else 0
    ctx = AuditContext(config=cfg, roles=build_roles(cfg, cache), catalog=resolve_catalog(catalog, cfg), cache=cache)
    started = time.perf_counter()
    sections: dict[str, Any] = {}
    for name in options.sections:
        if progress:
            progress(name)
        section_started = time.perf_counter()
        if name == "judge":
            items = stratified(load_judge_set(options.judge_set), options.judge_per_class)
            sections[name] = await judge_section(
                ctx,
                items,
                votes=options.votes,
                vote_temperature=options.vote_temperature,
                bias_items=options.bias_items,
            )
        elif name == "tool":
            sections[name] = await tool_section(ctx, rounds=options.tool_rounds)
        elif name == "user":
            sections[name] = await user_section(ctx, tasks=options.user_tasks)
        elif name == "task_generator":
            sections[name] = await task_section(ctx, count=options.tasks, difficulty=options.task_difficulty)
        elif name == "signal":
            sections[name] = await _signal(ctx, options, work)
        sections[name]["elapsed_s"] = round(time.perf_counter() - section_started, 1)
    faults = ctx.fault_table()
    result = AuditReport(
        suite_version=SUITE_VERSION,
        trustee_version=__version__,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        quick=options.quick,
        options=options.model_dump(mode="json"),
        endpoints=_endpoints(cfg),
        cache={
            "mode": cfg.cache_mode,
            "path": cfg.cache_path,
            "entries_before": entries_before,
            "entries_after": len(cache) if cache is not None else 0,
            "hits_by_role": {role: entry["cache_hits"] for role, entry in faults.items()},
        },
        sections=sections,
        sim_faults=faults,
        mitigations=_mitigations(sections),
        headline=headline(sections, faults),
        elapsed_s=round(time.perf_counter() - started, 1),
    )
    if cache is not None:
        cache.close()
    return result


def run_audit(config: TrusteeConfig | None = None, options: AuditOptions | None = None, **kwargs: Any) -> AuditReport:
    """Synchronous :func:`arun_audit` (for scripts and the command line)."""
    return asyncio.run(arun_audit(config, options, **kwargs))
