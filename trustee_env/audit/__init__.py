"""``trustee audit``: how far to trust each simulated role, measured on your own model and tools.

A fixed, versioned probe suite per role (judge, tool simulator, user simulator, task generator) plus the
reward-signal table of the reference agents, written as one JSON report and its Markdown; two reports
compare side by side. See docs/audit.md.
"""

from trustee_env.audit.report import AuditReport, Mitigation, compare, load_report, render_markdown
from trustee_env.audit.suite import SECTIONS, SUITE_VERSION, AuditOptions, arun_audit, run_audit

__all__ = [
    "SECTIONS",
    "SUITE_VERSION",
    "AuditOptions",
    "AuditReport",
    "Mitigation",
    "arun_audit",
    "compare",
    "load_report",
    "render_markdown",
    "run_audit",
]
