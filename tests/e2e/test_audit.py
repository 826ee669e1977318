"""A reduced ``trustee audit`` against the real llama.cpp server: every probe of three roles runs and reports.

The figures of a 135M simulator on a handful of probes say nothing statistical; what must hold is that each
probe reaches the model, each figure the issue asks for is present and in range, and nothing crashes on the
real model's answers (malformed, truncated or odd ones included: they become sim faults, counted per role).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trustee_env.audit import AuditOptions, render_markdown, run_audit
from trustee_env.serve.local import LocalServer

pytestmark = pytest.mark.real_server


def _unit(value: float | None) -> bool:
    return value is None or 0.0 <= value <= 1.0


def test_reduced_audit_on_the_real_model(llama_server: LocalServer, tmp_path: Path) -> None:
    options = AuditOptions.quick_options(
        sections=["judge", "user", "tool"], votes=1, bias_items=1, judge_per_class=1, user_tasks=1
    )
    report = run_audit(
        options=options,
        base_url=llama_server.base_url,
        model=llama_server.model_name,
        cache_mode="read_write",
        cache_path=str(tmp_path / "cache.sqlite"),
        workdir=tmp_path,
    )
    judge = report.sections["judge"]
    assert judge["items"] == 7
    assert judge["judged"] + report.sim_faults["judge"]["sim_faults"] >= 7
    for key in ("single", "single_capped"):
        figures = judge[key]
        if figures["n"]:
            assert _unit(figures["accuracy"])
            assert figures["kappa"] is None or -1.0 <= figures["kappa"] <= 1.0
            assert sum(map(sum, figures["confusion"]["matrix"])) == figures["n"]
    assert set(judge["bias"]) == {"position", "verbosity_on_failures", "verbosity_on_successes"}

    tool = report.sections["tool"]
    for variant in ("loose", "typed"):
        assert tool[variant]["calls"] >= 4
        assert _unit(tool[variant]["contradiction_rate"]) and _unit(tool[variant]["schema_violation_rate"])

    user = report.sections["user"]
    assert user["probes"] >= 1
    for key in ("intent_leak_rate", "fact_answer_wrong_rate", "premature_satisfied_raw", "gave_up_after_success_raw"):
        assert _unit(user[key]), key
    assert user["premature_satisfied_gated"] in (0.0, None)  # the gate is code: never satisfied while the goal is open

    for role in ("judge", "user", "tool"):
        assert report.sim_faults[role]["calls"] > 0, role
        assert _unit(report.sim_faults[role]["sim_fault_rate"])
    assert report.endpoints["judge"]["model"] == llama_server.model_name
    assert "## Mitigations, before and after" in render_markdown(report)
