"""The task generator's validity gate on the embedded model: how often drafts pass, and why not (JSON).

Starts the bundled SmolLM2-135M-Instruct behind a local llama.cpp server and asks the
:class:`~trustee_env.roles.task_generator.TaskGenerator` for ``--tasks`` tasks spread over a few
difficulties, with every gate check on (``records_exist`` and ``near_duplicate`` included). Prints:

* ``first_draft_pass_rate``: generation requests whose first answer passed the gate;
* ``pass_rate_after_repair``: requests that passed within the client's repair round trips;
* ``task_sim_fault_rate``: tasks that found no valid draft within ``--attempts`` regenerations
  (each would be a ``task_generator`` sim fault);
* ``failed_drafts_per_check``: drafts that failed each check (a draft may fail several);
* ``near_duplicate_rate``: accepted tasks whose first candidate was a near-duplicate;
* per difficulty, the same figures, plus a few accepted tasks and failure messages to read.

The cache is off, so every draft is a real model answer.

Usage: ``python benchmarks/bench_task_gate.py [--tasks 12] [--difficulties 10,50,90] [--attempts 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from trustee_env.catalog import Catalog
from trustee_env.config import TrusteeConfig
from trustee_env.difficulty import aspects_for
from trustee_env.errors import LLMError
from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.roles.task_generator import GateStats, TaskGenerator
from trustee_env.schemas import Aspects, Role, Task, ToolSpec
from trustee_env.serve.local import LocalServer, ServerSpec


class LoggedGenerator(TaskGenerator):
    """A TaskGenerator that logs every generation request to stderr (a run takes many minutes)."""

    async def generate(self, tools: list[ToolSpec], aspects: Aspects, **kwargs: Any) -> Task:
        t0 = time.perf_counter()
        drafts = self.gate_stats.drafts_checked
        try:
            task = await super().generate(tools, aspects, **kwargs)
        except LLMError as err:
            outcome = f"failed: {str(err)[:160]}"
            raise
        else:
            outcome = "passed" + (f" ({'; '.join(task.notes)})" if task.notes else "")
            return task
        finally:
            print(
                f"  request: {self.gate_stats.drafts_checked - drafts} draft(s) checked, {outcome}, "
                f"{time.perf_counter() - t0:.0f}s",
                file=sys.stderr,
                flush=True,
            )


def rates(stats: GateStats, tasks: int) -> dict[str, Any]:
    """The headline fractions of one GateStats."""
    requests = max(1, stats.requests - stats.cache_hits)
    return {
        "tasks_asked": tasks,
        "requests": stats.requests,
        "drafts_checked": stats.drafts_checked,
        "first_draft_pass_rate": round(stats.first_draft_passed / requests, 3),
        "pass_rate_after_repair": round((stats.first_draft_passed + stats.passed_after_repair) / requests, 3),
        "task_sim_fault_rate": round(stats.gave_up / max(1, tasks), 3),
        "failed_drafts_per_check": dict(sorted(stats.failed.items())),
        "near_duplicate_rate": round(stats.near_duplicates / max(1, stats.tasks), 3),
        "regenerations": stats.regenerations,
    }


async def run(args: argparse.Namespace, base_url: str, model: str) -> dict[str, Any]:
    config = TrusteeConfig(base_url=base_url, model=model, max_retries=0, timeout=args.timeout)
    endpoint = config.endpoint(Role.TASK_GENERATOR)
    catalog = Catalog.default()
    difficulties = [float(d) for d in args.difficulties.split(",")]
    overall = LoggedGenerator(
        LLMClient(Role.TASK_GENERATOR.value, endpoint),
        require_records=True,
        dedup_window=args.dedup_window,
    )
    per_difficulty: dict[str, Any] = {}
    started = time.perf_counter()
    for d_index, difficulty in enumerate(difficulties):
        count = args.tasks // len(difficulties) + (d_index < args.tasks % len(difficulties))
        before = GateStats(**{**overall.gate_stats.as_dict(), "failed": dict(overall.gate_stats.failed)})
        examples: list[dict[str, Any]] = []
        failures: list[str] = []
        for index in range(count):
            seed = args.seed + 1000 * d_index + index
            aspects = aspects_for(difficulty)
            t0 = time.perf_counter()
            try:
                task = await overall.generate_with_attempts(
                    catalog, seed, difficulty, aspects, attempts=args.attempts, usage=Usage()
                )
                examples.append(
                    {
                        "intent": task.intent,
                        "first_query": task.first_query,
                        "calls": [call.name for call in task.expected_calls],
                        "alternatives": [call.alternatives for call in task.expected_calls if call.alternatives],
                        "notes": task.notes,
                    }
                )
                outcome = "ok"
            except LLMError as err:
                failures.append(str(err)[:400])
                outcome = f"fault ({type(err).__name__})"
            print(
                f"difficulty {difficulty:g} task {index + 1}/{count}: {outcome} in {time.perf_counter() - t0:.0f}s; "
                f"so far {json.dumps(overall.gate_stats.as_dict())}",
                file=sys.stderr,
                flush=True,
            )
        now = overall.gate_stats
        delta = GateStats(
            **{name: getattr(now, name) - getattr(before, name) for name in now.as_dict() if name != "failed"},
            failed={k: v - before.failed.get(k, 0) for k, v in now.failed.items() if v - before.failed.get(k, 0)},
        )
        per_difficulty[f"{difficulty:g}"] = {
            **rates(delta, count),
            "examples": examples[: args.show],
            "fault_messages": failures[: args.show],
        }
    return {
        "model": model,
        "engine": args.engine,
        "tasks": args.tasks,
        "difficulties": difficulties,
        "attempts": args.attempts,
        "max_repairs": endpoint.max_repairs,
        "elapsed_s": round(time.perf_counter() - started, 1),
        **rates(overall.gate_stats, args.tasks),
        "gate_stats": overall.gate_stats.as_dict(),
        "per_difficulty": per_difficulty,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--difficulties", default="10,50,90")
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--dedup-window", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=3, help="accepted tasks and fault messages shown per difficulty")
    parser.add_argument("--engine", default="llama-cpp-python")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per request (a shared CPU is slow)")
    args = parser.parse_args()
    spec = ServerSpec(engine=args.engine, threads=args.threads)
    with LocalServer(spec) as server:
        report = asyncio.run(run(args, server.base_url, server.model_name))
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
