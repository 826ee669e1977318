"""Known defects of issue 9: vLLM model name, embedded engine choice, prompt_dir wiring, rollout on a running loop."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import trustee_env.rollout as rollout
from trustee_env.cli import build_parser
from trustee_env.env import TrusteeToolEnv
from trustee_env.errors import ConfigError, ServerError
from trustee_env.prompts import prompt_dirs
from trustee_env.rollout import LMPolicy, run_episodes
from trustee_env.serve import managed
from trustee_env.serve.local import DEFAULT_MODEL_ALIAS, DEFAULT_VLLM_MODEL, LocalServer, ServerSpec, build_command

# ----------------------------------------------------------------------------- serving


def test_vllm_model_name_is_the_served_model_name() -> None:
    for model in (None, "meta-llama/Llama-3.1-8B-Instruct"):
        spec = ServerSpec(engine="vllm", model=model)
        cmd = build_command(spec)
        served = cmd[cmd.index("--served-model-name") + 1]
        assert LocalServer(spec).model_name == served == (model or DEFAULT_VLLM_MODEL)
    assert LocalServer(ServerSpec(engine="llama-cpp-python", model="/x.gguf")).model_name == DEFAULT_MODEL_ALIAS


@pytest.fixture
def llama_state_file(fake_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A state file naming a live llama-cpp-python embedded server (a fake one, this process's PID)."""
    server = fake_server()
    monkeypatch.setattr(managed, "_current", None)
    state_dir = Path(os.environ["TRUSTEE_STATE_DIR"])
    state_dir.mkdir(parents=True, exist_ok=True)
    state = {"pid": os.getpid(), "base_url": server.base_url, "model": "fake-model", "engine": "llama-cpp-python"}
    (state_dir / "embedded-server.json").write_text(json.dumps(state))
    return server.base_url


def test_auto_engine_reuses_the_running_embedded_server(llama_state_file: str) -> None:
    found = managed.ensure_embedded_server(engine="auto")
    assert found.base_url == llama_state_file and not found.owned


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm installed: it would really start")
def test_vllm_engine_is_honoured_not_swapped_for_llama(llama_state_file: str) -> None:
    # A llama server is running, but vLLM was asked for: neither reused nor replaced by a llama start.
    with pytest.raises(ServerError, match="vllm"):
        managed.ensure_embedded_server(engine="vllm")
    with pytest.raises(ServerError, match="vllm"):
        gym.make("Trustee-v0", server_engine="vllm")


# ----------------------------------------------------------------------------- prompt_dir


def _marked_user_template(folder: Path, marker: str) -> None:
    original = (prompt_dirs()[0] / "user_simulator.j2").read_text()
    assert "{% set system %}\n" in original
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "user_simulator.j2").write_text(original.replace("{% set system %}\n", f"{{% set system %}}\n{marker}\n"))


def _play(env: gym.Env[Any, Any], seed: int = 0) -> dict[str, Any]:
    _, info = env.reset(seed=seed)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step("Here is what I found.")
        done = terminated or truncated
    return info


def test_prompt_dir_overrides_one_template_and_keeps_the_rest(make_env, tmp_path: Path) -> None:
    marker = "MARKER-FROM-PROMPT-DIR"
    _marked_user_template(tmp_path / "prompts", marker)
    env = make_env(prompt_dir=str(tmp_path / "prompts"))
    assert _play(env)["sim_fault"] is None
    systems = {role: body["messages"][0]["content"] for role, body in make_env.server.requests}
    assert marker in systems["user"]
    assert all(marker not in text for role, text in systems.items() if role != "user")

    plain = make_env()
    _play(plain)
    assert all(marker not in body["messages"][0]["content"] for _, body in make_env.server.requests)


def test_prompt_dir_from_the_environment_and_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRUSTEE_PROMPT_DIR", str(tmp_path))
    assert TrusteeToolEnv(base_url="http://127.0.0.1:9/v1", model="m").config.prompt_dir == str(tmp_path.resolve())
    with pytest.raises(ConfigError, match="prompt_dir"):
        TrusteeToolEnv(base_url="http://127.0.0.1:9/v1", model="m", prompt_dir=str(tmp_path / "missing"))


# ----------------------------------------------------------------------------- rollout


def test_rollout_docstring_names_only_real_commands() -> None:
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    named = set(re.findall(r"``trustee (\w+)", rollout.__doc__ or ""))
    assert named and named <= commands


def test_run_episodes_works_inside_a_running_loop_and_closes_its_extra_envs(
    make_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env().unwrapped
    closed: list[int] = []
    original_close = TrusteeToolEnv.close

    def spy_close(self: TrusteeToolEnv) -> None:  # records, then really closes
        closed.append(id(self))
        original_close(self)

    monkeypatch.setattr(TrusteeToolEnv, "close", spy_close)
    policy = LMPolicy(env.config)

    async def notebook_cell() -> list[dict[str, Any]]:  # Jupyter runs cells inside a running loop
        return run_episodes(env, policy, [3, 1, 2, 5], concurrency=3)

    summaries = asyncio.run(notebook_cell())
    assert [s["seed"] for s in summaries] == [3, 1, 2, 5]
    assert all(s["sim_fault"] is None for s in summaries)
    assert len(closed) == 2 and id(env) not in closed  # the caller's env stays open
    _, info = env.reset(seed=9)  # and usable
    assert info["sim_fault"] is None
