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
* ``tool_simulator``: the tool role's faults per episode and per call, and its repairs per call;
* ``requests``: every request passes through a recording relay (a ``FakeLLMServer`` whose handler
  forwards to the real server), which gives per role the answers cut off at ``max_tokens``, the
  whitespace fraction of the answers' characters, the HTTP errors, and whether every simulator request
  was schema-constrained (``json_schema`` with a schema inside ``llm.grammar``'s allowlist);
  ``response_formats`` is ``env.unwrapped.stats["response_formats"]`` (a fallback would show there).

``--engine vllm`` serves ``--model`` (a Hugging Face folder, e.g. the bundled GGUF converted by
``python -m trustee_env.serve.convert DIR``) with the command ``trustee serve --engine vllm`` runs;
``--base-url`` measures a server that already runs (e.g. one started with ``trustee serve``).

``--grammar-first`` serves with ``ServerSpec(grammar_last=False)``: llama-cpp-python's own sampling order, the
JSON grammar masking the whole vocabulary before each draw (the default checks the sampled token only, as
llama-server does). ``server_profile`` splits the server's own time (llama.cpp's per-request
``llama_perf_context_print`` lines in its log) into prompt evaluation, decoding, and the rest (sampling,
grammar, prompt-cache loads, Python), per decoded token.

Usage: ``python benchmarks/bench_local_server.py [--episodes 20] [--engine llama-cpp-python|vllm] [--model M]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from trustee_env.env import TrusteeToolEnv
from trustee_env.llm.grammar import grammar_problems
from trustee_env.parsing import render_tool_calls
from trustee_env.rollout import LMPolicy, run_episodes
from trustee_env.schemas import ToolCall
from trustee_env.serve.local import LocalServer, ServerSpec, pick_engine, server_answers
from trustee_env.testing import FakeLLMServer, Reply, example_for
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


class Relay:
    """A ``FakeLLMServer`` handler that forwards each chat request to a real server and records both sides."""

    def __init__(self, target: str, timeout: float = 900.0, log_path: Path | None = None) -> None:
        self.target = target.rstrip("/")
        self.timeout = timeout
        self.log_path = log_path  # every record appended as it comes, so a run cut short still tells
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _keep(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.records.append(record)
            if self.log_path is not None:
                with open(self.log_path, "a") as handle:
                    handle.write(json.dumps(record) + "\n")

    def __call__(self, role: str, body: dict[str, Any]) -> Reply:
        request = urllib.request.Request(
            f"{self.target}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-Trustee-Role": role},
        )
        record: dict[str, Any] = {"role": role, "response_format": body.get("response_format")}
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as err:
            text = err.read().decode(errors="replace")
            self._keep({**record, "status": err.code, "error": text[:500]})
            return Reply(status=err.code, content=text)
        choice = data["choices"][0]
        content = (choice.get("message") or {}).get("content") or ""
        self._keep(
            {
                **record,
                "status": 200,
                "finish_reason": choice.get("finish_reason"),
                "content": content,
                "completion_tokens": (data.get("usage") or {}).get("completion_tokens"),
            }
        )
        return Reply(content=content, finish_reason=choice.get("finish_reason") or "stop")


