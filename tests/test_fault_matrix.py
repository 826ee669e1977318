"""The fault matrix: every simulated role x every server fault, run, checked and published.

Each cell plays one episode against the scripted server (a tool call to the expected tool, then a
text reply, so all four roles are called) with one fault injected into one role's answers:

* ``once``: only that role's first request goes wrong (default mode): it must be recovered by
  transport retries or repair re-asks, and the counter that records it must show it;
* ``always``: every request of that role goes wrong (default mode): the episode must end labelled
  with ``info["sim_fault"]`` naming the role, and no exception may escape;
* ``strict``: as ``always`` with ``raise_on_sim_fault=True``: the Trustee exception it raises.

Every episode must end within the configured worst case of its role (timeouts, retries, repairs,
task attempts) plus a little scheduling slack. The table goes to ``docs/fault-matrix.md``: the test
fails when the committed file is stale (measured times are not compared); regenerate it with
``UPDATE_FAULT_MATRIX=1 pytest tests/test_fault_matrix.py``.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from trustee_env.catalog import Catalog
from trustee_env.env import TrusteeToolEnv
from trustee_env.errors import TrusteeError
from trustee_env.faults import REPLY_FAULTS, FaultPlan
from trustee_env.parsing import render_tool_calls
from trustee_env.schemas import ToolCall
from trustee_env.testing import FakeLLMServer, Reply, ScriptedSimulator

DOC = Path(__file__).resolve().parent.parent / "docs" / "fault-matrix.md"
UPDATE = os.environ.get("UPDATE_FAULT_MATRIX") == "1"  # read at import: the autouse fixture clears TRUSTEE_*

ROLES = ("task_generator", "tool", "user", "judge")
SERVER_FAULTS = {
    "server_down": "nothing listens on the role's URL from the start",
    "server_dies": "the role's server stops mid-episode, just before the role's first call",
}
FAULTS = {**SERVER_FAULTS, **REPLY_FAULTS}

TIMEOUT = 0.5
MAX_RETRIES = 2
MAX_REPAIRS = 1
TASK_ATTEMPTS = 2
HUGE_TIMEOUT = 5.0  # a 10 MB answer takes ~0.5 s to cross on a busy 2-core machine: these cells get longer
SLOW_S = 1.0  # read_timeout / stalled_stream keep the client waiting this long (> TIMEOUT)
SLACK_S = 5.0  # scheduling slack on a loaded 2-core machine, on top of the configured worst case
# When the faulted role is first called: 0 = reset, 1 = the tool-call step, 2 = the text step (user, then judge).
FIRST_CALL_PHASE = {"task_generator": 0, "tool": 1, "user": 2, "judge": 2}


def timeout_for(fault: str) -> float:
    """The client timeout of a fault's cells."""
    return HUGE_TIMEOUT if fault == "huge_answer" else TIMEOUT


def request_worst_s(timeout: float = TIMEOUT) -> float:
    """One request with its transport retries: every attempt times out, every backoff waits its longest."""
    backoff = sum(min(8.0, 0.25 * 2**n) + 0.25 for n in range(MAX_RETRIES))  # tenacity wait_exponential_jitter
    return (MAX_RETRIES + 1) * timeout + backoff


def budget_s(role: str, fault: str = "") -> float:
    """The configured worst case of one role's call: task attempts x (repairs + 1) x a request's worst case."""
    attempts = TASK_ATTEMPTS if role == "task_generator" else 1
    return attempts * (MAX_REPAIRS + 1) * request_worst_s(timeout_for(fault))


@dataclass
class Cell:
    """One run: a role, a fault, a mode, and what happened."""

    role: str
    fault: str
    mode: str
    outcome: str = ""
    counters: str = ""
    elapsed_s: float = 0.0
    raised: BaseException | None = None
    info: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """The model name this cell's env sends: the shared server routes faults by it."""
        return f"cell-{self.role}-{self.fault}-{self.mode}"


class Router:
    """One scripted server for every cell: each cell's requests (told apart by model name) get its own plan."""

    def __init__(self) -> None:
        self.inner = ScriptedSimulator()
        self.plans: dict[str, FaultPlan] = {}

    def __call__(self, role: str, request: dict[str, Any]) -> Reply | str | dict[str, Any]:
        plan = self.plans.get(str(request.get("model")))
        return plan(role, request) if plan is not None else self.inner(role, request)


