"""Real trajectory files for the viewer and plot tests, recorded with the scripted server (no LM).

Episodes of every kind a run holds: solved, a missing expected call, a hallucinated tool, policy text
that tries to inject HTML, and a tool-simulator fault. A two-call task makes the world state change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trustee_env.testing import Reply, ScriptedSimulator

INJECTION = (
    'Sure! <script>window.__pwned = 1;</script></script><img src=x onerror="window.__pwned = 2"><b>bold?</b> done'
)
"""Policy text a viewer must show as text: if the page ever sets ``window.__pwned``, it executed it."""

_PINNED = {"num_calls": 1, "strictness": 3}


def _details(obs: dict[str, Any]) -> list[dict[str, Any]]:
    """The expected arguments the scripted task states in its first query ('Details: [...]')."""
    return json.loads(obs["messages"][1]["content"].split("Details: ", 1)[1])


def _call(name: str, arguments: dict[str, Any], call_id: str = "c1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def _finish(env: Any, text: str) -> None:
    """Reply with text until the episode ends (the user gate keeps an unsolved episode going to its budget)."""
    for _ in range(50):
        _, _, terminated, truncated, _ = env.step(text)
        if terminated or truncated:
            return
    raise AssertionError("the episode did not end within 50 steps")


def _cancel(name: str, arguments: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The scripted cancel tool writes to the world state, so a trajectory has a patch to show."""
    if name != "mock_cancel_order":
        return {"result": {"order_id": "o1", "status": "open", "items": ["pen"]}, "state_patch": []}
    patch = [
        {"op": "replace", "path": "/records/0/status", "value": "cancelled"},
        {"op": "add", "path": "/cancellations", "value": [arguments.get("order_id", "?")]},
    ]
    return {"result": {"order_id": arguments.get("order_id", "?"), "status": "cancelled"}, "state_patch": patch}


def record_run(make_env: Callable[..., Any], path: Path) -> Path:
    """Append five varied episodes to ``path`` (solved, wrong arguments, unknown tool, injection, sim fault)."""
    env = make_env(
        ScriptedSimulator(tool_results={"mock_cancel_order": _cancel}), trajectory_path=str(path), aspects=_PINNED
    )
    obs, _ = env.reset(seed=1)  # seed 1 offers mock_cancel_order first: the solved episode changes the state
    tool = obs["tools"][0]["function"]["name"]
    env.step({"role": "assistant", "content": "", "tool_calls": [_call(tool, _details(obs)[0])]})
    _finish(env, "All done: I made the call for you.")

    obs, _ = env.reset(seed=2)
    wrong = {key: "</script><script>window.__pwned = 3;</script>" for key in _details(obs)[0]}
    env.step({"role": "assistant", "content": "", "tool_calls": [_call(obs["tools"][0]["function"]["name"], wrong)]})
    _finish(env, "Done.")

    env.reset(seed=3)
    env.step({"role": "assistant", "content": "", "tool_calls": [_call("launch_rockets", {"count": 3})]})
    _finish(env, "I could not find the tool.")

    env.reset(seed=4)
    _finish(env, INJECTION)

    faulty = make_env(
        ScriptedSimulator(faults={"tool": [Reply(content="not json")] * 10}),
        trajectory_path=str(path),
        aspects=_PINNED,
    )
    obs, _ = faulty.reset(seed=5)
    faulty.step(
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [_call(obs["tools"][0]["function"]["name"], _details(obs)[0])],
        }
    )
    return path
