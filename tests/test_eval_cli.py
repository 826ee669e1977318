"""``trustee bank`` and ``trustee eval`` end to end against the scripted simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from trustee_env.cli import main
from trustee_env.testing import FakeLLMServer, ScriptedSimulator


def test_bank_build_show_split_and_eval(
    fake_server: Callable[..., FakeLLMServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    server = fake_server(ScriptedSimulator())
    bank = tmp_path / "bank.json"
    assert main(["bank", "build", str(bank), "-n", "4", "--difficulty", "5", "25", "--base-url", server.base_url]) == 0
    assert "4 tasks (0 generations failed)" in capsys.readouterr().out
    assert main(["bank", "show", str(bank), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tasks"] == 4 and summary["difficulty"] == {"min": 5.0, "mean": 15.0, "max": 25.0}
    parts = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    assert main(["bank", "split", str(bank), *parts, "--fraction", "0.5"]) == 0
    capsys.readouterr()
    report = tmp_path / "report.json"
    code = main([
        "eval", "--bank", str(tmp_path / "b.json"), "--policy-base-url", server.base_url, "--base-url",
        server.base_url, "--reward-mode", "checks", "--repeats", "2", "--max-steps", "2", "--out", str(report),
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "mean reward  +0.000" in out  # the scripted policy only talks: the floor holds
    data = json.loads(report.read_text())
    assert data["episodes"] == 4 and data["reward"]["mean"] == 0.0


def test_eval_of_a_missing_bank_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    assert main(["eval", "--bank", str(tmp_path / "nope.json")]) != 0
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
