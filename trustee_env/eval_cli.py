"""``trustee bank`` and ``trustee eval``: build held-out task banks and score policies on them.

``cli.py`` only registers these; the work is in :mod:`trustee_env.bank` and :mod:`trustee_env.evaluation`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    """Register ``bank`` and ``eval`` on the ``trustee`` subparsers."""
    bank = sub.add_parser(
        "bank",
        help="build, show or split a task bank (tasks generated once, stored as JSON, replayed exactly)",
        description="A task bank is a JSON file of generated tasks: a held-out set that never drifts, and the "
        "task source of the trainers. Replay one with env.reset(options={'task': ...}).",
    )
    actions = bank.add_subparsers(dest="bank_command", required=True, metavar="{build,show,split}")
    build = actions.add_parser("build", help="generate N tasks with the task generator and save them")
    build.add_argument("out", help="the bank file to write (JSON)")
    build.add_argument("-n", "--tasks", type=int, default=20, help="tasks to generate (default 20)")
    build.add_argument("--seed", type=int, default=0, help="seed of the tasks (default 0)")
    build.add_argument(
        "--difficulty", nargs="+", type=float, default=[1.0, 40.0], metavar="D",
        help="a LOW HIGH pair spread evenly over the tasks, or a list of difficulties cycled (default 1 40)",
    )  # fmt: skip
    build.add_argument("--concurrency", type=int, default=2, help="generations in flight (default 2)")
    build.add_argument("--catalog", help="tool catalog (default: the bundled 300 tools)")
    _endpoint(build)
    show = actions.add_parser("show", help="summarise a bank (tasks, difficulties, tools, categories)")
    show.add_argument("bank", help="the bank file")
    show.add_argument("--json", action="store_true", help="print the summary as JSON")
    split = actions.add_parser("split", help="split a bank into two disjoint banks (e.g. train / held-out)")
    split.add_argument("bank", help="the bank file")
    split.add_argument("first", help="where the first part goes")
    split.add_argument("second", help="where the rest goes")
    split.add_argument("--fraction", type=float, default=0.8, help="share of tasks in the first part (0.8)")
    split.add_argument("--seed", type=int, default=0)
    bank.set_defaults(func=_bank)

    evaluate = sub.add_parser(
        "eval",
        help="score a policy on a task bank: mean reward with a 95%% CI, per difficulty and criterion",
        description="Score a Hugging Face policy folder (--policy, sampled with transformers; needs the 'train' "
        "extra) or an OpenAI-compatible policy endpoint (--policy-base-url) on every task of a bank.",
    )
    evaluate.add_argument("--bank", required=True, help="the task bank (JSON) to score on")
    who = evaluate.add_mutually_exclusive_group()
    who.add_argument("--policy", help="a Hugging Face model folder ('bundled': SmolLM2-135M-Instruct)")
    who.add_argument("--policy-base-url", help="an OpenAI-compatible endpoint playing the policy")
    evaluate.add_argument("--policy-model", help="model name at the policy endpoint")
    evaluate.add_argument("--repeats", type=int, default=1, help="episodes per task (default 1)")
    evaluate.add_argument("--temperature", type=float, default=0.7, help="policy sampling temperature (0.7)")
    evaluate.add_argument("--max-steps", type=int, default=None, help="policy messages per episode")
    evaluate.add_argument(
        "--reward-mode", choices=["ternary", "graded", "checks"], default="ternary", help="how episodes are scored"
    )
    evaluate.add_argument("--tool-format", default="hermes", help="how the policy writes tool calls (hermes)")
    evaluate.add_argument("--concurrency", type=int, default=8, help="endpoint policies: episodes in flight")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--out", help="also write the report as JSON here")
    _endpoint(evaluate)
    evaluate.set_defaults(func=_eval)


def _endpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="simulator endpoint (default: the embedded local server)")
    parser.add_argument("--model", help="simulator model name (default: ask the server)")


def _simulator_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key) for key in ("base_url", "model") if getattr(args, key, None)}


def _bank(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from trustee_env.bank import TaskBank, build_bank

    console = Console(stderr=True)
    if args.bank_command == "show":
        summary = TaskBank.load(args.bank).summary()
        if args.json:
            print(json.dumps(summary, indent=1))
        else:
            for key, value in summary.items():
                print(f"{key:>20}: {value}")
        return 0
    if args.bank_command == "split":
        first, second = TaskBank.load(args.bank).split(args.fraction, seed=args.seed)
        first.save(args.first)
        second.save(args.second)
        print(f"{len(first)} tasks -> {args.first}; {len(second)} tasks -> {args.second}")
        return 0
    kwargs = _simulator_kwargs(args)
    if args.catalog:
        kwargs["catalog"] = args.catalog
    counter = TextColumn("{task.completed}/{task.total} {task.fields[faults]} faults")
    with Progress(TextColumn("[bold]tasks"), BarColumn(), counter, TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task("tasks", total=args.tasks, faults=0)

        def tick(task: Any) -> None:
            progress.update(bar, advance=1, faults=progress.tasks[0].fields["faults"] + (task is None))

        bank = build_bank(
            args.tasks, seed=args.seed, difficulties=args.difficulty, concurrency=args.concurrency, on_task=tick,
            **kwargs,
        )  # fmt: skip
    path = bank.save(args.out)
    print(f"{len(bank)} tasks ({bank.failed} generations failed) -> {path}   bank id {bank.bank_id}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from trustee_env.bank import TaskBank
    from trustee_env.evaluation import evaluate_endpoint, evaluate_hf

    bank = TaskBank.load(args.bank)
    env_kwargs: dict[str, Any] = {
        **_simulator_kwargs(args),
        "reward_mode": args.reward_mode,
        "tool_format": args.tool_format,
    }
    if args.max_steps:
        env_kwargs["max_steps"] = args.max_steps
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]episodes"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
        console=console,
    ) as progress:  # fmt: skip
        bar = progress.add_task("episodes", total=len(bank) * args.repeats)

        def tick() -> None:
            progress.advance(bar)

        if args.policy_base_url or not args.policy:
            policy: dict[str, Any] = {"temperature": args.temperature}
            if args.policy_base_url:
                policy["base_url"] = args.policy_base_url
            if args.policy_model:
                policy["model"] = args.policy_model
            report = evaluate_endpoint(
                bank, repeats=args.repeats, concurrency=args.concurrency, seed=args.seed, on_episode=tick,
                policy=policy, **env_kwargs,
            )  # fmt: skip
        else:
            path = None if args.policy == "bundled" else args.policy
            report = evaluate_hf(
                path, bank, repeats=args.repeats, temperature=args.temperature, seed=args.seed, on_episode=tick,
                **env_kwargs,
            )  # fmt: skip
    print(f"policy {report.policy} on bank {report.bank_id} ({report.tasks} tasks x {report.repeats})")
    print(f"  mean reward  {report.reward}")
    print(f"  success      {report.success}")
    print(f"  valid calls  {report.valid_call_rate:.3f}   sim faults {report.sim_faults}/{report.episodes}")
    for key, estimate in report.per_difficulty.items():
        print(f"  difficulty {key:>7}: {estimate}")
    print("  checks passed: " + ", ".join(f"{k} {v:.2f}" for k, v in report.per_criterion.items()))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report.model_dump_json(indent=1))
        print(f"report -> {args.out}", file=sys.stderr)
    return 0
