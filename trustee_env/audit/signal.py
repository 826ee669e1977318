"""The signal section: does the reward tell good from bad? Reference agents on the same seeds.

Runs the agents of :mod:`trustee_env.probes` (``oracle``, ``null``, ``wrong_tool``, ``wrong_argument``)
on the same seeds at several difficulties and reports, per agent and per difficulty: P(reward = 1) among
completed (non-sim-fault) episodes, mean reward, sim-fault rate (and by role), termination reasons, and how
often the goal gate overruled the simulated user. The same seed gives the same task to every agent (task
generation is cached), so the table compares behaviours, not luck.

Shared by ``trustee audit`` (its "signal" section) and ``benchmarks/bench_signal.py`` (the standalone
discrimination benchmark). Targets (issue "Rewards you can trust"): oracle P(reward = 1) >= 0.8,
null <= 0.05, wrong_tool and wrong_argument <= 0.1, sim faults <= 0.10; ``targets_met`` reports each.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import ExitStack
from typing import Any

from trustee_env.env import TrusteeToolEnv
from trustee_env.llm.usage import Usage
from trustee_env.probes import ProbeAgent, make_agent

__all__ = ["MAX_SIM_FAULT_RATE", "TARGETS", "gate_report", "play", "report", "run_all", "summarise"]

TARGETS = {"oracle": (">=", 0.8), "null": ("<=", 0.05), "wrong_tool": ("<=", 0.1), "wrong_argument": ("<=", 0.1)}
MAX_SIM_FAULT_RATE = 0.10


async def play(env: TrusteeToolEnv, agent: ProbeAgent, *, seed: int, difficulty: float) -> dict[str, Any]:
    """One episode of ``agent``; the row of the table it contributes."""
    obs, info = await env.areset(seed=seed, options={"difficulty": difficulty})
    task = env.episode.task
    if task is not None and not agent.applicable(task):
        return {"seed": seed, "difficulty": difficulty, "applicable": False}
    reward, terminated, truncated = 0.0, False, False
    while not (terminated or truncated):
        action = agent.act(task, obs) if task is not None else ""
        obs, reward, terminated, truncated, info = await env.astep(action)
    verdict = info.get("verdict") or {}
    return {
        "seed": seed,
        "difficulty": difficulty,
        "applicable": True,
        "reward": reward,
        "termination": info.get("termination"),
        "sim_fault": info.get("sim_fault"),
        "judge_verdict": verdict.get("judge_verdict"),
        "strictness": verdict.get("strictness"),
        "caps": [cap["detail"] for cap in verdict.get("caps", [])],
        "gate_overrides": env.episode.user_gate_overrides,
        "intent": task.intent if task else None,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one agent (or one agent at one difficulty)."""
    played = [row for row in rows if row["applicable"]]
    completed = [row for row in played if not row["sim_fault"]]
    faults = [row for row in played if row["sim_fault"]]
    wins = sum(1 for row in completed if row["reward"] >= 1)
    return {
        "episodes": len(played),
        "not_applicable": len(rows) - len(played),
        "completed": len(completed),
        "p_reward_1": round(wins / len(completed), 3) if completed else None,
        "mean_reward": round(sum(row["reward"] for row in completed) / len(completed), 3) if completed else None,
        "sim_fault_rate": round(len(faults) / len(played), 3) if played else None,
        "sim_faults_by_role": dict(Counter(row["sim_fault"]["role"] for row in faults)),
        "sim_fault_reasons": dict(Counter(row["sim_fault"]["reason"] for row in faults)),
        "terminations": dict(Counter(row["termination"] for row in played)),
        "judge_said_1": sum(1 for row in completed if row["judge_verdict"] == 1),
        "gate_overrides": sum(row["gate_overrides"] for row in played),
    }


async def run_all(
    names: list[str],
    options: dict[str, Any],
    jobs: list[tuple[float, int]],
    gate: dict[str, Any],
    out: str | None = None,
    usage: Usage | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every agent on every (difficulty, seed), task by task: the first agent's episode generates the task and
    the others replay it from the cache, so a run cut short still compares every agent on the tasks it reached.

    ``gate``: filled with the task gate's counts (what the task generator saw); ``out``: rows appended as they come;
    ``usage``: every env's per-role LM usage is added to it.
    """
    agents = {name: make_agent(name, options.get("tool_format", "native")) for name in names}
    per_agent: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with ExitStack() as stack:
        envs = {name: stack.enter_context(TrusteeToolEnv(**options)) for name in names}
        for difficulty, seed in jobs:
            for name in names:
                row = await play(envs[name], agents[name], seed=seed, difficulty=difficulty)
                per_agent[name].append(row)
                if out:
                    with open(out, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps({"agent": name, **row}) + "\n")
        for key, value in envs[names[0]].roles.task_generator.gate_stats.as_dict().items():
            gate[key] = value
        if usage is not None:
            for env in envs.values():
                usage.merge(env.stats["usage"])
    return per_agent


def report(per_agent: dict[str, list[dict[str, Any]]], difficulties: list[float]) -> dict[str, Any]:
    """The JSON report: overall and per-difficulty figures per agent, and whether each target is met."""
    agents: dict[str, Any] = {}
    for name, rows in per_agent.items():
        entry = summarise(rows)
        entry["by_difficulty"] = {
            str(d): summarise([row for row in rows if row["difficulty"] == d]) for d in difficulties
        }
        agents[name] = entry
    targets: dict[str, Any] = {}
    for name, (op, bound) in TARGETS.items():
        value = agents.get(name, {}).get("p_reward_1")
        if value is not None:
            targets[f"{name}_p_reward_1 {op} {bound}"] = value >= bound if op == ">=" else value <= bound
    all_rows = [row for rows in per_agent.values() for row in rows if row["applicable"]]
    fault_rate = sum(1 for row in all_rows if row["sim_fault"]) / len(all_rows) if all_rows else 0.0
    targets[f"sim_fault_rate <= {MAX_SIM_FAULT_RATE}"] = fault_rate <= MAX_SIM_FAULT_RATE
    return {"agents": agents, "sim_fault_rate": round(fault_rate, 3), "targets_met": targets}


def gate_report(gate: dict[str, Any]) -> dict[str, Any]:
    """The task gate's pass rates over the generated tasks (see ``TaskGenerator.gate_stats``)."""
    drafts, requests, tasks = gate.get("drafts_checked", 0), gate.get("requests", 0), gate.get("tasks", 0)
    return {
        **gate,
        "draft_pass_rate": round(gate.get("drafts_passed", 0) / drafts, 3) if drafts else None,
        "first_draft_pass_rate": round(gate.get("first_draft_passed", 0) / requests, 3) if requests else None,
        "task_fault_rate": round(gate.get("gave_up", 0) / (tasks + gate.get("gave_up", 0)), 3)
        if tasks + gate.get("gave_up", 0)
        else None,
        "near_duplicate_rate": round(gate.get("near_duplicates_seen", 0) / tasks, 3) if tasks else None,
    }
