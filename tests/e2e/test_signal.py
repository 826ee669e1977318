"""``benchmarks/bench_signal.py`` against the real llama.cpp server: the report's structure only.

The reward-discrimination targets are checked by running the benchmark, not here: a 135M
simulator over a couple of seeds says nothing statistical, but every agent must play, every
episode must be accounted for, and the JSON must carry every figure the issue asks for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trustee_env.serve.local import LocalServer

pytestmark = pytest.mark.real_server

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_signal.py"


def test_signal_benchmark_reports_every_agent(llama_server: LocalServer, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    command = [
        sys.executable,
        str(BENCH),
        "--base-url",
        llama_server.base_url,
        "--seeds",
        "1",
        "--difficulties",
        "10",
        "--max-steps",
        "3",
        "--agents",
        "oracle",
        "null",
        "--out",
        str(rows),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert set(report["agents"]) == {"oracle", "null"}  # the other two agents are the same code path, and slow here
    for name, figures in report["agents"].items():
        assert figures["episodes"] + figures["not_applicable"] == 1, name
        assert set(figures["by_difficulty"]) == {"10.0"}
        for key in ("p_reward_1", "mean_reward", "sim_fault_rate", "terminations", "sim_faults_by_role"):
            assert key in figures, (name, key)
        if figures["completed"]:
            assert 0.0 <= figures["p_reward_1"] <= 1.0 and -1.0 <= figures["mean_reward"] <= 1.0
    assert report["agents"]["null"]["p_reward_1"] in (0.0, None), "refusing can never earn a reward of 1"
    assert 0.0 <= report["sim_fault_rate"] <= 1.0
    assert all(isinstance(met, bool) for met in report["targets_met"].values())
    assert report["task_gate"]["requests"] >= 1  # the oracle's run generated the task
    played = [json.loads(line) for line in rows.read_text().splitlines()]
    assert {row["agent"] for row in played} == set(report["agents"])
