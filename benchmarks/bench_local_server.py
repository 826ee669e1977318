"""The embedded local model server, measured: start-up, episode speed, slots, sim faults, repairs (JSON).

Runs real episodes against a real llama.cpp server serving the bundled SmolLM2-135M-Instruct, with the
same model as the policy (as ``trustee demo`` does):

* ``startup_s``: seconds from spawning the server to ``/v1/models`` answering;
* ``seconds_per_episode``: at concurrency 1;
* ``episodes_per_min``: with 1 server slot at concurrency 1, and with 4 slots at concurrency 4
  (needs ``llama-server``: on PATH or ``TRUSTEE_LLAMA_SERVER``; the Python server has one slot);
* ``sim_fault_rate`` and ``repair_fraction`` over ``--episodes`` episodes (fraction of structured
  simulator calls that needed at least one repair round-trip);
* ``sim_fault_reasons``: each fault's role, reason and the start of its message (why it failed);
* ``tool_simulator``: the tool role's faults per episode and per call, and its repairs per call.

Usage: ``python benchmarks/bench_local_server.py [--episodes 20] [--engine llama-cpp-python]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from trustee_env.env import TrusteeToolEnv
from trustee_env.parsing import render_tool_calls
from trustee_env.rollout import LMPolicy, run_episodes
from trustee_env.schemas import ToolCall
from trustee_env.serve.local import LocalServer, ServerSpec, pick_engine
from trustee_env.testing import example_for
from trustee_env.trajectory import read_trajectories


class ProbePolicy(LMPolicy):
    """The LM policy, except that its first message calls the first offered tool with example arguments.

    SmolLM2-135M as a policy rarely writes a tool call, which would leave the tool simulator unmeasured.
    """

    async def act(self, observation: dict[str, Any], *, seed: int, usage: Any) -> dict[str, Any]:
        if not any(m["role"] == "assistant" for m in observation["messages"]) and observation["tools"]:
            tool = observation["tools"][0]["function"]
            call = ToolCall(id="probe", name=tool["name"], arguments=example_for(tool["parameters"]))
            return {"role": "assistant", "content": render_tool_calls([call], "hermes")}
        return await super().act(observation, seed=seed, usage=usage)


POLICIES = {"lm": LMPolicy, "probe": ProbePolicy}


def run_batch(
    server: LocalServer,
    seeds: list[int],
    concurrency: int,
    out: Path,
    options: dict[str, Any],
    policy_name: str = "probe",
) -> dict[str, Any]:
    env = TrusteeToolEnv(base_url=server.base_url, model=server.model_name, trajectory_path=str(out), **options)
    policy = POLICIES[policy_name](env.config)
    t0 = time.perf_counter()
    summaries = run_episodes(env, policy, seeds, concurrency=concurrency)
    elapsed = time.perf_counter() - t0
    env.close()
    return {"episodes": len(summaries), "elapsed_s": round(elapsed, 1), "summaries": summaries}


def repair_stats(path: Path) -> dict[str, Any]:
    calls = repaired = 0
    per_role: dict[str, dict[str, int]] = {}
    for record in read_trajectories(path):
        for role, usage in record["usage"].items():
            if role == "policy":
                continue
            entry = per_role.setdefault(role, {"calls": 0, "repairs": 0})
            entry["calls"] += usage["calls"]
            entry["repairs"] += usage["repairs"]
            calls += usage["calls"]
            repaired += usage["repairs"]
    return {
        "simulator_calls": calls,
        "repair_round_trips": repaired,
        "per_role": per_role,
        "repair_round_trips_per_call": round(repaired / calls, 3) if calls else None,
    }


def tool_stats(path: Path) -> dict[str, Any]:
    """The tool simulator's own figures: faults per episode and per call, repairs per call."""
    episodes = calls = repairs = faults = 0
    for record in read_trajectories(path):
        episodes += 1
        usage = record["usage"].get("tool", {})
        calls += usage.get("calls", 0)
        repairs += usage.get("repairs", 0)
        faults += int(bool(record["sim_fault"]) and record["sim_fault"]["role"] == "tool")
    return {
        "episodes": episodes,
        "calls": calls,
        "faults": faults,
        "fault_rate_per_episode": round(faults / episodes, 3) if episodes else None,
        "fault_rate_per_call": round(faults / calls, 3) if calls else None,
        "repairs_per_call": round(repairs / calls, 3) if calls else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--engine", default="llama-cpp-python")
    parser.add_argument("--slots-engine", default="auto", help="engine for the 1-vs-4 slot comparison")
    parser.add_argument("--difficulty", type=float, default=10.0)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--ungrounded", default="ground", choices=["ground", "reject", "relax"])
    parser.add_argument(
        "--policy",
        default="probe",
        choices=sorted(POLICIES),
        help="probe: first message calls a tool (so every simulator role is exercised); lm: the LM only",
    )
    parser.add_argument("--skip-slots", action="store_true")
    args = parser.parse_args(argv)
    options = {
        "difficulty": args.difficulty,
        "tool_format": "hermes",
        "max_steps": args.max_steps,
        "ungrounded_arguments": args.ungrounded,
        "policy": {"max_tokens": 160},
    }
    tmp = Path(tempfile.mkdtemp(prefix="trustee-bench-"))
    result: dict[str, Any] = {
        "model": "SmolLM2-135M-Instruct Q4_1",
        "cpu_count": os.cpu_count(),
        "options": options,
        "policy": args.policy,
    }

    with LocalServer(ServerSpec(engine=pick_engine(args.engine))) as server:
        result["engine"] = server.spec.engine
        result["startup_s"] = round(server.startup_s or 0.0, 2)
        batch = run_batch(server, list(range(args.episodes)), 1, tmp / "c1.jsonl", options, args.policy)
    summaries = batch["summaries"]
    faults = [s for s in summaries if s["sim_fault"]]
    result["seconds_per_episode"] = round(batch["elapsed_s"] / len(summaries), 1)
    result["episodes_per_min_python_server"] = round(60 * len(summaries) / batch["elapsed_s"], 2)
    result["sim_fault_rate"] = round(len(faults) / len(summaries), 3)
    result["sim_faults_by_role"] = {
        role: sum(1 for s in faults if s["sim_fault"]["role"] == role)
        for role in ("task_generator", "user", "tool", "judge")
    }
    result["mean_reward_non_faulted"] = round(
        sum(s["reward"] for s in summaries if not s["sim_fault"]) / max(1, len(summaries) - len(faults)), 3
    )
    result["sim_fault_reasons"] = [
        {"role": s["sim_fault"]["role"], "reason": s["sim_fault"]["reason"], "message": s["sim_fault"]["message"][:200]}
        for s in faults
    ]
    result["repairs"] = repair_stats(tmp / "c1.jsonl")
    result["tool_simulator"] = tool_stats(tmp / "c1.jsonl")

    try:
        slots_engine = None if args.skip_slots else pick_engine(args.slots_engine)
    except Exception as err:  # no llama-server: report why
        slots_engine = None
        result["slots"] = f"skipped: {err}"
    if slots_engine == "llama-server":
        slots: dict[str, Any] = {}
        seeds = list(range(1000, 1008))
        for parallel in (1, 4):
            with LocalServer(ServerSpec(engine="llama-server", parallel=parallel)) as server:
                run = run_batch(server, seeds, parallel, tmp / f"slots{parallel}.jsonl", options, args.policy)
            slots[f"{parallel}_slots"] = {
                "concurrency": parallel,
                "episodes": run["episodes"],
                "elapsed_s": run["elapsed_s"],
                "episodes_per_min": round(60 * run["episodes"] / run["elapsed_s"], 2),
            }
        result["slots"] = slots
    elif slots_engine is not None and not args.skip_slots:
        result["slots"] = (
            "skipped: llama-server not found (on PATH or TRUSTEE_LLAMA_SERVER); the Python server has 1 slot"
        )
    result["trajectories"] = str(tmp)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
