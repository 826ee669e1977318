"""PNG plots of a run: the trainer's per-step log and a trajectory JSONL, with matplotlib's Agg backend.

Two inputs, one module, so ``trustee plot`` and the bundled trainer draw the same figures:

- a trainer log (JSONL, one object per step: ``step, reward_mean, reward_std, difficulty`` and optionally
  ``success_rate, sim_faults, dropped_groups, tokens, seconds``) -> :func:`plot_training_log`;
- a trajectory file (what every env appends, read with :func:`~trustee_env.trajectory.read_trajectories`)
  -> :func:`plot_run`: reward, difficulty and sim-fault rate against episode as a rolling mean with a
  ±1 std band, and per-criterion pass rates.

matplotlib is an optional extra (``pip install "trustee-env[plot]"``); it is imported only when a plot is
drawn, and always with the non-interactive Agg backend (no display, safe in threads of a trainer).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from trustee_env.errors import TrusteeError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from trustee_env.trajectory import Trajectory

__all__ = [
    "TRAINING_LOG_KEYS",
    "PlotInputError",
    "TrainingLogRow",
    "criterion_pass_rates",
    "is_training_log",
    "plot_run",
    "plot_training_log",
    "rolling_band",
]


class PlotInputError(TrusteeError, ValueError):
    """The file to plot is empty, unreadable, or not the shape the plot needs."""


class TrainingLogRow(BaseModel):
    """One step of the trainer's JSONL log (extra keys are allowed and ignored)."""

    model_config = ConfigDict(extra="allow")

    step: int
    reward_mean: float
    reward_std: float
    difficulty: float
    success_rate: float | None = None
    sim_faults: int | None = None
    dropped_groups: int | None = None
    tokens: int | None = None
    seconds: float | None = None


TRAINING_LOG_KEYS = frozenset({"step", "reward_mean", "reward_std", "difficulty"})
"""The keys that mark a JSONL line as a trainer log row rather than a trajectory."""


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or a clear error naming the extra to install."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PlotInputError('plots need matplotlib: pip install "trustee-env[plot]"') from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """Every JSON object line of ``path`` (blank and torn lines skipped), or a clear error."""
    if not path.is_file():
        raise PlotInputError(f"{path}: no such file")
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash, as read_trajectories skips it
            if isinstance(data, dict):
                rows.append(data)
    if not rows:
        raise PlotInputError(f"{path}: no JSON objects to plot (the file is empty or not JSONL)")
    return rows


def is_training_log(path: str | os.PathLike[str]) -> bool:
    """Whether the first JSON object of ``path`` has the trainer log's keys (else it is read as trajectories)."""
    return TRAINING_LOG_KEYS <= set(_json_lines(Path(path))[0])


