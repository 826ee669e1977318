"""The ``trustee`` command: help everywhere, rollout against the scripted server, tools, bench, one-line errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest

from trustee_env import cli, errors
from trustee_env.testing import FakeLLMServer, Reply, ScriptedSimulator
from trustee_env.trajectory import read_trajectories

ROOT = Path(__file__).resolve().parent.parent


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, (*prefix, name))


COMMANDS = list(_command_paths(cli.build_parser()))


def run_cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "trustee")
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([*path, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: trustee") and len(out.splitlines()) > 3


def test_the_expected_commands_exist() -> None:
    names = {path[0] for path in COMMANDS if path}
    assert {"serve", "demo", "rollout", "view", "tools", "bench"} <= names
    assert {("tools", "list"), ("tools", "show"), ("tools", "validate")} <= set(COMMANDS)


def test_fix_for_every_error_class_and_missing_extras() -> None:
    defined = [getattr(errors, name) for name in errors.__all__]
    assert all(cls in cli.FIXES for cls in defined)
    assert cli.fix_for(errors.LLMTimeoutError("slow")) == cli.FIXES[errors.LLMTimeoutError]
    assert cli.fix_for(cli.CommandError("x", fix="do this")) == "do this"
    assert cli.fix_for(cli.CommandError("x")) == cli.FIXES[errors.TrusteeError]  # inherited
    assert cli.fix_for(ModuleNotFoundError("no", name="matplotlib.pyplot")) == "pip install 'trustee-env[plot]'"
    assert cli.fix_for(ModuleNotFoundError("no", name="llama_cpp")) == "pip install 'trustee-env[local]'"
    assert cli.fix_for(IsADirectoryError(21, "Is a directory")) == "check the path and its permissions"


# --------------------------------------------------------------------------------------------- rollout


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(ScriptedSimulator()) as fake:
        yield fake


def test_rollout_writes_jsonl_and_a_summary(server: FakeLLMServer, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run.jsonl"
    code, stdout, stderr = run_cli(
        "rollout",
        "--base-url", server.base_url,
        "--policy-base-url", server.base_url,
        "--policy-model", "fake-policy",
        "--seeds", "3-6",
        "--concurrency", "2",
        "--difficulty", "20",
        "--out", str(out),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    records = list(read_trajectories(out))
    assert summary["episodes"] == len(records) == 4
    assert sorted(r.seed for r in records) == [3, 4, 5, 6]
    assert summary["sim_faults"] == 0 and summary["completed"] == 4
    assert summary["mean_reward"] == pytest.approx(sum(r.reward for r in records) / 4)
    assert all(r.difficulty == 20 for r in records)
    policy_requests = [req for role, req in server.requests if role == "policy"]
    assert policy_requests and all(req["model"] == "fake-policy" for req in policy_requests)
    assert "rollout" in stderr and "sim faults" in stderr  # the progress bar went to stderr


def test_rollout_counts_sim_faults(tmp_path: Path, capsys) -> None:
    # the judge answers HTTP 400 (not retried): each episode ends with a judge sim fault
    script = ScriptedSimulator(faults={"judge": [Reply(content="bad request", status=400)] * 3})
    with FakeLLMServer(script) as fake:
        code, stdout, stderr = run_cli(
            "rollout", "--base-url", fake.base_url, "-n", "3", "-c", "1", "--out", str(tmp_path / "f.jsonl"),
            "--no-progress", capsys=capsys,
        )  # fmt: skip
    assert code == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["sim_faults"] == 3 and summary["mean_reward"] is None
    assert summary["sim_fault_reasons"] == {"judge/http_status": 3}
    assert stderr.count("sim fault (judge/http_status)") == 3  # logged as warnings (rate limit: first 5)


def test_rollout_plays_the_tasks_of_a_bank(server: FakeLLMServer, tmp_path: Path, capsys) -> None:
    env = gym.make("Trustee-v0", base_url=server.base_url)
    tasks = []
    for index in range(2):
        env.reset(seed=index)
        task = env.unwrapped.task_json()
        task["intent"] = f"bank task {index}"
        tasks.append(task)
    env.close()
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps(tasks))
    generated_before = sum(role == "task_generator" for role, _ in server.requests)
    out = tmp_path / "bank-run.jsonl"
    code, _, stderr = run_cli(
        "rollout", "--base-url", server.base_url, "--bank", str(bank), "-n", "4", "--out", str(out), capsys=capsys
    )
    assert code == 0, stderr
    records = sorted(read_trajectories(out), key=lambda r: r.seed)
    assert [r.task.intent for r in records] == ["bank task 0", "bank task 1", "bank task 0", "bank task 1"]
    assert sum(role == "task_generator" for role, _ in server.requests) == generated_before  # none generated


def test_bad_bank_is_one_line(tmp_path: Path, capsys) -> None:
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps([{"intent": "no other fields"}]))
    code, _, stderr = run_cli("rollout", "--bank", str(bank), "--base-url", "http://127.0.0.1:9/v1", capsys=capsys)
    assert code == 1
    assert stderr.startswith(f"trustee: error: task bank {bank} is not valid: tasks.0.")
    assert "->" in stderr and len(stderr.strip().splitlines()) == 1


def test_unreachable_server_is_one_line_and_verbose_shows_the_traceback(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "trustee_env.cli", "rollout", "--base-url", "http://127.0.0.1:9/v1", "-n", "1"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "trustee: error: the simulator endpoint http://127.0.0.1:9/v1 does not answer /models -> start it "
        "(`trustee serve --port 8000` serves http://127.0.0.1:8000/v1) or check the URL"
    ]
    proc = subprocess.run([*argv, "--verbose"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("trustee: error: the simulator endpoint")


def test_config_error_names_the_option(server: FakeLLMServer, tmp_path: Path, capsys) -> None:
    code, _, stderr = run_cli(
        "rollout", "--base-url", server.base_url, "-o", "difficuly=3", "--out", str(tmp_path / "x.jsonl"), capsys=capsys
    )
    assert code == 2
    assert stderr.startswith("trustee: configuration error:") and "Did you mean 'difficulty'" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_bad_seeds_and_options_are_one_line(capsys) -> None:
    code, _, stderr = run_cli("rollout", "--seeds", "1-x", capsys=capsys)
    assert code == 1 and stderr.startswith("trustee: error: bad --seeds '1-x' -> ")
    code, _, stderr = run_cli("rollout", "-o", "novalue", capsys=capsys)
    assert code == 1 and "write --option key=value" in stderr


def test_parse_seeds() -> None:
    assert cli._parse_seeds("0-3,10, 12-12") == [0, 1, 2, 3, 10, 12]


# --------------------------------------------------------------------------------------------- tools

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order by id.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        },
    }
]
TOOLBENCH_TOOL = {
    "tool_name": "Weather API",
    "tool_description": "Weather data",
    "api_list": [
        {
            "name": "current",
            "url": "https://example.com/current",
            "description": "Current weather for a city.",
            "method": "GET",
            "required_parameters": [{"name": "city", "type": "STRING", "description": "City", "default": ""}],
            "optional_parameters": [],
        }
    ],
}
MCP_LIST = {
    "jsonrpc": "2.0",
    "id": 1,
    "result": {
        "tools": [
            {
                "name": "read_file",
                "description": "Read a file.",
                "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
                "annotations": {"readOnlyHint": True},
            }
        ]
    },
}


@pytest.mark.parametrize(
    ("data", "fmt", "name"),
    [(OPENAI_TOOLS, "openai", "lookup_order"), (TOOLBENCH_TOOL, "toolbench", None), (MCP_LIST, "mcp", "read_file")],
)
def test_tools_validate_and_show_foreign_catalogs(data, fmt, name, tmp_path: Path, capsys) -> None:
    path = tmp_path / f"{fmt}.json"
    path.write_text(json.dumps(data))
    for forced in ("auto", fmt):
        code, out, err = run_cli("tools", "validate", str(path), "--format", forced, capsys=capsys)
        assert code == 0, err
        assert json.loads(out) == {"ok": True, "tools": 1, "categories": 1, **_flags(fmt)}
    code, out, _ = run_cli("tools", "list", "--catalog", str(path), "--json", capsys=capsys)
    listed = [json.loads(line) for line in out.splitlines()]
    assert len(listed) == 1 and listed[0]["type"] == "function"
    tool = name or listed[0]["function"]["name"]
    code, out, _ = run_cli("tools", "show", tool, "--catalog", str(path), capsys=capsys)
    shown = json.loads(out)
    assert code == 0 and shown["openai"]["function"]["name"] == tool


def _flags(fmt: str) -> dict[str, int]:
    return {"read_only": 0 if fmt == "openai" else 1, "result_schema_inferred": 1}


def test_tools_list_the_bundled_catalog(capsys) -> None:
    code, out, _ = run_cli("tools", "list", "--category", "weather", capsys=capsys)
    assert code == 0 and "weather" in out
    code, out, _ = run_cli("tools", "list", "--json", capsys=capsys)
    assert len(out.splitlines()) == 300


def test_tools_errors_are_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "x", "description": "d", "parameters": {"type": "object", "properties": 3}}]))
    code, _, err = run_cli("tools", "validate", str(bad), capsys=capsys)
    assert code == 1 and err.startswith("trustee: error: ") and "'x'" in err and "fix the tool or field" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli("tools", "show", "weather_get_forecst", capsys=capsys)
    assert code == 1 and "unknown tool" in err and "trustee tools list" in err
    code, _, err = run_cli("tools", "list", "--catalog", str(tmp_path / "none.json"), capsys=capsys)
    assert code == 1 and "no such catalog" in err


# --------------------------------------------------------------------------------------------- bench


def test_bench_lists_every_script(capsys) -> None:
    code, out, _ = run_cli("bench", capsys=capsys)
    assert code == 0
    for script in (ROOT / "benchmarks").glob("*.py"):
        assert script.stem.removeprefix("bench_") in out


def test_bench_runs_a_script_with_its_arguments(tmp_path: Path, capfd) -> None:
    (tmp_path / "bench_echo.py").write_text(
        '"""Echo the arguments as JSON."""\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\nsys.exit(3)\n'
    )
    code = cli.main(["bench", "--dir", str(tmp_path), "echo", "--n", "2", "--quick"])
    assert code == 3  # the script's own exit status
    assert json.loads(capfd.readouterr().out.strip().splitlines()[-1]) == ["--n", "2", "--quick"]
    code = cli.main(["bench", "--dir", str(tmp_path), "nope"])
    assert code == 1 and "no benchmark named 'nope'" in capfd.readouterr().err


# --------------------------------------------------------------------------------------------- view


def test_view_bad_files_are_one_line(server: FakeLLMServer, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"reward": "high"}\n')
    code, _, err = run_cli("view", str(bad), capsys=capsys)
    assert code == 1 and err.startswith(f"trustee: error: {bad} is not a Trustee trajectory file (reward:")
    out = tmp_path / "ok.jsonl"
    run_cli("rollout", "--base-url", server.base_url, "-n", "2", "--out", str(out), "--no-progress", capsys=capsys)
    code, _, err = run_cli("view", str(out), "--index", "5", capsys=capsys)
    assert code == 1 and err.strip() == f"trustee: error: no episode 5 in {out} -> it holds 2: pass --index 0..1"
    code, stdout, _ = run_cli("view", str(out), "--index", "-1", capsys=capsys)
    assert code == 0 and stdout
