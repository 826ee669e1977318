"""End-to-end episodes against the real llama.cpp server and the bundled SmolLM2-135M model.

SmolLM2-135M is a smoke-test model: weak, but real. These tests check structure (every
task, tool result and verdict that comes back is schema-valid; every failure is labelled),
not quality.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import pytest
from jsonschema import Draft202012Validator

import trustee_env  # noqa: F401  (registers Trustee-v0)
from trustee_env.parsing import render_tool_calls
from trustee_env.schemas import Task, ToolCall
from trustee_env.serve.local import LocalServer, server_answers
from trustee_env.testing import example_for
from trustee_env.trajectory import read_trajectories

pytestmark = pytest.mark.real_server


def _play(env: gym.Env, seed: int) -> tuple[dict, float, bool, bool, dict]:
    """A scripted hermes policy: call the first offered tool with example arguments, then answer."""
    obs, info = env.reset(seed=seed)
    if info["sim_fault"]:
        return obs, *env.step("Hello")[1:]  # type: ignore[return-value]
    tool = obs["tools"][0]["function"]
    call = ToolCall(id="x", name=tool["name"], arguments=example_for(tool["parameters"]))
    obs, reward, terminated, truncated, info = env.step(render_tool_calls([call], "hermes"))
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step("I have done what you asked. Anything else?")
    return obs, reward, terminated, truncated, info


def test_full_episodes_are_structurally_valid(llama_server: LocalServer, tmp_path) -> None:
    path = tmp_path / "traj.jsonl"
    env = gym.make(
        "Trustee-v0",
        base_url=llama_server.base_url,
        difficulty=20,
        tool_format="hermes",
        max_steps=3,
        ungrounded_arguments="relax",
        trajectory_path=str(path),
    )
    complete = 0
    for seed in (1, 2, 3):
        obs, reward, terminated, truncated, info = _play(env, seed)
        assert terminated or truncated
        if info["sim_fault"] is not None:
            assert info["sim_fault"]["role"] in {"task_generator", "user", "tool", "judge"}
            assert info["sim_fault"]["reason"] in {
                "invalid_output",
                "truncated_output",
                "connection",
                "timeout",
                "http_status",
            }
            assert reward == 0.0 and truncated
            continue
        complete += 1
        task = Task.model_validate(info["task"])
        offered = {spec.name: spec for spec in task.tools}
        for expected in task.expected_calls:  # generated calls name offered tools with schema-valid arguments
            assert expected.name in offered
            assert not list(Draft202012Validator(offered[expected.name].parameters).iter_errors(expected.arguments))
        tool_messages = [m for m in obs["messages"] if m["role"] == "tool"]
        assert tool_messages, "the scripted policy's call must be answered"
        first = tool_messages[0]
        assert first["tool_call_id"] == "call_1_0"
        result = json.loads(first["content"])  # a simulated result, valid under the tool's result schema
        called = offered[obs["tools"][0]["function"]["name"]]
        assert not list(Draft202012Validator(called.result_schema).iter_errors(result))
        assert reward in (-1.0, 0.0, 1.0)
        verdict = info["verdict"]
        assert verdict["reward"] == reward and verdict["judge_verdict"] in (-1, 0, 1)
        assert set(verdict["scores"]) == {"intent", "correct_tools", "no_hallucination", "no_redundancy", "efficiency"}
        assert info["usage"]["judge"]["calls"] == 1 and info["usage"]["tool"]["calls"] == 1
    env.close()
    assert complete >= 1, "no episode completed without a simulator fault on the real server"
    records = list(read_trajectories(path))
    assert len(records) == 3 and all(r.messages for r in records if r.sim_fault is None)


def test_seeded_episode_replays_from_cache_without_server(llama_server: LocalServer, tmp_path) -> None:
    cache = tmp_path / "cache.sqlite"
    common = dict(difficulty=10, tool_format="hermes", max_steps=2, ungrounded_arguments="relax", cache_path=str(cache))
    env = gym.make(
        "Trustee-v0", base_url=llama_server.base_url, model=llama_server.model_name, cache_mode="read_write", **common
    )
    first = _play(env, seed=11)
    env.close()
    replay = gym.make(
        "Trustee-v0",
        base_url="http://127.0.0.1:9/v1",
        model=llama_server.model_name,
        cache_mode="replay_only",
        max_retries=0,
        **common,
    )
    second = _play(replay, seed=11)
    replay.close()
    assert first[0] == second[0] and first[1:4] == second[1:4]
    assert first[4]["usage"] == second[4]["usage"]


def test_demo_command_runs_against_the_server(llama_server: LocalServer, tmp_path) -> None:
    out = tmp_path / "demo.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trustee_env.cli",
            "demo",
            "--episodes",
            "1",
            "--max-steps",
            "2",
            "--base-url",
            llama_server.base_url,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trajectories written to" in proc.stdout
    records = list(read_trajectories(out))
    assert len(records) == 1 and records[0].messages


def test_no_config_default_starts_and_stops_the_embedded_server(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TRUSTEE_STATE_DIR", str(tmp_path))
    for key in [k for k in os.environ if k.startswith("TRUSTEE_") and k != "TRUSTEE_STATE_DIR"]:
        monkeypatch.delenv(key)
    from trustee_env.serve import managed

    env = gym.make("Trustee-v0", max_steps=1, ungrounded_arguments="relax")
    try:
        base_url = env.unwrapped.config.base_url
        assert base_url and server_answers(base_url) is not None
        state = json.loads((tmp_path / "embedded-server.json").read_text())
        assert state["base_url"] == base_url
        # a second env in the same process reuses it
        again = gym.make("Trustee-v0", max_steps=1)
        assert again.unwrapped.config.base_url == base_url
        again.close()
    finally:
        env.close()
        managed.stop_embedded_server()
    deadline = time.monotonic() + 10
    while server_answers(base_url, timeout=0.5) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server_answers(base_url, timeout=0.5) is None


def test_trustee_serve_stops_cleanly_on_sigterm(tmp_path) -> None:
    from trustee_env.serve.local import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trustee_env.cli", "serve", "--engine", "llama-cpp-python", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        url = f"http://127.0.0.1:{port}/v1"
        while server_answers(url, timeout=0.5) is None:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "server stopped" in out
    assert server_answers(url, timeout=0.5) is None


def test_port_clash_is_a_one_line_error(llama_server: LocalServer) -> None:
    port = llama_server.base_url.rsplit(":", 1)[1].split("/")[0]
    proc = subprocess.run(
        [sys.executable, "-m", "trustee_env.cli", "serve", "--engine", "llama-cpp-python", "--port", port],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "already in use" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_server_dies_with_its_parent() -> None:
    """A killed training script leaves no model server behind (PR_SET_PDEATHSIG with SIGKILL)."""
    script = (
        "import time\n"
        "from trustee_env.serve.local import LocalServer, ServerSpec\n"
        "server = LocalServer(ServerSpec(engine='llama-cpp-python', threads=1)).start()\n"
        "print(server.base_url, flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        url = (proc.stdout.readline() if proc.stdout else "").strip()
        assert url.startswith("http://127.0.0.1:"), url
        assert server_answers(url) is not None
    finally:
        proc.kill()
        proc.wait(30)
    deadline = time.monotonic() + 20
    while server_answers(url, timeout=0.5) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server_answers(url, timeout=0.5) is None, "the server outlived its parent"
