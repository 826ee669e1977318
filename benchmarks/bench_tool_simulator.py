"""The tool simulator alone against the embedded model: faults and repairs per call (JSON).

``bench_local_server.py`` measures whole episodes, where the task generator costs most of the time on
a small CPU. This drives only ``ToolSimulator.call`` with the tool role's real settings, so two
versions of the simulator can be compared on the same calls:

* the calls: ``--calls`` tools drawn from the bundled catalog (seeded; writing and read-only tools
  alternate), each called with example arguments against a small world state built from the tool's
  result schema; or, with ``--tasks FILE``, the probe call of every task in a trajectory JSONL (the
  first offered tool with example arguments, against the task's own initial state, as
  ``bench_local_server.py --policy probe`` makes it);
* per call: whether it faulted (and why), repair round trips, completion tokens, seconds.

Usage: ``python benchmarks/bench_tool_simulator.py [--calls 16] [--tasks FILE] [--engine llama-cpp-python]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import numpy as np

from trustee_env.catalog import Catalog
from trustee_env.config import make_config
from trustee_env.errors import LLMError
from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.roles.tool_simulator import ToolSimulator
from trustee_env.schemas import Role, ToolCall, ToolSpec
from trustee_env.serve.local import LocalServer, ServerSpec, pick_engine
from trustee_env.testing import example_for
from trustee_env.trajectory import read_trajectories


def state_for(tool: ToolSpec) -> dict[str, Any]:
    """Two records shaped like the tool's result (its first list of objects, else the result itself)."""
    props = tool.result_schema.get("properties", {})
    name, shape = tool.category or "records", tool.result_schema
    for key, sub in props.items():
        if sub.get("type") == "array" and sub.get("items", {}).get("type") == "object":
            name, shape = key, sub["items"]
            break
    fields = {k: v for k, v in shape.get("properties", {}).items() if v.get("type") not in ("object", "array")}
    records = []
    for index in (1, 2):
        record = {k: example_for(v) for k, v in fields.items()}
        record.update({k: f"{k[:3].upper()}-{index}" for k, v in record.items() if k.endswith("id")})
        records.append(record or {"id": f"R-{index}"})
    return {name: records}


def catalog_calls(count: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    tools = Catalog.default().tools
    writers = [t for t in tools if not t.read_only]
    readers = [t for t in tools if t.read_only]
    calls = []
    for index in range(count):
        pool = writers if index % 2 == 0 else readers
        tool = pool[int(rng.integers(len(pool)))]
        intent = f"Use {tool.name} to help the user."
        calls.append({"tool": tool, "state": state_for(tool), "intent": intent})
    return calls


def task_calls(path: str) -> list[dict[str, Any]]:
    calls = []
    for record in read_trajectories(path):
        task = record.task
        if task is not None and task.tools:
            tool = ToolSpec.model_validate(task.tools[0])
            calls.append({"tool": tool, "state": task.initial_state, "intent": task.intent})
    return calls


async def run(server: LocalServer, calls: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    config = make_config(base_url=server.base_url, model=server.model_name)
    simulator = ToolSimulator(LLMClient(Role.TOOL.value, config.endpoint(Role.TOOL)))
    rows = []
    for index, item in enumerate(calls):
        tool: ToolSpec = item["tool"]
        call = ToolCall(id="probe", name=tool.name, arguments=example_for(tool.parameters))
        usage = Usage()
        started = time.perf_counter()
        row: dict[str, Any] = {"tool": tool.name, "read_only": tool.read_only, "fault": None}
        try:
            _, state = await simulator.call(
                tool,
                call,
                step=1,
                index=0,
                state=item["state"],
                intent=item["intent"],
                previous=[],
                seed=seed + index,
                usage=usage,
            )
            row["state_changed"] = state != item["state"]
        except LLMError as err:
            row["fault"] = {"reason": err.reason, "message": str(err)[:240]}
        entry = usage.info_view().get(Role.TOOL.value, {})
        row.update(
            repairs=entry.get("repairs", 0),
            completion_tokens=entry.get("completion_tokens", 0),
            seconds=round(time.perf_counter() - started, 1),
        )
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=16, help="catalog calls to make (ignored with --tasks)")
    parser.add_argument("--tasks", help="trajectory JSONL whose tasks' probe calls are replayed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", default="llama-cpp-python")
    args = parser.parse_args(argv)
    calls = task_calls(args.tasks) if args.tasks else catalog_calls(args.calls, args.seed)
    with LocalServer(ServerSpec(engine=pick_engine(args.engine))) as server:
        rows = asyncio.run(run(server, calls, args.seed))
    faults = [row for row in rows if row["fault"]]
    reasons: dict[str, int] = {}
    for row in faults:
        reasons[row["fault"]["reason"]] = reasons.get(row["fault"]["reason"], 0) + 1
    result = {
        "calls": len(rows),
        "faults": len(faults),
        "fault_rate_per_call": round(len(faults) / len(rows), 3) if rows else None,
        "fault_reasons": reasons,
        "repairs_per_call": round(sum(row["repairs"] for row in rows) / len(rows), 3) if rows else None,
        "calls_repaired": sum(1 for row in rows if row["repairs"]),
        "writes_that_changed_state": sum(1 for row in rows if row.get("state_changed")),
        "mean_completion_tokens": round(sum(row["completion_tokens"] for row in rows) / max(1, len(rows)), 1),
        "mean_seconds": round(sum(row["seconds"] for row in rows) / max(1, len(rows)), 1),
        "rows": rows,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
