"""``trustee audit``: the command-line front of the suite (``cli.py`` only registers it)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run", "view_report"]

_ROLES = ("task_generator", "user", "tool", "judge")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``audit`` on the ``trustee`` subparsers."""
    audit = sub.add_parser(
        "audit",
        help="measure how far to trust each simulated role on your model (JSON + Markdown report)",
        description="Run the versioned probe suite against the configured simulators and write a report; "
        "or, with --compare, print two reports side by side.",
    )
    audit.add_argument("--base-url", help="OpenAI-compatible endpoint for every role (default: the embedded server)")
    audit.add_argument("--model", help="model name to send (default: ask the server)")
    audit.add_argument("--api-key", default=None, help="API key for the endpoint (default: EMPTY)")
    for role in _ROLES:
        flag = role.replace("_", "-")
        audit.add_argument(f"--{flag}-base-url", help=f"endpoint for the {role} role only")
        audit.add_argument(f"--{flag}-model", help=f"model for the {role} role only")
    audit.add_argument("--quick", action="store_true", help="the smallest run that touches every probe")
    audit.add_argument("--sections", nargs="+", choices=["judge", "tool", "user", "task_generator", "signal"])
    audit.add_argument("--judge-set", help="labelled trajectories (JSONL; default: the bundled set)")
    audit.add_argument("--judge-per-class", type=int, help="labelled items per class (default 4; quick 1)")
    audit.add_argument("--votes", type=int, help="judge samples for the majority vote (default 3)")
    audit.add_argument("--tasks", type=int, help="tasks asked of the task generator (default 4; quick 1)")
    audit.add_argument("--signal-seeds", type=int, help="seeds of the reference-agent table (default 2; quick 1)")
    audit.add_argument("--cache", help="record/replay cache (default: trustee_runs/audit-cache.sqlite)")
    audit.add_argument("--no-cache", action="store_true", help="ask the model for every answer")
    audit.add_argument("--out", help="report path without extension (default: trustee_runs/audit-<time>)")
    audit.add_argument(
        "--compare", nargs=2, metavar=("A.json", "B.json"), help="print two reports side by side and exit"
    )
    audit.add_argument(
        "--html",
        metavar="OUT",
        help="also write the report (or, with --compare, both side by side) as a self-contained HTML page",
    )
    audit.set_defaults(func=run)
    return audit


def run(args: argparse.Namespace) -> int:
    """The ``audit`` command."""
    from trustee_env.audit.report import compare, load_report, render_markdown
    from trustee_env.audit.suite import AuditOptions, run_audit

    if args.compare:
        first, second = (load_report(path) for path in args.compare)
        print(compare(first, second))
        if args.html:
            labels = [f"{tag}: {Path(path).name}" for tag, path in zip("AB", args.compare, strict=True)]
            _write_page([first, second], args.html, labels)
        return 0
    sizes = {
        "sections": args.sections,
        "judge_set": args.judge_set,
        "judge_per_class": args.judge_per_class,
        "votes": args.votes,
        "tasks": args.tasks,
        "signal_seeds": args.signal_seeds,
    }
    sizes = {key: value for key, value in sizes.items() if value is not None}
    options = AuditOptions.quick_options(**sizes) if args.quick else AuditOptions(**sizes)
    config: dict[str, Any] = {}
    for key in ("base_url", "model", "api_key"):
        if getattr(args, key):
            config[key] = getattr(args, key)
    for role in _ROLES:
        override = {
            key: getattr(args, f"{role}_{key}") for key in ("base_url", "model") if getattr(args, f"{role}_{key}")
        }
        if override:
            config[role] = override
    if not args.no_cache:
        config.update(cache_mode="read_write", cache_path=args.cache or "trustee_runs/audit-cache.sqlite")
    if not args.base_url:
        print("trustee audit: no --base-url given, using the embedded local model server", file=sys.stderr)
    started = time.perf_counter()

    def progress(name: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {name} ...", file=sys.stderr, flush=True)

    report = run_audit(options=options, progress=progress, **config)
    out = Path(args.out or f"trustee_runs/audit-{time.strftime('%Y%m%d-%H%M%S')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    json_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    print(render_markdown(report))
    print(f"report written to {json_path} and {md_path}", file=sys.stderr)
    if args.html:
        _write_page([report], args.html)
    return 0


def _write_page(reports: list[Any], out: str, labels: list[str] | None = None, *, stream: Any = None) -> None:
    from trustee_env.viewer_html import write_audit_html

    page = write_audit_html(reports, out, labels=labels)
    print(f"wrote {page}: open it in a browser", file=stream or sys.stderr)


def view_report(path: Path, html_out: str | None) -> int:
    """``trustee view REPORT.json``: the Markdown, or with ``--html OUT`` the HTML page of an audit report."""
    from trustee_env.audit.report import load_report, render_markdown

    report = load_report(path)
    if html_out:
        _write_page([report], html_out, stream=sys.stdout)
    else:
        print(render_markdown(report))
    return 0
