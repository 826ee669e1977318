"""Grammar-last sampling for the llama-cpp-python server (``trustee_env/serve/llama_cpp_server.py``).

The sampler chain picks a token first and the grammar checks only that token, redrawing under the full
grammar when it is rejected (llama-server's order). The model tests run the bundled SmolLM2-135M in-process
and are marked ``real_server`` like the other real-model tests; one starts the real server process.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from script_modules import ROOT, load_script

from trustee_env.serve.local import LLAMA_CPP_SERVER, LocalServer, ServerSpec, build_command, bundled_gguf

# Bounded lengths, so that every answer ends well inside max_tokens and must parse.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "priority": {"type": "string", "enum": ["low", "medium", "high"]},
        "count": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 1, "maxItems": 3},
        "urgent": {"type": "boolean"},
    },
    "required": ["name", "priority", "count", "tags", "urgent"],
    "additionalProperties": False,
}
PROMPT = "Describe a household chore as JSON with a name, a priority, a count, some tags and whether it is urgent."


def _messages(text: str = PROMPT) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def grammar_last() -> Iterator[Any]:
    """The ``llama_cpp_server`` module; grammar-last sampling is uninstalled again after each use."""
    pytest.importorskip("llama_cpp", reason="needs the local extra")
    from trustee_env.serve import llama_cpp_server

    yield llama_cpp_server
    llama_cpp_server.uninstall()


@pytest.fixture(scope="module")
def llm(grammar_last: Any) -> Any:
    """The bundled model, in-process (bundled_gguf raises if it is not installed: a failure, not a skip)."""
    import llama_cpp

    model = str(bundled_gguf())
    if not grammar_last.extra_buffers_work(model):  # what the server does on a VM whose AMX faults
        grammar_last.disable_extra_buffers()
    return llama_cpp.Llama(model_path=model, n_ctx=1024, n_threads=2, verbose=False, seed=0)


def _chat(
    llm: Any, *, grammar: Any = None, seed: int, temperature: float = 0.8, max_tokens: int = 200, text: str = PROMPT
) -> Any:
    llm.reset()  # evaluate the prompt afresh every time: identical logits, whatever ran before
    return llm.create_chat_completion(
        _messages(text), grammar=grammar, seed=seed, temperature=temperature, max_tokens=max_tokens
    )["choices"][0]


def _json_grammar(schema: dict[str, Any]) -> Any:
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)


@pytest.mark.real_server
def test_schema_constrained_answers_validate_for_several_seeds(llm: Any, grammar_last: Any) -> None:
    from jsonschema import Draft202012Validator

    grammar_last.install()
    try:
        before = dict(grammar_last.STATS)
        for seed in range(5):
            choice = _chat(llm, grammar=_json_grammar(SCHEMA), seed=seed)
            assert choice["finish_reason"] == "stop", choice
            answer = json.loads(choice["message"]["content"])
            assert not list(Draft202012Validator(SCHEMA).iter_errors(answer)), answer
        assert grammar_last.STATS["tokens"] > before["tokens"], "the grammar-last sampler was not used"
    finally:
        grammar_last.uninstall()


@pytest.mark.real_server
def test_tokens_the_model_would_not_pick_are_reached_by_the_redraw(llm: Any, grammar_last: Any) -> None:
    from llama_cpp import LlamaGrammar

    words = ["zygomorphic-quokka", "xylograph"]
    grammar_last.install()
    try:
        before = grammar_last.STATS["redraws"]
        constant = _chat(llm, grammar=LlamaGrammar.from_string('root ::= "qwertyuiop 42"', verbose=False), seed=1)
        assert constant["message"]["content"] == "qwertyuiop 42" and constant["finish_reason"] == "stop"
        for seed in range(3):
            choice = _chat(llm, grammar=_json_grammar({"type": "string", "enum": words}), seed=seed)
            assert json.loads(choice["message"]["content"]) in words
        assert grammar_last.STATS["redraws"] > before, "no rejected token: the redraw path was not exercised"
    finally:
        grammar_last.uninstall()


@pytest.mark.real_server
def test_greedy_answers_match_grammar_first_sampling(llm: Any, grammar_last: Any) -> None:
    """At temperature 0 both orders pick the most likely token the grammar allows: the same answer."""
    first = [_chat(llm, grammar=_json_grammar(SCHEMA), seed=s, temperature=0.0)["message"]["content"] for s in (0, 1)]
    grammar_last.install()
    try:
        last = [
            _chat(llm, grammar=_json_grammar(SCHEMA), seed=s, temperature=0.0)["message"]["content"] for s in (0, 1)
        ]
    finally:
        grammar_last.uninstall()
    assert last == first
    json.loads(last[0])


@pytest.mark.real_server
def test_unconstrained_sampling_is_unchanged(llm: Any, grammar_last: Any) -> None:
    before = [_chat(llm, seed=seed, max_tokens=40)["message"]["content"] for seed in (3, 4)]
    grammar_last.install()
    try:
        tokens = grammar_last.STATS["tokens"]
        after = [_chat(llm, seed=seed, max_tokens=40)["message"]["content"] for seed in (3, 4)]
        assert grammar_last.STATS["tokens"] == tokens  # no grammar: the ordinary chain, untouched
    finally:
        grammar_last.uninstall()
    assert after == before and before[0] != before[1]


def test_build_command_runs_the_script_grammar_last_by_default() -> None:
    default = build_command(ServerSpec(engine="llama-cpp-python", model="/m.gguf"))
    assert default[1] == str(LLAMA_CPP_SERVER) and "--grammar-first" not in default
    first = build_command(ServerSpec(engine="llama-cpp-python", model="/m.gguf", grammar_last=False))
    assert first[1:3] == [str(LLAMA_CPP_SERVER), "--grammar-first"]
    assert first[3:] == default[2:]  # the same server arguments either way
    assert LLAMA_CPP_SERVER.is_file() and ServerSpec().grammar_last


def test_a_child_killed_by_a_signal_is_a_crash_and_an_error_is_not() -> None:
    import sys

    from trustee_env.serve import llama_cpp_server as launcher

    segfault = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    assert launcher.child_crashed([sys.executable, "-c", segfault])
    assert not launcher.child_crashed([sys.executable, "-c", "raise SystemExit(3)"])
    assert not launcher.child_crashed([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.5)


@pytest.mark.real_server
def test_models_load_without_extra_buffers_once_disabled(grammar_last: Any) -> None:
    import llama_cpp

    assert grammar_last.extra_buffers_work("/no/such/model.gguf")  # an error, not a crash: the server reports it
    original = llama_cpp.llama_cpp.llama_model_default_params
    try:
        grammar_last.disable_extra_buffers()
        assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is False
        llm = llama_cpp.Llama(model_path=str(bundled_gguf()), n_ctx=128, n_threads=2, verbose=False)
        assert llm.create_completion("Hello", max_tokens=2)["choices"][0]["finish_reason"] in ("length", "stop")
    finally:
        llama_cpp.llama_cpp.llama_model_default_params = original
        llama_cpp.llama_model_default_params = original
    if not getattr(original, "_trustee_plain", False):  # (already off when this machine's AMX faults)
        assert original().use_extra_bufts is True


@pytest.mark.real_server
def test_real_server_with_grammar_last_answers_schema_valid_json(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="needs the local extra")
    from jsonschema import Draft202012Validator

    spec = ServerSpec(engine="llama-cpp-python", threads=2)
    with LocalServer(spec, log_path=str(tmp_path / "server.log")) as server:
        assert server.cmd[1] == str(LLAMA_CPP_SERVER)
        body = {
            "model": server.model_name,
            "messages": _messages(),
            "response_format": {"type": "json_object", "schema": SCHEMA},  # what Trustee sends this server
            "max_tokens": 200,
            "seed": 7,
        }
        request = urllib.request.Request(
            f"{server.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        choices = []
        for _ in range(2):  # the first answer's sampler is freed (and logs its counts) when the second starts
            with urllib.request.urlopen(request, timeout=300) as response:
                choices.append(json.loads(response.read())["choices"][0])
        log = server.log_path.read_text(errors="replace")
    assert "grammar-last sampling installed" in log
    bench = load_script(ROOT / "benchmarks" / "bench_local_server.py")
    profile = bench.server_profile(log)  # the benchmark's reading of llama.cpp's own timings
    assert profile["requests"] >= 2 and profile["decode_tokens"] > 0 and profile["prompt_tokens"] > 0, profile
    assert profile["grammar_last_tokens"] > 0 and 0 <= profile["grammar_last_redraw_fraction"] <= 1, profile
    counts = re.search(r"grammar-last: (\d+) tokens sampled", log)
    assert counts and int(counts.group(1)) > 0, "the server did not sample through the grammar-last sampler"
    choice = choices[0]
    assert choice["finish_reason"] == "stop", choice
    answer = json.loads(choice["message"]["content"])
    assert not list(Draft202012Validator(SCHEMA).iter_errors(answer)), answer
