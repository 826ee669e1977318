"""The vLLM path (issue 16): schema enforcement never silently off, grammar-friendly answer schemas,
explicit sampling, and a usable ``trustee serve --engine vllm``.

Against the scripted fake server; the real run is ``scripts/run-vllm-cpu`` (docs/vllm.md). The
compile checks use llama.cpp, xgrammar, llguidance and vLLM's own xgrammar feature check where
they are installed (llama.cpp comes with the ``local`` extra; the others with vLLM).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from script_modules import load_script

from trustee_env.catalog import Catalog
from trustee_env.config import EndpointConfig
from trustee_env.difficulty import aspects_for
from trustee_env.llm.client import LLMClient, closed_schema, response_formats
from trustee_env.llm.grammar import grammar_problems
from trustee_env.roles.judge import judge_output_model
from trustee_env.roles.task_generator import task_schema
from trustee_env.roles.tool_simulator import outcome_schema
from trustee_env.roles.user_simulator import UserTurn
from trustee_env.schemas import content_hash
from trustee_env.serve import local
from trustee_env.serve.local import LocalServer, ServerSpec, build_command, build_env, first_error_line
from trustee_env.testing import FakeLLMServer, Reply, ScriptedSimulator, example_for

Env = gym.Env[Any, Any]
MakeEnv = Callable[..., Env]

CONTEXT_TOO_LONG = (
    "This model's maximum context length is 2048 tokens. However, your request has 2301 input tokens. "
    "Please reduce the length of the input messages."
)
XGRAMMAR_REFUSED = "The provided JSON schema contains features not supported by xgrammar."
FORMAT_REFUSED = json.dumps(
    {
        "detail": [
            {
                "type": "literal_error",
                "loc": ["body", "response_format", "type"],
                "msg": "Input should be 'text' or 'json_object'",
                "input": "json_schema",
            }
        ]
    }
)
SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "repeat_penalty",
    "frequency_penalty",
    "presence_penalty",
)


def simulator_requests(server: FakeLLMServer) -> list[tuple[str, dict[str, Any]]]:
    return [(role, body) for role, body in list(server.requests) if role != "policy"]


def schema_sent(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return fmt["json_schema"]["schema"]
    return None


def finish_episode(env: Env) -> dict[str, Any]:
    """Reset and answer in text until the episode ends (the env's step budget); return the last info."""
    env.reset(seed=1)
    for _ in range(8):
        *_, terminated, truncated, info = env.step("Could you tell me more?")
        if terminated or truncated:
            return info
    raise AssertionError("the episode did not end")


# ----------------------------------------------------------------------------- 1. the format fallback


BAD_SCHEMA = "Invalid JSON schema in response_format.json_schema: 'maxItems' must be a non-negative integer"


@pytest.mark.parametrize(
    "message", [CONTEXT_TOO_LONG, XGRAMMAR_REFUSED, BAD_SCHEMA], ids=["context_length", "xgrammar", "bad_schema"]
)
def test_other_400s_never_switch_schema_enforcement_off(make_env: MakeEnv, message: str) -> None:
    env = make_env(ScriptedSimulator(faults={"user": [Reply(status=400, content=message)]}))
    env.reset(seed=1)
    *_, truncated, info = env.step("Could you tell me more?")
    assert truncated and info["sim_fault"]["role"] == "user" and info["sim_fault"]["reason"] == "http_status"
    assert message[:40] in info["sim_fault"]["message"]
    env.reset(seed=2)
    env.step("Could you tell me more?")
    formats = [body["response_format"]["type"] for _, body in simulator_requests(make_env.server)]
    assert formats and set(formats) == {"json_schema"}, formats
    mode = env.unwrapped.stats["response_formats"][make_env.server.base_url]
    assert mode == {"mode": "json_schema", "fallback": None}


@pytest.mark.parametrize(
    "refusal",
    [
        Reply(status=422, content=FORMAT_REFUSED),
        Reply(status=400, content="response_format type json_schema is not supported"),
    ],
    ids=["llama-cpp-python", "other"],
)
def test_response_format_refusal_falls_back_once_warns_and_shows_in_stats(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture, refusal: Reply
) -> None:
    env = make_env(ScriptedSimulator(faults={"task_generator": [refusal]}))
    with caplog.at_level(logging.WARNING, logger="trustee_env"):
        info = finish_episode(env)
        env.reset(seed=2)
    assert info["sim_fault"] is None
    formats = [body["response_format"]["type"] for _, body in simulator_requests(make_env.server)]
    assert formats[:2] == ["json_schema", "json_object"] and set(formats[2:]) == {"json_object"}
    assert all("schema" in body["response_format"] for _, body in simulator_requests(make_env.server)[1:])
    warnings = [r.getMessage() for r in caplog.records if "rejected response_format" in r.getMessage()]
    assert len(warnings) == 1 and make_env.server.base_url in warnings[0]
    mode = env.unwrapped.stats["response_formats"][make_env.server.base_url]
    assert mode["mode"] == "json_object" and mode["fallback"].startswith(f"HTTP {refusal.status}")


def test_explicit_json_schema_mode_is_never_changed(make_env: MakeEnv) -> None:
    refused = Reply(status=422, content=FORMAT_REFUSED)
    env = make_env(ScriptedSimulator(faults={"task_generator": [refused] * 3}), response_format="json_schema")
    _obs, info = env.reset(seed=1)
    assert info["sim_fault"]["role"] == "task_generator" and "HTTP 422" in info["sim_fault"]["message"]
    assert {body["response_format"]["type"] for _, body in simulator_requests(make_env.server)} == {"json_schema"}
    assert response_formats()[make_env.server.base_url]["mode"] == "json_schema"


# ----------------------------------------------------------------------------- 3. closed answer schemas


def test_closed_schema_closes_every_object_with_properties_and_leaves_maps() -> None:
    schema = {
        "type": "object",
        "properties": {
            "properties": {"type": "object", "properties": {"a": {"type": "string"}}},  # a field named so
            "facts": {"type": "object", "additionalProperties": {"type": "string"}},
            "open": {"type": "object", "properties": {"x": {"type": "integer"}}, "additionalProperties": True},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Row"}},
        },
        "$defs": {"Row": {"type": "object", "properties": {"id": {"type": "string"}}}},
        "enum": [{"properties": {"kept": 1}}],
    }
    closed = closed_schema(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["properties"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["properties"]["properties"]["properties"]["a"]
    assert closed["properties"]["facts"]["additionalProperties"] == {"type": "string"}
    assert closed["properties"]["open"]["additionalProperties"] is True
    assert closed["$defs"]["Row"]["additionalProperties"] is False
    assert closed["enum"] == [{"properties": {"kept": 1}}]  # data, untouched
    assert "additionalProperties" not in schema  # a copy


def test_every_simulator_request_is_schema_constrained_closed_and_grammar_safe(make_env: MakeEnv) -> None:
    env = make_env(ScriptedSimulator(), max_steps=2)
    obs, _info = env.reset(seed=3)
    tool = obs["tools"][0]["function"]
    call = {"name": tool["name"], "arguments": json.dumps(example_for(tool["parameters"]))}
    env.step({"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": call}]})
    *_, terminated, truncated, _info = env.step("Done, anything else?")
    assert terminated or truncated  # the user is done or the step budget is spent: the judge scores it
    requests = simulator_requests(make_env.server)
    assert {role for role, _ in requests} >= {"task_generator", "tool", "user", "judge"}
    for role, body in requests:
        schema = schema_sent(body)
        assert schema is not None, (role, body.get("response_format"))
        assert grammar_problems(schema) == [], (role, grammar_problems(schema)[:3])


# ----------------------------------------------------------------------------- 2. grammar-friendly schemas


def _state_like(tool_args: dict[str, Any]) -> dict[str, Any]:
    record = {"id": "r1", "status": "open", "count": 2, "tags": ["a"], **tool_args}
    return {"records": [record], "profile": {"name": "Ada", "active": True}}


def answer_schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every kind of answer schema Trustee sends: each bundled tool (empty and filled state), task
    generator schemas over every ten-tool slice at three difficulties, user and judge."""
    tools = list(Catalog.default())
    for tool in tools:
        arguments = example_for(tool.parameters)
        yield f"tool:{tool.name}:empty", outcome_schema(tool, {}, arguments)
        yield f"tool:{tool.name}:state", outcome_schema(tool, _state_like(arguments), arguments)
    for start in range(0, len(tools), 10):
        group = tools[start : start + 10]
        for difficulty in (1, 50, 100):
            yield f"task:{start}:{difficulty}", task_schema(group, aspects_for(difficulty, {"num_tools": len(group)}))
    yield "user", closed_schema(UserTurn.model_json_schema())
    yield "judge", closed_schema(judge_output_model().model_json_schema())


ANSWER_SCHEMAS = list(answer_schemas())


def test_answer_schemas_cover_all_bundled_tools_and_roles() -> None:
    names = [name for name, _ in ANSWER_SCHEMAS]
    assert sum(name.startswith("tool:") for name in names) == 2 * len(Catalog.default()) == 600
    assert {"user", "judge"} <= set(names) and any(name.startswith("task:") for name in names)


def test_every_answer_schema_stays_inside_the_grammar_allowlist() -> None:
    problems = {name: grammar_problems(schema) for name, schema in ANSWER_SCHEMAS}
    assert {name: found for name, found in problems.items() if found} == {}


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string", "pattern": "^[a-z]{1,5}$", "maxLength": 5}, "pattern together with"),
        ({"type": "string"}, "string without maxLength"),
        ({"type": "string", "format": "email", "maxLength": 9}, "format 'email'"),
        ({"type": "string", "pattern": "[a-z]{1,3}"}, "must be anchored"),
        ({"type": "string", "pattern": "^[a-z]+$"}, "repeats without bound"),
        ({"type": "array", "items": {"type": "integer"}}, "array without maxItems"),
        ({"type": "array", "items": {"type": "integer"}, "maxItems": 2, "uniqueItems": True}, "'uniqueItems'"),
        ({"type": "integer", "multipleOf": 3}, "'multipleOf'"),
        ({"type": "object", "properties": {"a": {"type": "boolean"}}}, "without additionalProperties: false"),
        ({"type": "object"}, "free-form object"),
        ({"allOf": [{"type": "boolean"}]}, "'allOf'"),
        ({"$ref": "https://example.com/s.json"}, "only local"),
    ],
)
def test_grammar_checker_names_what_an_engine_would_refuse_or_drop(schema: dict[str, Any], expected: str) -> None:
    assert any(expected in problem for problem in grammar_problems(schema)), grammar_problems(schema)


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama.cpp grammars need the local extra")
def test_llama_cpp_compiles_every_answer_schema() -> None:
    from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

    failures = {}
    for name, schema in ANSWER_SCHEMAS:
        try:
            LlamaGrammar.from_string(json_schema_to_gbnf(json.dumps(schema)), verbose=False)
        except Exception as err:  # report every schema that fails, with its reason
            failures[name] = repr(err)[:200]
    assert failures == {}


@pytest.mark.skipif(importlib.util.find_spec("xgrammar") is None, reason="xgrammar comes with vLLM")
def test_xgrammar_compiles_every_answer_schema_without_dropping_a_feature() -> None:
    import xgrammar

    if importlib.util.find_spec("vllm") is not None:  # vLLM's own test of what xgrammar would silently drop
        from vllm.v1.structured_output.backend_xgrammar import has_xgrammar_unsupported_json_features
    else:
        has_xgrammar_unsupported_json_features = None
    failures = {}
    for name, schema in ANSWER_SCHEMAS:
        try:
            xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False)
        except Exception as err:
            failures[name] = repr(err)[:200]
        if has_xgrammar_unsupported_json_features is not None and has_xgrammar_unsupported_json_features(schema):
            failures[name] = "vLLM: features not supported by xgrammar"
    assert failures == {}


@pytest.mark.skipif(importlib.util.find_spec("llguidance") is None, reason="llguidance comes with vLLM")
def test_llguidance_compiles_every_answer_schema() -> None:
    from llguidance import LLMatcher, grammar_from

    failures = {}
    for name, schema in ANSWER_SCHEMAS:
        result = LLMatcher.validate_grammar(grammar_from("json_schema", json.dumps(schema)))
        error = result[0] if isinstance(result, tuple) else result
        if error:
            failures[name] = str(result)[:200]
    assert failures == {}


# ----------------------------------------------------------------------------- 5. explicit sampling


def test_every_request_carries_the_roles_sampling_settings(make_env: MakeEnv) -> None:
    env = make_env(ScriptedSimulator(), max_steps=2, judge={"top_k": 5, "repetition_penalty": 1.05})
    finish_episode(env)
    requests = list(make_env.server.requests)
    assert {role for role, _ in requests} >= {"task_generator", "user", "judge"}
    config = env.unwrapped.config
    for role, body in requests:
        endpoint = config.endpoint(role)
        assert all(key in body for key in SAMPLING_KEYS), (role, sorted(body))
        assert body["temperature"] == endpoint.temperature and body["top_p"] == endpoint.top_p
        assert body["top_k"] == endpoint.top_k and body["min_p"] == endpoint.min_p
        assert body["repetition_penalty"] == body["repeat_penalty"] == endpoint.repetition_penalty
    judge = next(body for role, body in requests if role == "judge")
    assert (judge["top_k"], judge["repeat_penalty"], judge["temperature"]) == (5, 1.05, 0.0)
    user = next(body for role, body in requests if role == "user")
    assert (user["top_k"], user["min_p"], user["repeat_penalty"]) == (40, 0.05, 1.0)


def test_sampling_set_to_none_is_not_sent(fake_server: Callable[..., FakeLLMServer]) -> None:
    import asyncio

    from trustee_env.llm.usage import Usage

    server = fake_server(lambda role, body: "hello")
    endpoint = EndpointConfig(base_url=server.base_url, model="m", top_k=None, min_p=None, repetition_penalty=None)
    asyncio.run(LLMClient("policy", endpoint).chat([{"role": "user", "content": "hi"}], seed=1, usage=Usage()))
    body = server.requests[-1][1]
    assert not {"top_k", "min_p", "repetition_penalty", "repeat_penalty"} & set(body)
    assert body["frequency_penalty"] == 0.0 and body["presence_penalty"] == 0.0


def test_default_sampling_keeps_recorded_cache_keys() -> None:
    endpoint = EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m", temperature=0.3, max_tokens=64)
    key = LLMClient("tool", endpoint)._cache_key(kind="structured", messages=[], seed=1, schema={})
    before = content_hash(
        {
            "role": "tool",
            "model": "m",
            "sampling": {"temperature": 0.3, "top_p": 0.95, "max_tokens": 64, "repairs": 2},
            "kind": "structured",
            "messages": [],
            "seed": 1,
            "schema": {},
        },
        length=64,
    )
    assert key == before  # the key as computed before the other settings were sent
    changed = endpoint.model_copy(update={"top_k": 0})
    assert LLMClient("tool", changed)._cache_key(kind="structured", messages=[], seed=1, schema={}) != key


# ----------------------------------------------------------------------------- 6. trustee serve --engine vllm


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustee_env.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_vllm_command_honours_context_threads_whitespace_and_extra_args() -> None:
    proc = _cli(
        "--engine",
        "vllm",
        "--model",
        "/models/smollm2-hf",
        "--n-ctx",
        "2048",
        "--threads",
        "2",
        "--engine-arg=--gpu-memory-utilization 0.3",
        "--print-command",
        "--",
        "--dtype",
        "float32",
    )
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("VLLM_CPU_OMP_THREADS_BIND=0-1 OMP_NUM_THREADS=2 ")
    assert "--max-model-len 2048" in line
    assert """--structured-outputs-config '{"backend":"xgrammar","disable_any_whitespace":true}'""" in line
    assert line.endswith("--gpu-memory-utilization 0.3 --dtype float32")


def test_vllm_serve_first_and_the_module_only_where_the_cli_is_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ServerSpec(engine="vllm", model="Qwen/Qwen3-8B", port=8000)
    monkeypatch.setattr(local, "_vllm_cli_works", lambda: True)
    cmd = build_command(spec)
    assert Path(cmd[0]).name == "vllm" and cmd[1:3] == ["serve", "Qwen/Qwen3-8B"]
    assert "--model" not in cmd and "--reasoning-parser" in cmd
    monkeypatch.setattr(local, "_vllm_cli_works", lambda: False)  # vllm-cpu: the CLI cannot find its metadata
    module_form = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", spec.model]
    assert build_command(spec)[:5] == module_form


def test_vllm_cli_is_judged_broken_exactly_when_the_module_lacks_vllm_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local.importlib.util, "find_spec", lambda name: object() if name == "vllm" else None)

    def no_vllm_metadata(name: str) -> Any:
        raise local.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(local.importlib.metadata, "distribution", no_vllm_metadata)
    assert local._vllm_cli_works() is False
    monkeypatch.setattr(local.importlib.metadata, "distribution", lambda name: object())
    assert local._vllm_cli_works() is True


def test_context_and_threads_are_left_to_the_engine_unless_given() -> None:
    spec = ServerSpec(engine="vllm", model="m")
    assert "--max-model-len" not in build_command(spec) and build_env(spec) == {}
    llama = build_command(ServerSpec(engine="llama-server", model="x.gguf", parallel=2))
    assert llama[llama.index("-c") + 1] == "8192"  # 4096 per slot by default


def test_model_help_names_each_engines_default() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "trustee_env.cli", "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    text = "".join(proc.stdout.split())  # argparse wraps lines at hyphens
    assert "SmolLM2-135M" in text and "Qwen/Qwen3-8B" in text


# The shape of vllm-cpu 0.32's log when it cannot reserve memory (shortened from a real start-up here).
VLLM_FAILED_LOG = """\
(APIServer pid=2859) INFO 11-30 23:42:09 [api_server.py:1815] vLLM API server version 0.32.0
(APIServer pid=2859) WARNING 11-30 23:42:10 [system_utils.py:255] Found ulimit of 20000 and failed to \
automatically increase with error current limit exceeds maximum limit. This can cause fd limit errors like \
`OSError: [Errno 24] Too many open files`. Consider increasing with ulimit -n
(VllmWorker-0 pid=5005) ERROR 11-30 23:44:38 [multiproc_executor.py:953] WorkerProc failed to start.
(VllmWorker-0 pid=5005) ERROR 11-30 23:44:38 [multiproc_executor.py:953] Traceback (most recent call last):
(VllmWorker-0 pid=5005) ERROR 11-30 23:44:38 [multiproc_executor.py:953]     raise ValueError(
(VllmWorker-0 pid=5005) ERROR 11-30 23:44:38 [multiproc_executor.py:953] ValueError: Available memory on node 0 \
(10.73/13.59 GiB) on startup is less than desired CPU memory utilization (0.92, 12.5 GiB). To resolve: decrease \
`--gpu-memory-utilization` (e.g. `--gpu-memory-utilization 0.5`) or reduce CPU memory used by other processes.
Traceback (most recent call last):
  File "/venv/vllm/v1/engine/utils.py", line 1431, in wait_for_engine_startup
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


def test_first_error_line_is_the_root_cause() -> None:
    first = first_error_line(VLLM_FAILED_LOG)
    assert first is not None and "ValueError: Available memory on node 0" in first
    assert first_error_line("INFO all good\nERROR 1 something broke\n") == "ERROR 1 something broke"
    assert first_error_line("WARNING mind `OSError: x`\nerror: model not found\n") == "error: model not found"
    assert first_error_line("INFO fine\n") is None


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="a real vLLM is installed here")
def test_failed_vllm_start_shows_the_first_error_line_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in `vllm` executable on PATH that logs like a vLLM start-up failure and exits.
    (tmp_path / "log.txt").write_text(VLLM_FAILED_LOG)
    script = tmp_path / "vllm"
    script.write_text(f"#!/bin/sh\ncat {tmp_path / 'log.txt'}\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    proc = _cli("--engine", "vllm", "--model", "m", env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 1
    first_line = proc.stderr.strip().splitlines()[0]
    assert "exited with code 1" in first_line and "ValueError: Available memory on node 0" in first_line
    server = LocalServer(ServerSpec(engine="vllm", model="m"), log_path=str(tmp_path / "server.log"))
    with pytest.raises(local.ServerError, match=r"first error: .*ValueError: Available memory") as caught:
        server.start()
    assert caught.value.cmd[:2] == [str(script), "serve"]


# ----------------------------------------------------------------------------- the measuring relay


def test_bench_relay_records_every_request_and_reports_per_role(
    fake_server: Callable[..., FakeLLMServer], tmp_path: Path
) -> None:
    """benchmarks/bench_local_server.py's relay in front of a scripted "real" server: what the vLLM check reads."""
    bench = load_script(Path(__file__).parent.parent / "benchmarks/bench_local_server.py")
    upstream = fake_server(ScriptedSimulator())
    options = {"tool_format": "hermes", "max_steps": 2, "policy": {"max_tokens": 40}}
    catalog = str(Path(__file__).parent / "data" / "mock_catalog.json")
    batch = bench.run_batch(
        (upstream.base_url, "fake-model"), [0, 1], 1, tmp_path / "c1.jsonl", {**options, "catalog": catalog}
    )
    report = batch["requests"]
    assert batch["episodes"] == 2 and report["all_schema_constrained"] and not report["schemas_outside_allowlist"]
    assert report["simulator_requests"] == sum(role != "policy" for role, _ in upstream.requests)
    assert {"task_generator", "user", "judge", "policy"} <= set(report["per_role"])
    assert report["cut_off_answers"] == 0 and 0 <= report["whitespace_fraction_simulators"] < 0.5
    assert batch["response_formats"] == [{"mode": "json_schema", "fallback": None}]
    logged = (tmp_path / "c1.requests.jsonl").read_text().splitlines()
    assert len(logged) == len(upstream.requests)
