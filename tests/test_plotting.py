"""Plots of a trainer log and of a recorded run: real PNG files of sensible size, clear errors on bad input."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason='plots need matplotlib: pip install "trustee-env[plot]"')

from recorded_runs import record_run

from trustee_env.plotting import (
    PlotInputError,
    criterion_pass_rates,
    is_training_log,
    plot_run,
    plot_training_log,
    rolling_band,
)
from trustee_env.trajectory import read_trajectories

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _assert_sensible_png(path: Path) -> None:
    width, height = _png_size(path)
    assert 400 <= width <= 3000 and 300 <= height <= 2000, (width, height)
    assert path.stat().st_size > 10_000  # axes, curves and labels, not a blank canvas


def _write_log(path: Path, steps: int = 30, **extra: object) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for step in range(steps):
            row = {"step": step, "reward_mean": (step % 7) / 7 - 0.3, "reward_std": 0.2, "difficulty": 10 + step}
            handle.write(json.dumps({**row, **extra}) + "\n")
    return path


def test_training_log_plot(tmp_path: Path) -> None:
    log = _write_log(tmp_path / "train.jsonl", success_rate=0.5, sim_faults=1, tokens=1000, seconds=2.0)
    assert is_training_log(log)
    out = plot_training_log(log, tmp_path / "plots" / "train.png")
    assert out == tmp_path / "plots" / "train.png"
    _assert_sensible_png(out)


def test_training_log_with_only_the_required_keys(tmp_path: Path) -> None:
    _assert_sensible_png(plot_training_log(_write_log(tmp_path / "t.jsonl", steps=3), tmp_path / "t.png"))


def test_run_plots_from_recorded_trajectories(make_env, tmp_path: Path) -> None:
    run = record_run(make_env, tmp_path / "run.jsonl")
    assert not is_training_log(run)
    paths = plot_run(run, tmp_path / "plots")
    assert [p.name for p in paths] == ["reward.png", "difficulty.png", "sim_fault_rate.png", "criteria.png"]
    for path in paths:
        _assert_sensible_png(path)


def test_criterion_pass_rates_count_the_checks(make_env, tmp_path: Path) -> None:
    records = list(read_trajectories(record_run(make_env, tmp_path / "run.jsonl")))
    rates = criterion_pass_rates(records)
    judged = [r for r in records if r.verdict is not None]
    assert rates["correct_tools"]["episodes"] == len(judged) == 4  # the sim-faulted episode has no verdict
    failed = sum(any(c.criterion == "correct_tools" for c in r.verdict.checks.violations) for r in judged)
    assert failed == 3 and rates["correct_tools"]["check_pass"] == pytest.approx(1 / 4)
    assert rates["no_hallucination"]["check_pass"] == pytest.approx(3 / 4)  # the unknown tool


def test_rolling_band() -> None:
    mean, std = rolling_band([0, 1, 0, 1], window=2)
    assert mean.tolist() == [0, 0.5, 0.5, 0.5]
    assert std.tolist() == [0, 0.5, 0.5, 0.5]


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(PlotInputError, match="no JSON objects"):
        plot_run(empty, tmp_path / "out")
    with pytest.raises(PlotInputError, match="no JSON objects"):
        plot_training_log(empty, tmp_path / "out.png")
    with pytest.raises(PlotInputError, match="no such file"):
        plot_run(tmp_path / "missing.jsonl", tmp_path / "out")


def test_wrong_keys_are_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"step": 1, "loss": 0.3}) + "\n")
    with pytest.raises(PlotInputError, match=r"missing keys \['difficulty', 'reward_mean', 'reward_std'\]"):
        plot_training_log(bad, tmp_path / "out.png")
    with pytest.raises(PlotInputError, match="no trajectory keys"):
        plot_run(bad, tmp_path / "out")
    log = _write_log(tmp_path / "train.jsonl", steps=2)
    with pytest.raises(PlotInputError, match="trainer log"):
        plot_run(log, tmp_path / "out")
    typed = tmp_path / "typed.jsonl"
    typed.write_text(json.dumps({"step": "one", "reward_mean": 0, "reward_std": 0, "difficulty": 1}) + "\n")
    with pytest.raises(PlotInputError, match="object 1 is not a trainer log row"):
        plot_training_log(typed, tmp_path / "out.png")
    assert not list(tmp_path.glob("out*"))  # nothing written on bad input


def test_cli_plot_picks_the_plot_by_the_keys(make_env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trustee_env.cli import main

    run = record_run(make_env, tmp_path / "run.jsonl")
    assert main(["plot", str(run), "--out", str(tmp_path / "a")]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "criteria.png",
        "difficulty.png",
        "reward.png",
        "sim_fault_rate.png",
    ]
    log = _write_log(tmp_path / "train.jsonl")
    assert main(["plot", str(log)]) == 0
    _assert_sensible_png(tmp_path / "train-plots" / "training.png")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["plot", str(empty)]) == 1
    assert "no JSON objects to plot" in capsys.readouterr().err