def _dead_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def _run(cell: Cell, base_url: str, catalog: Catalog, router: Router) -> None:
    """Play the cell's episode and record outcome, counters and time."""
    role_server: FakeLLMServer | None = None
    override: dict[str, Any] = {}
    if cell.fault == "server_down":
        override = {cell.role: {"base_url": _dead_url()}}
    elif cell.fault == "server_dies":
        role_server = FakeLLMServer(router).start()
        override = {cell.role: {"base_url": role_server.base_url}}
    else:
        times = 1 if cell.mode == "once" else None
        router.plans[cell.model] = FaultPlan(router.inner, role=cell.role, kind=cell.fault, times=times, slow_s=SLOW_S)
    env = TrusteeToolEnv(
        base_url=base_url,
        model=cell.model,
        catalog=catalog,
        timeout=timeout_for(cell.fault),
        max_retries=MAX_RETRIES,
        max_repairs=MAX_REPAIRS,
        task_attempts=TASK_ATTEMPTS,
        aspects={"num_calls": 1, "num_turns": 1, "num_tools": 3, "strictness": 2},
        raise_on_sim_fault=cell.mode == "strict",
        **override,
    )

    async def phase(index: int) -> None:
        if role_server is not None and FIRST_CALL_PHASE[cell.role] == index:
            await asyncio.to_thread(role_server.stop)

    started = time.perf_counter()
    try:
        await phase(0)
        _obs, info = await env.areset(seed=11)
        actions: list[Any] = ["Done: I did what you asked."]
        task = env.episode.task
        if task is not None:
            expected = task.expected_calls[0]
            call = ToolCall(id="c", name=expected.name, arguments=dict(expected.arguments))
            actions.insert(0, render_tool_calls([call], "hermes"))
        for index, action in enumerate(actions, start=1):
            await phase(index)
            _obs, _reward, terminated, truncated, info = await env.astep(action)
            if terminated or truncated:
                break
        cell.info = info
    except Exception as err:  # strict mode raises on purpose; anything else is a finding
        cell.raised = err
    finally:
        cell.elapsed_s = time.perf_counter() - started
        cell.usage = env.stats["usage"].timing_view()
        env.close()
        if role_server is not None:
            await asyncio.to_thread(role_server.stop)
    _describe(cell)


def _describe(cell: Cell) -> None:
    mine = cell.usage.get(cell.role, {})
    if cell.raised is not None:
        cell.outcome = f"raises `{type(cell.raised).__name__}`"
        cell.counters = f"`{type(cell.raised).__name__}.reason` = {getattr(cell.raised, 'reason', '?')}"
        return
    fault = cell.info.get("sim_fault")
    if fault:
        cell.outcome = f"sim fault `{fault['role']}/{fault['reason']}`"
        cell.counters = f"`sim_fault.attempts` = {fault['attempts']}"
        return
    cell.outcome = "recovered"
    counted = [f"`{name}` = {mine.get(name, 0)}" for name in ("retries", "repairs") if mine.get(name)]
    cell.counters = ", ".join(counted) or "none (answer accepted as sent)"


def _modes(fault: str) -> tuple[str, ...]:
    return ("always", "strict") if fault in SERVER_FAULTS else ("once", "always", "strict")


def _applies(role: str, fault: str) -> bool:
    return fault != "out_of_range" or role == "judge"


async def _run_all(catalog: Catalog) -> list[Cell]:
    router = Router()
    cells = [
        Cell(role, fault, mode) for fault in FAULTS for role in ROLES if _applies(role, fault) for mode in _modes(fault)
    ]
    with FakeLLMServer(router) as server:
        limit = asyncio.Semaphore(12)

        async def one(cell: Cell) -> None:
            async with limit:
                await _run(cell, server.base_url, catalog, router)

        # 10 MB answers hold the server's and the client's loop for a while: played alone, after the others.
        await asyncio.gather(*(one(cell) for cell in cells if cell.fault != "huge_answer"))
        for cell in (c for c in cells if c.fault == "huge_answer"):
            await _run(cell, server.base_url, catalog, router)
    return cells


