"""One episode as an async state machine, independent of Gymnasium.

```
reset ─► task (generated, or given by a GRPO group) ─► AWAITING_AGENT
step(assistant message)
  ├─ parse errors      ─► feedback tool messages (never exceptions)
  ├─ tool calls        ─► code validates arguments ─► ToolSimulator ─► result + state patch
  ├─ text reply        ─► UserSimulator ─► reply | done
  └─ end (user done / budget / sim fault) ─► checks + Judge ─► DONE
```

The episode owns its budget (DESIGN, decision 2): user done -> terminated; step or
tool-call budget -> truncated with the judge still run and the reward capped at 0;
simulator failure -> truncated, reward 0, ``sim_fault``, no judge.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from trustee_env.catalog import Catalog
from trustee_env.checks import CallRecord, match_expected, run_checks, validate_call
from trustee_env.config import TrusteeConfig
from trustee_env.difficulty import budget_for
from trustee_env.errors import EpisodeStateError, LLMError
from trustee_env.llm.usage import Usage
from trustee_env.log import sim_fault as log_sim_fault
from trustee_env.parsing import as_assistant_message, parse_message
from trustee_env.prompts import fence, render
from trustee_env.roles import Judge, TaskGenerator, ToolSimulator, UserSimulator, Verdict
from trustee_env.schemas import Aspects, Role, Task, ToolCall, canonical_json, derive_seed, json_copy
from trustee_env.spaces import Observation, StepInfo
from trustee_env.trajectory import SimFault, Timings, Trajectory

# as_assistant_message (now in parsing) and derive_seed (now in schemas) stay importable from here for one release.
__all__ = ["Episode", "Phase", "Roles", "StepOutput", "as_assistant_message", "derive_seed"]


class Phase(str, Enum):
    """Where an episode is in its life."""

    NEW = "new"
    """Created; ``reset`` not called yet."""
    AWAITING_AGENT = "awaiting_agent"
    """Waiting for the policy's next message."""
    DONE = "done"
    """Ended (terminated or truncated); only ``reset`` is allowed."""


@dataclass
class Roles:
    """The four simulator roles an episode uses."""

    task_generator: TaskGenerator
    user: UserSimulator
    tool: ToolSimulator
    judge: Judge


@dataclass
class StepOutput:
    """What ``Episode.step`` returns (Gymnasium's five-tuple, as fields)."""

    observation: dict[str, Any]
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


