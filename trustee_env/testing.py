"""A scripted OpenAI-compatible server on 127.0.0.1, for fast deterministic tests and benchmarks.

It is a real HTTP server (stdlib ``ThreadingHTTPServer``), so requests go through the same
client, retries and parsing as against vLLM or llama.cpp. Each request is answered by a
handler ``(role, request_json) -> Reply | str | dict``; the role comes from the
``X-Trustee-Role`` header the client sends. Faults (HTTP errors, delays, truncation,
garbage) are injected by returning a :class:`Reply`.

Example:
    >>> from trustee_env.testing import FakeLLMServer, ScriptedSimulator
    >>> with FakeLLMServer(ScriptedSimulator()) as server:  # doctest: +SKIP
    ...     env = gym.make("Trustee-v0", base_url=server.base_url)
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeLLMServer", "Reply", "ScriptedSimulator"]


@dataclass
class Reply:
    """One scripted answer, with optional faults."""

    content: str | dict[str, Any] | list[Any] = ""
    finish_reason: str = "stop"
    status: int = 200
    delay_s: float = 0.0
    tool_calls: list[dict[str, Any]] | None = None
    drop_connection: bool = False


Handler = Callable[[str, dict[str, Any]], "Reply | str | dict[str, Any]"]


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every response stalls ~45 ms on delayed ACK
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        return

    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": self.server.model, "object": "model"}]})
        elif self.path.rstrip("/").endswith("/health"):
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        role = self.headers.get("X-Trustee-Role", "policy")
        owner = self.server.owner
        with owner._lock:
            owner.requests.append((role, body))
        if owner.latency_s:
            time.sleep(owner.latency_s)
        try:
            reply = owner.handler(role, body)
        except Exception as err:  # a broken script is a test bug: answer 500 with the reason
            self._send_json(500, {"error": {"message": f"fake handler failed: {err!r}"}})
            return
        if not isinstance(reply, Reply):
            reply = Reply(content=reply)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.drop_connection:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if reply.status != 200:
            self._send_json(reply.status, {"error": {"message": f"scripted HTTP {reply.status}"}})
            return
        content = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        prompt_tokens = sum(len(str(m.get("content", ""))) // 4 for m in body.get("messages", []))
        self._send_json(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", self.server.model),
                "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": max(1, len(content) // 4),
                    "total_tokens": prompt_tokens + max(1, len(content) // 4),
                },
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    owner: FakeLLMServer
    model: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up (timeout) or stop() cut the connection: nothing to report
        super().handle_error(request, client_address)

    def close_open_connections(self) -> None:
        """Cut every kept-alive client connection (else they go on being served after ``stop``)."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeLLMServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 answering from a script.

    Args:
        handler: ``(role, request) -> Reply | str | dict``.
        latency_s: fixed delay before every answer (for benchmarks).
        port: 0 picks a free port.
    """

    def __init__(self, handler: Handler, *, latency_s: float = 0.0, port: int = 0, model: str = "fake-model") -> None:
        self.handler = handler
        self.latency_s = latency_s
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _RequestHandler)
        self._server.owner = self
        self._server.model = model
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeLLMServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-llm", daemon=True
        )  # a short poll interval: stop() waits for one poll
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._server.close_open_connections()

    def roles(self) -> list[str]:
        """The role of every request so far, in order."""
        with self._lock:
            return [role for role, _ in self.requests]

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- a scripted simulator

_CALL_LINE = re.compile(r"^Call \(step (\d+), #(\d+)\): ([\w.\-]+)\(<<<(.*)>>>\)\s*$", re.MULTILINE)


def _schema_of(request: dict[str, Any]) -> dict[str, Any]:
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return fmt["json_schema"]["schema"]
    return fmt.get("schema") or {}


def example_for(schema: dict[str, Any]) -> Any:
    """A small value valid under ``schema`` (enough of JSON Schema for tool results)."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return example_for(schema[key][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_for(props[name]) for name in schema.get("required", list(props))}
    if kind == "array":
        return [example_for(schema.get("items", {"type": "string"}))] * schema.get("minItems", 1)
    if kind == "string":
        return "2026-01-15" if schema.get("format") == "date" else "example"
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return None


