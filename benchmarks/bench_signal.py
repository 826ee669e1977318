"""Does the reward tell good from bad? Reference agents on the same seeds, reward table as JSON.

Runs the agents of :mod:`trustee_env.probes` (``oracle``, ``null``, ``wrong_tool``,
``wrong_argument``) on the same seeds at several difficulties and reports, per agent and per
difficulty: P(reward = 1) among completed (non-sim-fault) episodes, mean reward, sim-fault rate
(and by role), termination reasons, and how often the goal gate overruled the simulated user.
The same seed gives the same task to every agent (task generation is cached), so the table
compares behaviours, not luck.

Targets (issue "Rewards you can trust"): oracle P(reward = 1) >= 0.8, null <= 0.05,
wrong_tool and wrong_argument <= 0.1, sim faults <= 0.10. ``targets_met`` reports each.

Usage:
    python benchmarks/bench_signal.py --seeds 8 --difficulties 10 50        # embedded llama.cpp server
    python benchmarks/bench_signal.py --base-url http://host:8000/v1 --model Qwen/Qwen3-8B
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

# The table's code lives in the package (``trustee audit`` runs it as its "signal" section); re-exported here.
from trustee_env.audit.signal import (  # noqa: F401
    MAX_SIM_FAULT_RATE,
    TARGETS,
    gate_report,
    play,
    report,
    run_all,
    summarise,
)
from trustee_env.probes import AGENTS
from trustee_env.serve.local import LocalServer, ServerSpec, pick_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds per difficulty")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--difficulties", type=float, nargs="+", default=[10.0, 50.0])
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint; default: start the embedded server")
    parser.add_argument("--model", help="model name at --base-url (default: ask the server)")
    parser.add_argument("--engine", default="llama-cpp-python", help="embedded server engine (auto, llama-server, ...)")
    parser.add_argument("--threads", type=int, help="embedded server threads (default: every core)")
    parser.add_argument("--ungrounded", default="ground", choices=["ground", "reject", "relax"])
    parser.add_argument("--max-steps", type=int, help="policy messages per episode (default: from the task)")
    parser.add_argument("--out", help="also write the per-episode rows (JSONL) here")
    parser.add_argument("--cache", help="sqlite record/replay cache to use (default: a fresh one)")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="trustee-signal-"))
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    options: dict[str, Any] = {
        # The same seed replays the same task for every agent (and a rerun with --cache resumes).
        "cache_path": args.cache or str(tmp / "cache.sqlite"),
        "cache_mode": "read_write",
        "trajectory_path": str(tmp / "trajectories.jsonl"),
        "ungrounded_arguments": args.ungrounded,
    }
    if args.max_steps:
        options["max_steps"] = args.max_steps
    result: dict[str, Any] = {
        "seeds": seeds,
        "difficulties": args.difficulties,
        "cpu_count": os.cpu_count(),
        "options": {key: value for key, value in options.items() if not key.endswith("_path")},
    }
    started = time.perf_counter()
    with ExitStack() as stack:
        if args.base_url:
            options.update(base_url=args.base_url, model=args.model)
            result["endpoint"] = {"base_url": args.base_url, "model": args.model}
        else:
            spec = ServerSpec(engine=pick_engine(args.engine))
            if args.threads:
                spec.threads = args.threads
            server = stack.enter_context(LocalServer(spec))
            options.update(base_url=server.base_url, model=server.model_name)
            result["endpoint"] = {"engine": server.spec.engine, "model": "SmolLM2-135M-Instruct (embedded)"}
        gate: dict[str, Any] = {}
        jobs = [(difficulty, seed) for difficulty in args.difficulties for seed in seeds]
        if args.out:
            Path(args.out).write_text("")
        per_agent = asyncio.run(run_all(args.agents, options, jobs, gate, args.out))
    result.update(report(per_agent, args.difficulties))
    result["task_gate"] = gate_report(gate)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["trajectories"] = options["trajectory_path"]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
