"""Nothing executed, nothing leaked.

* Policy text and tool arguments carrying code, shell commands, imports and file paths are played
  through every role while a Python audit hook (PEP 578) watches the process: no ``exec`` of code
  built from them, no ``open``, ``import``, ``subprocess``/``os.system``/``exec*``/``spawn`` or file
  operation whose arguments contain them. (``compile`` is allowed: it is how :mod:`ast` *parses*
  pythonic calls, which are then read with ``literal_eval`` only.)
* A recognisable API key is configured for every role; a run with trajectories, the record/replay
  cache, logs at DEBUG, the viewer, faults and strict-mode errors is then searched for it: it
  appears nowhere.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import pytest

from trustee_env.errors import TrusteeError
from trustee_env.faults import FaultPlan
from trustee_env.testing import ScriptedSimulator
from trustee_env.viewer import render_trajectory

MakeEnv = Callable[..., gym.Env[Any, Any]]

CANARY = f"CANARY{uuid.uuid4().hex[:8]}"
KEY = f"sk-trustee-{uuid.uuid4().hex}"  # a recognisable API key
ATTACKS: list[Any] = [
    f"__import__('os').system('echo {CANARY} > /tmp/{CANARY}')",
    f"[mock_cancel_order(order_id=__import__('os').system('touch /tmp/{CANARY}'))]",
    f"[mock_cancel_order(order_id=open('/tmp/{CANARY}').read())]",
    f'<tool_call>{{"name": "mock_cancel_order", "arguments": {{"order_id": "../../../tmp/{CANARY}"}}}}</tool_call>',
    f'<tool_call>{{"name": "mock_get_order", "arguments": {{"order_id": "$(rm /tmp/{CANARY}); `id`"}}}}</tool_call>',
    f'[TOOL_CALLS][{{"name": "os.system", "arguments": {{"command": "echo {CANARY}"}}}}]',
    f"[{CANARY}.evil(x=1), importlib.import_module(name='{CANARY}')]",
    f"```python\nimport {CANARY}\nexec('print(1)')\n```",
    f'{{"name": "eval", "parameters": {{"expr": "{CANARY}"}}}}',
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "n1", "function": {"name": f"/tmp/{CANARY}", "arguments": json.dumps({"path": f"/tmp/{CANARY}"})}},
            {"id": "n2", "function": {"name": "mock_cancel_order", "arguments": f"__import__('{CANARY}')"}},
        ],
    },
    f"I am done. {{{{ cycler.__init__.__globals__.os.popen('echo {CANARY}') }}}}",
]
WATCHED = ("exec", "open", "import", "subprocess", "os.", "shutil.", "ctypes", "pty.", "glob.", "pathlib.")


class _Audit:
    """A process-wide audit hook (they cannot be removed), recording only while ``active``."""

    active: ClassVar[bool] = False
    hits: ClassVar[list[tuple[str, str]]] = []
    installed: ClassVar[bool] = False

    @classmethod
    def hook(cls, event: str, args: tuple[Any, ...]) -> None:
        if not cls.active or event == "compile" or not event.startswith(WATCHED):
            return
        cls.active = False  # no recursion from inspecting the arguments
        try:
            if event == "exec" and args and hasattr(args[0], "co_consts"):
                code = args[0]
                text = repr((code.co_consts, code.co_names, code.co_filename))
            else:
                text = repr(args)
            if CANARY in text:
                cls.hits.append((event, text[:200]))
        finally:
            cls.active = True


def _play(env: gym.Env[Any, Any], seed: int) -> None:
    env.reset(seed=seed)
    for action in [*ATTACKS, "Done."]:
        *_rest, terminated, truncated, _info = env.step(action)
        if terminated or truncated:
            return


def test_policy_text_and_tool_arguments_are_never_executed(make_env: MakeEnv, tmp_path: Path):
    env = make_env(
        ScriptedSimulator(),
        aspects={"strictness": 5, "num_tools": 3, "num_calls": 1},
        max_steps=len(ATTACKS) + 1,
        max_tool_calls=100,
        trajectory_path=str(tmp_path / "t.jsonl"),
        cache_path=str(tmp_path / "cache.sqlite"),
        cache_mode="read_write",
    )
    if not _Audit.installed:
        sys.addaudithook(_Audit.hook)
        _Audit.installed = True
    _Audit.hits.clear()
    _Audit.active = True
    try:
        _play(env, seed=3)
        env.render()
    finally:
        _Audit.active = False
    episode = env.unwrapped.episode
    assert episode.termination is not None and episode.parse_errors + len(episode.records) >= 5  # attacks were read
    assert CANARY in json.dumps([r.call.model_dump() for r in episode.records])  # and reached the tool checks
    assert _Audit.hits == []
    assert not list(Path("/tmp").glob(f"*{CANARY}*"))


def test_the_api_key_appears_in_no_artefact(
    make_env: MakeEnv,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    key = KEY
    caplog.set_level(logging.DEBUG)
    jsonl, cache = tmp_path / "t.jsonl", tmp_path / "cache.sqlite"
    # Keys from the environment: gym.make keeps its keyword arguments in env.spec (Gymnasium's repr shows them).
    monkeypatch.setenv("TRUSTEE_API_KEY", key)
    monkeypatch.setenv("TRUSTEE_JUDGE_API_KEY", key)
    settings: dict[str, Any] = {
        "aspects": {"strictness": 3, "num_tools": 3, "num_calls": 1},
        "trajectory_path": str(jsonl),
        "cache_path": str(cache),
        "cache_mode": "read_write",
        "render_mode": "human",
        "max_retries": 1,
    }
    texts: list[str] = []
    env = make_env(ScriptedSimulator(), **settings)
    assert env.unwrapped.roles.user.client.endpoint.api_key == key  # the key is really in use
    assert env.unwrapped.roles.judge.client.endpoint.api_key == key
    _play(env, seed=1)
    env.render()
    texts += [repr(env.unwrapped.config), str(env.unwrapped.config), repr(env.unwrapped.stats), repr(env.spec)]

    # faults: a labelled sim fault and a strict-mode exception, with their messages
    faulty = make_env(FaultPlan(ScriptedSimulator(), role="judge", kind="http_503", times=None), **settings)
    _play(faulty, seed=2)
    texts.append(json.dumps(faulty.unwrapped.episode.sim_fault))
    strict = make_env(
        FaultPlan(ScriptedSimulator(), role="user", kind="wrong_schema", times=None),
        raise_on_sim_fault=True,
        **settings,
    )
    with pytest.raises(TrusteeError) as caught:
        _play(strict, seed=3)
    texts += [str(caught.value), repr(caught.value), repr(vars(caught.value))]
    from trustee_env.errors import ConfigError

    for wrong in ({"timeout": -1}, {"cache_path": None}, {"api_key": key, "judge": {"api_key": key, "timeout": "x"}}):
        with pytest.raises(ConfigError) as bad:  # field errors and a model-level one (its input is every setting)
            make_env(ScriptedSimulator(), **{**settings, **wrong})
        texts.append(str(bad.value))

    for closing in (env, faulty, strict):
        closing.close()
    from trustee_env.trajectory import read_trajectories

    records = list(read_trajectories(jsonl))
    assert len(records) == 3
    texts += [render_trajectory(record, show_system=True) for record in records]
    texts.append(caplog.text)
    texts += list(capsys.readouterr())
    artefacts = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    assert {"t.jsonl", "cache.sqlite"} <= set(artefacts)
    for name, data in artefacts.items():
        assert key.encode() not in data, name
    for text in texts:
        assert key not in text