class Episode:
    """One simulated tool-use episode.

    Args:
        roles: the simulator roles.
        config: the environment's settings (budgets, tool format, trajectories).
        catalog: the tool pool tasks are drawn from.
        member: index inside a GRPO group (seeds each member's simulators apart).
    """

    def __init__(self, roles: Roles, config: TrusteeConfig, catalog: Catalog, *, member: int = 0) -> None:
        self.roles = roles
        self.config = config
        self.catalog = catalog
        self.member = member
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clear(seed=0, difficulty=config.difficulty, aspects=None, task=None)
        self.phase = Phase.NEW

    def _clear(self, *, seed: int, difficulty: float, aspects: Aspects | None, task: Task | None) -> None:
        """Every per-episode field, fresh: set once here for construction and for each reset."""
        self.seed = seed
        self.phase = Phase.AWAITING_AGENT
        self.usage = Usage()
        self.step_index = 0
        self.parse_errors = 0
        self.user_gate_overrides = 0
        self.records: list[CallRecord] = []
        self.transcript: list[str] = []
        self.messages: list[dict[str, Any]] = []
        self._reply_start = 0  # where the environment's answer to the last action begins in ``messages``
        self.state: dict[str, Any] = {}
        self.sim_fault: dict[str, Any] | None = None
        self.verdict: Verdict | None = None
        self.termination: str | None = None
        self.reward = 0.0
        self.started = time.perf_counter()
        self.finished: float | None = None
        self.busy_s = 0.0
        self._role_calls: dict[str, int] = {}
        self._tools_of: Task | None = None  # the task whose tools ``_tools_json`` holds
        self._tools_json = "[]"
        self.task = task
        self.difficulty = float(difficulty)
        self.aspects = aspects

    # ------------------------------------------------------------------ lifecycle

    async def reset(
        self,
        *,
        seed: int,
        difficulty: float,
        aspects: Aspects,
        task: Task | None = None,
        task_future: asyncio.Future[Task] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a new episode: generate (or take) a task and return ``(observation, info)``."""
        self._loop = asyncio.get_running_loop()
        self._clear(seed=seed, difficulty=difficulty, aspects=aspects, task=task)
        if task is None:
            try:
                self.task = await (
                    task_future if task_future is not None else self._generate_task(seed, difficulty, aspects)
                )
            except LLMError as err:
                self._fault(err)
        if self.task is not None:
            self.aspects = self.task.aspects
            self.difficulty = self.task.difficulty
            self.state = json_copy(self.task.initial_state)
            default_steps, default_calls = budget_for(self.task.aspects)
            self.max_steps = self.config.max_steps or default_steps
            self.max_tool_calls = self.config.max_tool_calls or default_calls
            self.messages = [
                {"role": "system", "content": self._system_prompt(self.task)},
                {"role": "user", "content": self.task.first_query},
            ]
            self.transcript.append(f"[user] {self.task.first_query}")
        self.busy_s = time.perf_counter() - self.started
        info = self._info()
        if self.sim_fault is not None:
            info["sim_fault"] = dict(self.sim_fault)
        return self.observation(), info

    async def _generate_task(self, seed: int, difficulty: float, aspects: Aspects) -> Task:
        return await self.roles.task_generator.generate_with_attempts(
            self.catalog, seed, difficulty, aspects, attempts=self.config.task_attempts, usage=self.usage
        )

    def _system_prompt(self, task: Task) -> str:
        if self.config.tool_format == "native":
            return task.system_prompt
        tools = [tool.to_openai() for tool in task.tools]
        template = f"policy_tools_{self.config.tool_format}.j2"
        return task.system_prompt + "\n\n" + render(template, self.config.prompt_dir, tools=tools).strip()

    def _check_phase(self) -> None:
        if self.phase is Phase.NEW:
            raise EpisodeStateError("step() called before reset(): call reset() to start an episode")
        if self.phase is Phase.DONE:
            raise EpisodeStateError(
                f"step() called after the episode ended ({self.termination}); call reset() to start a new one"
            )
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise EpisodeStateError(
                "this episode was started on another event loop; drive it with the same API (sync or async) throughout"
            )

    # ------------------------------------------------------------------ the step

    async def step(self, action: Any) -> StepOutput:
        """Apply one policy message and return what comes back."""
        message = as_assistant_message(action)
        self._check_phase()
        started = time.perf_counter()
        try:
            return await self._step(message)
        finally:
            self.busy_s += time.perf_counter() - started

    async def _step(self, message: dict[str, Any]) -> StepOutput:
        if self.task is None:  # the task itself could not be generated
            return await self._end("sim_fault", truncated=True)
        task = self.task
        self.step_index += 1
        self.messages.append(message)
        self._reply_start = len(self.messages)
        parsed = parse_message(
            message,
            step=self.step_index,
            tool_format=self.config.tool_format,
            max_chars=self.config.max_message_chars,
            max_calls=self.config.max_calls_per_step,
        )
        self.parse_errors += len(parsed.errors)
        if parsed.text:
            self.transcript.append(f"[assistant] {fence(parsed.text)}")

        for error in parsed.errors:
            self._tool_message(error.call_id, f"Error: {error.message}")
            self.transcript.append(f"[env] step {self.step_index}: unreadable tool call ({error.format})")

        for index, call in enumerate(parsed.calls):
            if len(self.records) >= self.max_tool_calls:
                for skipped in parsed.calls[index:]:  # every call gets an answer, even past the budget
                    self._tool_message(
                        skipped.id, f"Error: tool-call budget of {self.max_tool_calls} calls exhausted; not run."
                    )
                return await self._end("tool_budget", truncated=True)
            try:
                await self._run_call(task, call, index)
            except LLMError as err:
                self._fault(err)
                return await self._end("sim_fault", truncated=True)

        if not parsed.calls and not parsed.errors:
            try:
                turn = await self.roles.user.reply(
                    task, self.transcript, goal_met=self._goal_gate(), seed=self._seed_for(Role.USER), usage=self.usage
                )
            except LLMError as err:
                self._fault(err)
                return await self._end("sim_fault", truncated=True)
            self.messages.append({"role": "user", "content": turn.message})
            self.transcript.append(f"[user] {turn.message}")
            if turn.gated_from is not None:
                self.user_gate_overrides += 1
                self.transcript.append(f"[env] the user's '{turn.gated_from}' became '{turn.status}' (goal gate)")
            if turn.done:
                return await self._end(f"user_{turn.status}", truncated=False)

        if self.step_index >= self.max_steps:
            return await self._end("step_budget", truncated=True)
        return StepOutput(self.observation(), 0.0, False, False, self._info())

    async def _run_call(self, task: Task, call: ToolCall, index: int) -> None:
        step = self.step_index
        # An unknown tool's name is policy text like any other: fenced (a known one is the catalog's).
        label = f"step {step} #{index} {call.name if task.tool(call.name) else fence(call.name)}"
        status, error = validate_call(task.tools, call)
        if status != "ok" or error is not None:
            self.records.append(CallRecord(step=step, index=index, call=call, status=status, error=error))
            self._tool_message(call.id, error or "Error: invalid call")
            outcome = "unknown tool" if status == "unknown_tool" else "invalid arguments"
            self.transcript.append(f"[assistant calls] {label}({fence(call.canonical_arguments())}) -> {outcome}")
            return
        spec = task.tool(call.name)
        assert spec is not None  # validate_call found it
        previous = [line for line in self.transcript if line.startswith(("[assistant calls]", "[tool]"))][-12:]
        result, self.state = await self.roles.tool.call(
            spec,
            call,
            step=step,
            index=index,
            state=self.state,
            intent=task.intent,
            previous=previous,
            seed=self._seed_for(Role.TOOL),
            usage=self.usage,
        )
        self.records.append(CallRecord(step=step, index=index, call=call, status="ok", result=result))
        self._tool_message(call.id, json.dumps(result, ensure_ascii=False))
        self.transcript.append(f"[assistant calls] {label}({fence(call.canonical_arguments())})")
        self.transcript.append(f"[tool] {label} -> {fence(canonical_json(result))}")

    async def _end(self, reason: str, *, truncated: bool) -> StepOutput:
        self.termination = reason
        if self.sim_fault is None and self.task is not None:
            checks = run_checks(self.task, self.records, self.parse_errors, user_gave_up=reason == "user_gave_up")
            try:
                self.verdict = await self.roles.judge.score(
                    self.task,
                    self.transcript,
                    checks,
                    truncated=truncated,
                    seed=self._seed_for(Role.JUDGE),
                    usage=self.usage,
                )
                self.reward = self.verdict.reward
            except LLMError as err:
                self._fault(err)
                self.termination = "sim_fault"
        if self.sim_fault is not None:
            self.reward = 0.0
            truncated = True
        self.phase = Phase.DONE
        self.finished = time.perf_counter()
        return StepOutput(self.observation(), float(self.reward), not truncated, truncated, self._info(final=True))

    async def finish(self, reason: str = "agent_budget") -> StepOutput:
        """End the episode now, as truncated: the checks and the judge still run (reward capped at 0).

        For trainers whose own token or turn budget ran out mid-episode; ``reason`` becomes
        ``info["termination"]``.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"finish() needs a non-empty reason string, got {reason!r}")
        self._check_phase()
        if self.task is None:
            return await self._end("sim_fault", truncated=True)
        return await self._end(reason.strip(), truncated=True)

    def reply_messages(self) -> list[dict[str, Any]]:
        """Copies of the messages the environment added after the last action (after reset: system and user).

        Tool results, feedback and the simulated user's reply, in order: what a trainer appends as
        environment tokens after the policy's own turn.
        """
        return json_copy(self.messages[self._reply_start :])

    # ------------------------------------------------------------------ helpers

    def _goal_gate(self) -> bool | None:
        return self.goal_met() if self.config.user_goal_gate else None

    def goal_met(self) -> bool | None:
        """Has every expected call succeeded with matching arguments? None for a task that expects no calls.

        The simulated user's stop decision is bounded by this (the goal gate): it cannot give up once
        the goal is met, nor be satisfied while an expected call is missing.
        """
        if self.task is None or not self.task.expected_calls:
            return None
        return len(match_expected(self.task, self.records)) == len(self.task.expected_calls)

    def _fault(self, err: LLMError) -> None:
        if self.config.raise_on_sim_fault:
            self.phase = Phase.DONE
            self.termination = "sim_fault"
            self.finished = time.perf_counter()
        self.sim_fault = {
            "role": err.role or "unknown",
            "reason": err.reason,
            "attempts": err.attempts,
            "message": str(err)[:300],
        }
        log_sim_fault(self.sim_fault)  # rate-limited: a long run stays readable
        if self.config.raise_on_sim_fault:
            raise err

    def _seed_for(self, role: Role) -> int:
        count = self._role_calls.get(role.value, 0)
        self._role_calls[role.value] = count + 1
        return derive_seed(self.seed, self.member, role.value, count)

    def _tool_message(self, call_id: str, content: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})

    def observation(self) -> Observation:
        """A fresh copy of what the policy sees: chat messages and the tools in OpenAI form.

        The tools are serialised once per task and decoded per observation: a private copy for the
        caller (never the catalog's shared schema dicts) at a fraction of a deep copy's cost.
        """
        if self._tools_of is not self.task:
            tools = [tool.to_openai() for tool in self.task.tools] if self.task else []
            self._tools_json = json.dumps(tools, ensure_ascii=False)
            self._tools_of = self.task
        return {"messages": json_copy(self.messages), "tools": json.loads(self._tools_json)}

    def _info(self, *, final: bool = False) -> StepInfo:
        info: StepInfo = {
            "task_id": self.task.task_id if self.task else None,
            "turn": self.step_index,
            "difficulty": self.difficulty,
            "aspects": self.aspects.model_dump() if self.aspects else None,
            "parse_errors": self.parse_errors,
            "tool_calls": len(self.records),
            "usage": self.usage.info_view(),
            "sim_fault": None,
        }
        if final:
            info.update(
                sim_fault=dict(self.sim_fault) if self.sim_fault else None,
                verdict=self.verdict.model_dump(mode="json") if self.verdict else None,
                task=self.task.model_dump(mode="json") if self.task else None,
                termination=self.termination,
                world_state=json_copy(self.state),
            )
        return info

    @property
    def wall_s(self) -> float:
        """Seconds from reset to the end (or to now)."""
        return (self.finished or time.perf_counter()) - self.started

    def trajectory(self, **extra: Any) -> Trajectory:
        """The full record of a finished episode, for the JSONL log (``extra``: e.g. ``slot``, ``group_id``)."""
        return Trajectory(
            episode_id=derive_seed(self.seed, self.member, self.task.task_id if self.task else None),
            seed=self.seed,
            member=self.member,
            task=self.task,
            difficulty=self.difficulty,
            aspects=self.aspects,
            messages=json_copy(self.messages),
            calls=list(self.records),
            world_state=json_copy(self.state),
            termination=self.termination,
            reward=self.reward,
            verdict=self.verdict,
            sim_fault=SimFault(**self.sim_fault) if self.sim_fault else None,
            parse_errors=self.parse_errors,
            user_gate_overrides=self.user_gate_overrides,
            usage=self.usage.timing_view(),
            timings=Timings(
                wall_s=round(self.wall_s, 4),
                env_busy_s=round(self.busy_s, 4),
                lm_wait_s=round(self.usage.latency_s, 4),
                env_overhead_s=round(max(0.0, self.busy_s - self.usage.latency_s), 4),
            ),
            transcript=list(self.transcript),
            created=time.time(),
            **extra,
        )