def rolling_band(values: Sequence[float], window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing rolling mean and standard deviation (the first points use the episodes seen so far)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return x, x
    window = max(1, int(window))
    csum = np.concatenate([[0.0], np.cumsum(x)])
    csq = np.concatenate([[0.0], np.cumsum(x * x)])
    end = np.arange(1, x.size + 1)
    start = np.maximum(0, end - window)
    count = end - start
    mean = (csum[end] - csum[start]) / count
    var = np.maximum((csq[end] - csq[start]) / count - mean * mean, 0.0)
    return mean, np.sqrt(var)


def _default_window(n: int) -> int:
    """About 1/20 of the run, at least 1 and at most 500 episodes."""
    return max(1, min(500, n // 20))


def _save(fig: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    _pyplot().close(fig)
    return out


def plot_training_log(log_path: str | os.PathLike[str], out_png: str | os.PathLike[str]) -> Path:
    """Reward mean with a ±std band and difficulty (second axis) against training step; returns the PNG path.

    Raises:
        PlotInputError: the log is missing, empty, or a line lacks ``step, reward_mean, reward_std, difficulty``.
    """
    path = Path(log_path)
    rows: list[TrainingLogRow] = []
    for number, data in enumerate(_json_lines(path), start=1):
        try:
            rows.append(TrainingLogRow.model_validate(data))
        except ValidationError as exc:
            missing = sorted(TRAINING_LOG_KEYS - set(data))
            why = f"missing keys {missing}" if missing else exc.errors()[0]["msg"]
            raise PlotInputError(
                f"{path}: object {number} is not a trainer log row ({why}); "
                "expected keys step, reward_mean, reward_std, difficulty"
            ) from exc
    rows.sort(key=lambda row: row.step)
    steps = np.array([row.step for row in rows], dtype=float)
    mean = np.array([row.reward_mean for row in rows])
    std = np.array([row.reward_std for row in rows])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(steps, mean, color="tab:blue", marker="o" if len(rows) < 50 else None, ms=3, label="reward mean")
    ax.fill_between(steps, mean - std, mean + std, color="tab:blue", alpha=0.2, label="± std")
    if any(row.success_rate is not None for row in rows):
        success = [np.nan if row.success_rate is None else row.success_rate for row in rows]
        ax.plot(steps, success, color="tab:green", ls="--", lw=1, label="success rate")
    ax.set_xlabel("training step")
    ax.set_ylabel("reward")
    ax.set_ylim(-1.05, 1.05)
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(steps, [row.difficulty for row in rows], color="tab:orange", lw=1.5, label="difficulty")
    twin.set_ylabel("difficulty", color="tab:orange")
    twin.set_ylim(0, 101)
    handles = ax.get_legend_handles_labels()
    handles2 = twin.get_legend_handles_labels()
    ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], loc="lower right", fontsize=8)
    ax.set_title(f"training: {len(rows)} steps")
    fig.tight_layout()
    return _save(fig, Path(out_png))


def _read_run(path: Path) -> list[Trajectory]:
    from trustee_env.trajectory import read_trajectories

    rows = _json_lines(path)  # clear errors for a missing or empty file before the typed read
    if TRAINING_LOG_KEYS <= set(rows[0]):
        raise PlotInputError(f"{path}: this is a trainer log, not trajectories; use plot_training_log")
    try:
        records = list(read_trajectories(path))
    except ValidationError as exc:
        raise PlotInputError(f"{path}: not a trajectory file ({exc.errors()[0]['msg']})") from exc
    if not any("messages" in row or "task" in row or "reward" in row for row in rows):
        raise PlotInputError(f"{path}: no trajectory keys (reward, task, messages) in any line")
    return records


def _band_plot(ax: Any, values: Sequence[float], window: int, color: str, label: str) -> None:
    x = np.arange(1, len(values) + 1)
    mean, std = rolling_band(values, window)
    ax.scatter(x, values, s=6, color=color, alpha=0.4, lw=0)
    ax.plot(x, mean, color=color, lw=1.6, label=f"{label} (rolling mean, window {window})")
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, label="± std")
    ax.set_xlabel("episode")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def criterion_pass_rates(records: Sequence[Trajectory]) -> dict[str, dict[str, float | int]]:
    """Per criterion: the deterministic checks' pass rate and the judge's (score > 0 where it was active).

    Check pass = the criterion is not among the episode's violations (every level is checked at every
    difficulty); judge pass = its score is 1, over episodes where it was an active criterion.
    """
    from trustee_env.checks import criteria

    judged = [record.verdict for record in records if record.verdict is not None]
    names = [criterion.name for criterion in criteria()]
    for verdict in judged:
        for name in [*verdict.scores, *(cap.criterion for cap in verdict.checks.violations)]:
            if name not in names:
                names.append(name)
    out: dict[str, dict[str, float | int]] = {}
    for name in names:
        failed = sum(any(cap.criterion == name for cap in v.checks.violations) for v in judged)
        active = [v for v in judged if name in v.criteria and name in v.scores]
        row: dict[str, float | int] = {"episodes": len(judged), "judged": len(active)}
        row["check_pass"] = (len(judged) - failed) / len(judged) if judged else float("nan")
        row["judge_pass"] = sum(v.scores[name] > 0 for v in active) / len(active) if active else float("nan")
        out[name] = row
    return out


def plot_run(
    trajectories_jsonl: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, window: int | None = None
) -> list[Path]:
    """Reward, difficulty and sim-fault rate against episode, and per-criterion pass rates: four PNGs.

    Episodes are in file order (the order they ended). Sim-faulted episodes count in the fault rate
    and are left out of the reward curve (their reward is a label, not a score).

    Raises:
        PlotInputError: the file is missing, empty, a trainer log, or holds no trajectories.
    """
    path = Path(trajectories_jsonl)
    records = _read_run(path)
    out = Path(out_dir)
    n = len(records)
    win = window or _default_window(n)
    plt = _pyplot()
    written: list[Path] = []

    scored = [record.reward for record in records if record.sim_fault is None]
    fig, ax = plt.subplots(figsize=(8, 4))
    if scored:
        _band_plot(ax, scored, window or _default_window(len(scored)), "tab:blue", "reward")
    ax.set_xlabel("episode (sim faults left out)")
    ax.set_ylabel("reward")
    ax.set_ylim(-1.1, 1.1)
    ax.set_title(f"reward: {len(scored)} scored episodes, mean {np.mean(scored) if scored else float('nan'):.3f}")
    fig.tight_layout()
    written.append(_save(fig, out / "reward.png"))

    difficulty = [
        float(record.difficulty if record.difficulty is not None else (record.task.difficulty if record.task else 0))
        for record in records
    ]
    fig, ax = plt.subplots(figsize=(8, 4))
    _band_plot(ax, difficulty, win, "tab:orange", "difficulty")
    ax.set_ylabel("difficulty")
    ax.set_ylim(0, 101)
    ax.set_title(f"difficulty: {n} episodes")
    fig.tight_layout()
    written.append(_save(fig, out / "difficulty.png"))

    faults = [1.0 if record.sim_fault is not None else 0.0 for record in records]
    fig, ax = plt.subplots(figsize=(8, 4))
    _band_plot(ax, faults, win, "tab:red", "sim-fault rate")
    ax.set_ylabel("sim-fault rate")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"simulator faults: {int(sum(faults))} of {n} episodes")
    fig.tight_layout()
    written.append(_save(fig, out / "sim_fault_rate.png"))

    rates = criterion_pass_rates(records)
    names = list(rates)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(names) + 2), 4))
    xs = np.arange(len(names))
    check = [rates[name]["check_pass"] for name in names]
    judge = [rates[name]["judge_pass"] for name in names]
    ax.bar(xs - 0.2, check, width=0.4, color="tab:green", label="deterministic check passed")
    ax.bar(xs + 0.2, judge, width=0.4, color="tab:purple", label="judge score 1 (where active)")
    ax.set_xticks(xs, names, rotation=20, ha="right")
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("pass rate")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    judged_n = int(rates[names[0]]["episodes"]) if names else 0
    ax.set_title(f"per-criterion pass rates ({judged_n} episodes with a verdict)")
    fig.tight_layout()
    written.append(_save(fig, out / "criteria.png"))
    return written
