"""Plot a curriculum's history: difficulty D and each aspect's level against the training step.

The history is the JSON Lines file written by ``curriculum.write_history(path)`` (one entry per
``update``). With matplotlib installed (``pip install matplotlib``; not a Trustee dependency)
this saves a PNG; without it, it prints a text table.

Usage:
    python examples/plot_curriculum.py curriculum_history.jsonl [-o curriculum.png]
    python examples/plot_curriculum.py --demo          # simulate a history first, then plot it
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trustee_env.difficulty import ASPECT_LEVELS


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a history JSONL file, in order."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def demo_history(path: Path, rule: str = "paper", steps: int = 60) -> None:
    """Simulate a policy that improves over time under a curriculum, and write its history."""
    import numpy as np

    from trustee_env.curriculum import make_curriculum

    curriculum = make_curriculum(rule)
    rng = np.random.default_rng(0)
    for step in range(steps):
        skill = 0.3 + step / steps  # the policy gets better as training goes on
        for _ in range(128):  # 16 tasks x 8 rollouts per step, as in the paper
            _, aspects = curriculum.task_settings(rng)
            hardness = np.mean(
                [ASPECT_LEVELS[k].index(v) / (len(ASPECT_LEVELS[k]) - 1) for k, v in aspects.model_dump().items()]
            )
            reward = 1.0 if rng.random() < skill - hardness + 0.3 else -1.0
            curriculum.observe(reward, aspects.model_dump())
        curriculum.update()
    curriculum.write_history(path)


def print_table(history: list[dict[str, Any]]) -> None:
    """The history as a text table."""
    names = list(ASPECT_LEVELS)
    print(f"{'step':>5} {'D':>6} {'reward':>7} {'success':>7}  " + " ".join(f"{n[:10]:>10}" for n in names))
    for entry in history:
        levels = " ".join(f"{entry['levels'].get(n, ''):>10}" for n in names)
        print(
            f"{entry['step']:>5} {entry['difficulty']:>6.1f} {entry['mean_reward']:>7.2f} "
            f"{entry.get('success_rate', float('nan')):>7.2f}  {levels}"
        )


def plot(history: list[dict[str, Any]], out: Path) -> bool:
    """Save D, mean reward and the aspects' levels against step as a PNG; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    steps = [entry["step"] for entry in history]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 7))
    top.plot(steps, [entry["difficulty"] for entry in history], label="difficulty D", color="black")
    top.set_ylabel("D")
    top.set_ylim(0, 101)
    reward_axis = top.twinx()
    reward_axis.plot(steps, [entry["mean_reward"] for entry in history], label="mean reward", alpha=0.5)
    reward_axis.set_ylabel("mean reward")
    reward_axis.set_ylim(-1.05, 1.05)
    top.legend(loc="upper left")
    reward_axis.legend(loc="lower right")
    for name, levels in ASPECT_LEVELS.items():  # normalised, so aspects with 2 and 10 levels share an axis
        bottom.plot(steps, [entry["levels"][name] / (len(levels) - 1) for entry in history], label=name)
    bottom.set_ylabel("level (0 easiest, 1 hardest)")
    bottom.set_xlabel("training step")
    bottom.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("history", nargs="?", help="history JSONL written by curriculum.write_history()")
    parser.add_argument("-o", "--out", default="curriculum.png", help="PNG to write (default: curriculum.png)")
    parser.add_argument("--demo", choices=["paper", "band"], nargs="?", const="paper", help="simulate a history")
    args = parser.parse_args(argv)
    if args.demo:
        args.history = args.history or "curriculum_history.jsonl"
        demo_history(Path(args.history), rule=args.demo)
    if not args.history:
        parser.error("give a history JSONL file, or --demo")
    history = read_history(args.history)
    if not history:
        print(f"{args.history}: no history entries (call curriculum.update() once per training step)", file=sys.stderr)
        return 1
    if plot(history, Path(args.out)):
        print(f"wrote {args.out} ({len(history)} steps)")
    else:
        print("matplotlib is not installed (pip install matplotlib); the history as a table:\n")
        print_table(history)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