def _render(cells: list[Cell]) -> str:
    by_key = {(c.role, c.fault, c.mode): c for c in cells}
    lines = [
        "# Fault matrix",
        "",
        "<!-- generated by tests/test_fault_matrix.py; regenerate with "
        "UPDATE_FAULT_MATRIX=1 pytest tests/test_fault_matrix.py -->",
        "",
        "What happens when the server behind one simulated role fails, for every role and every fault. Each cell",
        "is one episode against the scripted server (`trustee_env.testing.FakeLLMServer`, faults from",
        "`trustee_env.faults`) that calls all four roles: reset (task generator), a tool call (tool simulator),",
        "a text reply (user simulator, then the judge).",
        "",
        f"Configuration: `timeout={TIMEOUT}`, `max_retries={MAX_RETRIES}`, `max_repairs={MAX_REPAIRS}`, "
        f"`task_attempts={TASK_ATTEMPTS}` (`timeout={HUGE_TIMEOUT}` for the 10 MB answers, played one at a time:",
        "moving and parsing 10 MB takes ~0.5 s on a busy 2-core machine); slow faults keep the client waiting",
        f"{SLOW_S} s.",
        "",
        "* **once**: only the role's first request goes wrong (default mode). *recovered* = the episode ended",
        "  normally; the counter is the role's `retries` (transport, in `env.unwrapped.stats['usage']` and the",
        "  JSONL) or `repairs` (re-asks after an invalid answer, also in `info['usage']`).",
        "* **always**: every request of the role goes wrong (default mode): the episode ends truncated with",
        "  reward 0 and `info['sim_fault'] = {role, reason, attempts, message}`; `env.unwrapped.stats['sim_faults']`",
        "  counts it. No exception escapes.",
        "* **strict**: as *always* with `raise_on_sim_fault=True`: the exception raised (its `reason` is the",
        "  label *always* would give).",
        "* **time**: seconds from reset to the end of the episode (once / always), measured on the run that",
        "  wrote this file; **budget**: the role's configured worst case, task attempts × (repairs + 1) ×",
        f"  ((retries + 1) × timeout + longest backoffs) = {request_worst_s():.2f} s per request. The test fails",
        f"  if an episode takes longer than its budget + {SLACK_S:.0f} s.",
        "",
        "| fault | role | once | always | strict | counter (once; always) | time (s) | budget (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fault, what in FAULTS.items():
        for role in ROLES:
            if not _applies(role, fault):
                continue
            once = by_key.get((role, fault, "once"))
            always = by_key[(role, fault, "always")]
            strict = by_key[(role, fault, "strict")]
            counters = f"{once.counters if once else '—'}; {always.counters}"
            times = f"{once.elapsed_s:.2f} s / " if once else "— / "
            times += f"{always.elapsed_s:.2f} s"
            lines.append(
                f"| `{fault}`: {what} | {role} | {once.outcome if once else '—'} | {always.outcome} | "
                f"{strict.outcome} | {counters} | {times} | ≤ {budget_s(role, fault):.1f} |"
            )
    lines += [
        "",
        "`out_of_range` applies to the judge only (its scores and verdict have a range).",
        "",
        "What the table means for training, and what it does not cover: docs/reliability.md.",
        "",
    ]
    return "\n".join(lines)


def _masked(text: str) -> str:
    """The document without its measured times (they differ on every run)."""
    return re.sub(r"\d+\.\d\d s", "t s", text)


@pytest.fixture(scope="module")
def cells(mock_catalog: Catalog) -> list[Cell]:
    return asyncio.run(_run_all(mock_catalog))


def test_no_exception_escapes_outside_strict_mode(cells: list[Cell]):
    escaped = [(c.role, c.fault, c.mode, repr(c.raised)) for c in cells if c.mode != "strict" and c.raised]
    assert escaped == []


def test_a_single_fault_is_recovered_and_counted(cells: list[Cell]):
    for cell in (c for c in cells if c.mode == "once"):
        assert cell.outcome == "recovered", (cell.role, cell.fault, cell.info.get("sim_fault"))
        assert cell.info["termination"] == "user_satisfied", (cell.role, cell.fault)


# A 10 MB string inside a tool result passes: results are validated against the tool's own result schema,
# not the bounded answer schema the decoder is given (tool_simulator.ToolSimulator.problems). With a grammar-
# honouring server it cannot happen; with one that ignores the schema it reaches the observation and every
# later prompt. Tested below as a known gap.
KNOWN_GAPS = {("tool", "huge_answer")}


def test_a_persistent_fault_is_labelled_with_its_role(cells: list[Cell]):
    for cell in (c for c in cells if c.mode == "always" and (c.role, c.fault) not in KNOWN_GAPS):
        fault = cell.info.get("sim_fault")
        assert fault is not None, (cell.role, cell.fault, cell.outcome)
        assert fault["role"] == cell.role and fault["reason"], (cell.role, cell.fault, fault)
        assert cell.info["termination"] == "sim_fault"


def test_strict_mode_raises_a_trustee_error_with_the_same_label(cells: list[Cell]):
    labels = {(c.role, c.fault): (c.info.get("sim_fault") or {}).get("reason") for c in cells if c.mode == "always"}
    for cell in (c for c in cells if c.mode == "strict" and (c.role, c.fault) not in KNOWN_GAPS):
        assert isinstance(cell.raised, TrusteeError), (cell.role, cell.fault, cell.raised)
        assert getattr(cell.raised, "reason", None) == labels[(cell.role, cell.fault)]


def test_a_10mb_tool_result_is_refused(cells: list[Cell]):
    cell = next(c for c in cells if (c.role, c.fault, c.mode) == ("tool", "huge_answer", "always"))
    assert cell.info.get("sim_fault") is not None, "the 10 MB tool result was accepted into the episode"


def test_every_episode_ends_within_its_configured_budget(cells: list[Cell]):
    late = [
        (c.role, c.fault, c.mode, round(c.elapsed_s, 2))
        for c in cells
        if c.elapsed_s > budget_s(c.role, c.fault) + SLACK_S
    ]
    assert late == []


def test_the_published_matrix_is_current(cells: list[Cell]):
    text = _render(cells)
    if UPDATE:
        DOC.write_text(text, encoding="utf-8")
    assert _masked(DOC.read_text(encoding="utf-8")) == _masked(text), (
        "docs/fault-matrix.md is stale: regenerate it with UPDATE_FAULT_MATRIX=1 pytest tests/test_fault_matrix.py"
    )