def request_report(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per role: requests, HTTP errors, answers cut off at max_tokens, whitespace fraction; schema checks."""
    roles: dict[str, dict[str, Any]] = {}
    unconstrained: list[str] = []
    outside: list[str] = []
    for record in records:
        entry = roles.setdefault(
            record["role"], {"requests": 0, "http_errors": 0, "cut_off": 0, "chars": 0, "ws": 0, "tokens": []}
        )
        entry["requests"] += 1
        if record["status"] != 200:
            entry["http_errors"] += 1
            entry.setdefault("first_error", record["error"][:200])
        else:
            entry["cut_off"] += int(record["finish_reason"] == "length")
            entry["chars"] += len(record["content"])
            entry["ws"] += sum(char.isspace() for char in record["content"])
            if record.get("completion_tokens") is not None:
                entry["tokens"].append(record["completion_tokens"])
        if record["role"] == "policy":
            continue
        fmt = record["response_format"] or {}
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
        if schema is None:
            unconstrained.append(f"{record['role']}: response_format {fmt.get('type')!r}")
        elif grammar_problems(schema):
            outside.append(f"{record['role']}: {grammar_problems(schema)[0]}")
    for entry in roles.values():
        entry["whitespace_fraction"] = round(entry.pop("ws") / entry["chars"], 3) if entry["chars"] else None
        tokens = entry.pop("tokens")
        entry["mean_completion_tokens"] = round(sum(tokens) / len(tokens), 1) if tokens else None
    structured = [r for r in records if r["role"] != "policy" and r["status"] == 200]
    return {
        "per_role": roles,
        "cut_off_answers": sum(r["finish_reason"] == "length" for r in structured),
        "whitespace_fraction_simulators": round(
            sum(sum(c.isspace() for c in r["content"]) for r in structured)
            / max(1, sum(len(r["content"]) for r in structured)),
            3,
        ),
        "simulator_requests": sum(1 for r in records if r["role"] != "policy"),
        "all_schema_constrained": not unconstrained,
        "unconstrained": unconstrained[:5],
        "schemas_outside_allowlist": outside[:5],
    }


def run_batch(
    server: LocalServer | tuple[str, str],
    seeds: list[int],
    concurrency: int,
    out: Path,
    options: dict[str, Any],
    policy_name: str = "probe",
) -> dict[str, Any]:
    """Episodes against ``server`` (or a ``(base_url, model)`` pair), through a recording relay."""
    base_url, model = server if isinstance(server, tuple) else (server.base_url, server.model_name)
    relay = Relay(base_url, log_path=out.with_suffix(".requests.jsonl"))
    print(f"requests and answers: {relay.log_path}", file=sys.stderr, flush=True)
    with FakeLLMServer(relay, model=model) as front:
        env = TrusteeToolEnv(base_url=front.base_url, model=model, trajectory_path=str(out), **options)
        policy = POLICIES[policy_name](env.config)
        t0 = time.perf_counter()
        summaries = run_episodes(env, policy, seeds, concurrency=concurrency)
        elapsed = time.perf_counter() - t0
        formats = env.unwrapped.stats.get("response_formats", {})  # per URL, for the whole process
        formats = {url: mode for url, mode in formats.items() if url == front.base_url.rstrip("/")}
        env.close()
    return {
        "episodes": len(summaries),
        "elapsed_s": round(elapsed, 1),
        "summaries": summaries,
        "requests": request_report(relay.records),
        "response_formats": list(formats.values()),
    }


_PERF = re.compile(
    r"llama_perf_context_print:\s+(prompt eval|eval|total) time =\s*([\d.]+) ms /\s*(\d+) (?:tokens|runs)"
)

_GRAMMAR_LAST = re.compile(r"grammar-last: (\d+) tokens sampled, (\d+) redrawn")


def server_profile(log: str) -> dict[str, Any]:
    """Where the server's time went, from the ``llama_perf_context_print`` lines llama.cpp logs per request.

    The llama-cpp-python server (verbose, its default) resets llama.cpp's counters at the start of each
    completion and prints them at its end: prompt evaluation (ms / tokens), decoding (ms / runs: one run per
    decoded token) and total (ms since the reset). ``other`` is total minus both: sampling, the JSON grammar,
    prompt-cache restores and Python. llama.cpp prints a count of 0 as 1, so a prompt evaluation that took no
    time (prompt entirely cached) counts 0 tokens here. Sampling grammar-last, the server also logs, per
    constrained answer, how many sampled tokens the grammar rejected (each costs one full-vocabulary redraw).
    """
    requests = 0
    prompt_ms = decode_ms = total_ms = 0.0
    prompt_tokens = decode_tokens = 0
    for match in _PERF.finditer(log):
        kind, ms, count = match.group(1), float(match.group(2)), int(match.group(3))
        if kind == "prompt eval":
            prompt_ms += ms
            prompt_tokens += count if ms > 0 else 0
        elif kind == "eval":
            decode_ms += ms
            decode_tokens += count if ms > 0 else 0
        else:
            requests += 1
            total_ms += ms
    other_ms = total_ms - prompt_ms - decode_ms
    counts = [(int(m.group(1)), int(m.group(2))) for m in _GRAMMAR_LAST.finditer(log)]
    grammar_last = {}
    if counts:
        sampled, redrawn = sum(c[0] for c in counts), sum(c[1] for c in counts)
        grammar_last = {"grammar_last_tokens": sampled, "grammar_last_redraw_fraction": round(redrawn / sampled, 3)}
    return {
        "requests": requests,
        "prompt_tokens": prompt_tokens,
        "prompt_eval_s": round(prompt_ms / 1e3, 2),
        "prompt_tokens_per_s": round(prompt_tokens / (prompt_ms / 1e3), 1) if prompt_ms else None,
        "decode_tokens": decode_tokens,
        "decode_s": round(decode_ms / 1e3, 2),
        "decode_tokens_per_s": round(decode_tokens / (decode_ms / 1e3), 1) if decode_ms else None,
        "total_s": round(total_ms / 1e3, 2),
        "other_s": round(other_ms / 1e3, 2),
        "other_ms_per_decoded_token": round(other_ms / decode_tokens, 2) if decode_tokens else None,
        **grammar_last,
    }


def repair_stats(path: Path) -> dict[str, Any]:
    calls = repaired = 0
    per_role: dict[str, dict[str, int]] = {}
    for record in read_trajectories(path):
        for role, usage in record.usage.items():
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
        usage = record.usage.get("tool", {})
        calls += usage.get("calls", 0)
        repairs += usage.get("repairs", 0)
        faults += int(record.sim_fault is not None and record.sim_fault.role == "tool")
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
    parser.add_argument("--engine", default="llama-cpp-python", help="auto, llama-server, llama-cpp-python or vllm")
    parser.add_argument("--model", help="GGUF (llama.cpp) or Hugging Face folder (vLLM; default: convert the bundled)")
    parser.add_argument("--base-url", help="measure this running server instead of starting one")
    parser.add_argument("--threads", type=int, default=0, help="server CPU threads (default: all)")
    parser.add_argument("--engine-arg", action="append", default=[], help="extra engine argument (repeatable)")
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
    parser.add_argument(
        "--prompt-cache-mb",
        type=int,
        default=ServerSpec().prompt_cache_mb,
        help="llama-cpp-python's RAM prompt cache (0 = off, the server as it was before the cache)",
    )
    parser.add_argument(
        "--grammar-first",
        action="store_true",
        help="llama-cpp-python: the JSON grammar masks the vocabulary before sampling (grammar_last=False)",
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
        "model": args.model or "SmolLM2-135M-Instruct (bundled GGUF)",
        "cpu_count": os.cpu_count(),
        "options": options,
        "policy": args.policy,
    }

    with ExitStack() as stack:
        target: LocalServer | tuple[str, str]
        if args.base_url:
            served = server_answers(args.base_url)
            if served is None:
                raise SystemExit(f"{args.base_url} does not answer /models")
            target = (args.base_url, served)
            result["engine"] = f"running server at {args.base_url}"
        else:
            spec = ServerSpec(
                engine=pick_engine(args.engine),
                model=args.model,
                extra_args=list(args.engine_arg),
                prompt_cache_mb=args.prompt_cache_mb,
                grammar_last=not args.grammar_first,
            )
            if spec.engine == "vllm" and not args.model:
                from trustee_env.serve.convert import export_hf_folder

                spec.model = str(export_hf_folder(tmp / "hf-model"))
            if args.threads:
                spec.threads, spec.threads_given = args.threads, True
            target = stack.enter_context(LocalServer(spec))
            result["engine"] = spec.engine
            if spec.engine == "llama-cpp-python":
                result["prompt_cache_mb"] = spec.prompt_cache_mb
                result["grammar_last"] = spec.grammar_last
            result["startup_s"] = round(target.startup_s or 0.0, 2)
        batch = run_batch(target, list(range(args.episodes)), 1, tmp / "c1.jsonl", options, args.policy)
    if isinstance(target, LocalServer):
        result["server_log"] = str(target.log_path)
        result["server_profile"] = server_profile(target.log_path.read_text(errors="replace"))
    result["requests"] = batch["requests"]
    result["response_formats"] = batch["response_formats"]
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