@dataclass
class ScriptedSimulator:
    """A handler that plays all four roles deterministically from scripts.

    Args:
        task: the task draft the task generator returns (dict), or None to build one
            from the offered tools (first tool, example arguments stated in the query).
        tool_results: tool name -> ``{"result": ..., "state_patch": [...]}`` or a callable
            ``(name, arguments, request) -> that dict``; missing tools get an example result.
        user_turns: queued user answers (dicts ``{"message", "status"}``); when empty the
            user is satisfied.
        judge: the judge's answer (dict).
        faults: role -> queue of Replies served before the script (fault injection).
    """

    task: dict[str, Any] | None = None
    tool_results: dict[str, Any] = field(default_factory=dict)
    user_turns: list[dict[str, Any]] = field(default_factory=list)
    judge: dict[str, Any] = field(
        default_factory=lambda: {
            "rationale": "The goal was met with the right calls.",
            "scores": {"intent": 1, "correct_tools": 1, "no_hallucination": 1, "no_redundancy": 1, "efficiency": 1},
            "verdict": 1,
        }
    )
    faults: dict[str, list[Reply]] = field(default_factory=dict)
    policy: Callable[[dict[str, Any]], Reply | str | dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self._user_queue = deque(self.user_turns)
        self._fault_queues = {role: deque(replies) for role, replies in self.faults.items()}
        self._lock = threading.Lock()

    def __call__(self, role: str, request: dict[str, Any]) -> Reply | str | dict[str, Any]:
        with self._lock:
            queue = self._fault_queues.get(role)
            if queue:
                return queue.popleft()
        if role == "task_generator":
            return self.task if self.task is not None else self._default_task(_schema_of(request))
        if role == "tool":
            return self._tool(request)
        if role == "user":
            with self._lock:
                if self._user_queue:
                    return self._user_queue.popleft()
            return {"message": "Great, thank you! That is all I needed.", "status": "satisfied"}
        if role == "judge":
            return self.judge
        if self.policy is not None:
            return self.policy(request)
        return Reply(content="I can help with that.")

    def _default_task(self, schema: dict[str, Any]) -> dict[str, Any]:
        variants = schema["properties"]["expected_calls"]["items"]["anyOf"]
        count = schema["properties"]["expected_calls"].get("minItems", 1)
        calls = []
        for index in range(count):
            variant = variants[index % len(variants)]
            args = example_for(variant["properties"]["arguments"])
            calls.append({"name": variant["properties"]["name"]["const"], "arguments": args})
        facts = {
            f"fact_{i}": v for i, c in enumerate(calls) for v in c["arguments"].values() if not isinstance(v, bool)
        }
        return {
            "system_prompt": "You are a helpful assistant with tools.",
            "persona": {"name": "Sam", "description": "A busy professional."},
            "intent": "Get the task done with the tools.",
            "user_facts": {k: v for k, v in facts.items() if not isinstance(v, (list, dict))},
            "first_query": "Please help me. Details: " + json.dumps([c["arguments"] for c in calls]),
            "expected_calls": calls,
            "initial_state": {"records": [{"id": "r1", "status": "open"}]},
            "rubric": ["The request was completed."],
        }

    def _tool(self, request: dict[str, Any]) -> Reply | str | dict[str, Any]:
        prompt = request["messages"][-1]["content"]
        # The call line is in the first user message (repairs append messages after it).
        first_user = next(m["content"] for m in request["messages"] if m["role"] == "user")
        match = _CALL_LINE.search(first_user)
        if match is None:
            return Reply(content=f"cannot find the call in the prompt: {prompt[-200:]}", status=500)
        name, arguments = match.group(3), json.loads(match.group(4))
        scripted = self.tool_results.get(name)
        if callable(scripted):
            return scripted(name, arguments, request)
        if scripted is not None:
            return scripted
        result_schema = _schema_of(request).get("properties", {}).get("result", {"type": "object"})
        return {"result": example_for(result_schema), "state_patch": []}
