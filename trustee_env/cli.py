"""``trustee``: serve a local model, run a demo, view trajectories.

Every failure Trustee knows about prints one line that says what failed and what to run,
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from trustee_env.errors import ConfigError, TrusteeError

__all__ = ["main"]


def _add_endpoint_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="use this OpenAI-compatible endpoint instead of the embedded server")
    parser.add_argument("--model", help="model name to send (default: ask the server)")
    parser.add_argument("--api-key", default=None, help="API key for the endpoint (default: EMPTY)")


def _serve(args: argparse.Namespace) -> int:
    from trustee_env.serve.local import LocalServer, ServerSpec, build_command, pick_engine, server_answers

    if args.base_url:
        model = server_answers(args.base_url)
        if model is None:
            raise TrusteeError(f"{args.base_url} does not answer /models; is the server running?")
        print(f"endpoint {args.base_url} is up (model {model!r})")
        return 0
    engine = pick_engine(args.engine) if not args.print_command or args.engine == "auto" else args.engine
    spec = ServerSpec(
        engine=engine, model=args.model, host=args.host, port=args.port or 0, parallel=args.parallel, n_ctx=args.n_ctx
    )
    if args.threads:
        spec.threads = args.threads
    if args.print_command:
        if spec.port == 0:
            spec.port = 8000
        print(" ".join(build_command(spec)))
        return 0
    server = LocalServer(spec)
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"starting {engine} ({' '.join(build_command(spec))[:200]}) ...", flush=True)
    server.start()
    print(f"serving {server.model_name!r} at {server.base_url} (pid {server.pid}, ready in {server.startup_s:.1f}s)")
    print(f"point Trustee at it:  TRUSTEE_BASE_URL={server.base_url}   Ctrl-C to stop", flush=True)
    try:
        while not stop["now"]:
            if server.process is None or server.process.poll() is not None:
                raise TrusteeError(f"the server exited unexpectedly; log: {server.log_path}\n{server.log_tail()}")
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
    from trustee_env.trajectory import read_trajectories
    from trustee_env.viewer import render_trajectory

    path = Path(args.path)
    if not path.exists():
        raise TrusteeError(f"no such trajectory file: {path}")
    records = list(read_trajectories(path))
    if not records:
        raise TrusteeError(f"{path} holds no trajectories")
    if args.html:
        from trustee_env.viewer_html import write_html

        out = write_html(records, args.html, source=path.name)
        print(f"wrote {out} ({len(records)} episodes): open it in a browser")
        return 0
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


def build_parser() -> argparse.ArgumentParser:
    """The ``trustee`` argument parser."""
    parser = argparse.ArgumentParser(prog="trustee", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what Trustee does")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start a local OpenAI-compatible model server and wait")
    serve.add_argument("--engine", default="auto", choices=["auto", "llama-server", "llama-cpp-python", "vllm"])
    serve.add_argument("--model", help="GGUF path (llama.cpp) or HF model id (vLLM); default: bundled SmolLM2-135M")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="default: a free port")
    serve.add_argument("--parallel", type=int, default=1, help="server slots (llama-server, vLLM)")
    serve.add_argument("--n-ctx", type=int, default=4096)
    serve.add_argument("--threads", type=int, default=0)
    serve.add_argument("--print-command", action="store_true", help="print the server command and exit")
    serve.add_argument("--base-url", help="check an already-running endpoint instead of starting one")
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

    view = sub.add_parser("view", help="print recorded trajectories readably")
    view.add_argument("path")
    view.add_argument("--index", type=int, default=None, help="only this episode (0-based; -1 = last)")
    view.add_argument("--system", action="store_true", help="also show system prompts")
    view.add_argument("--summary", action="store_true")
    view.add_argument("--html", metavar="OUT", help="write a self-contained HTML viewer of every episode to OUT")
    view.set_defaults(func=_view)

    plot = sub.add_parser("plot", help="write PNG plots of a trajectory JSONL or a trainer log")
    plot.add_argument("path", help="trajectories JSONL (or a trainer log: one object per step)")
    plot.add_argument("--out", help="folder for the PNGs (default: <path stem>-plots beside the file)")
    plot.add_argument("--window", type=int, default=None, help="rolling-mean window in episodes (default: n/20)")
    plot.set_defaults(func=_plot)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trustee`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"trustee: configuration error: {err}", file=sys.stderr)
        return 2
    except TrusteeError as err:
        print(f"trustee: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("trustee: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
