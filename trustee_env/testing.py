"""A scripted OpenAI-compatible server on 127.0.0.1, for fast deterministic tests and benchmarks.

It is a real HTTP server (asyncio, on its own thread), so requests go through the same
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

import asyncio
import json
import re
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from trustee_env._portal import cancel_other_tasks

__all__ = ["FakeLLMServer", "Reply", "ScriptedSimulator", "checks_task"]


@dataclass
class Reply:
    """One scripted answer, with optional faults."""

    content: str | dict[str, Any] | list[Any] = ""
    finish_reason: str = "stop"
    status: int = 200
    delay_s: float = 0.0
    tool_calls: list[dict[str, Any]] | None = None
    drop_connection: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (e.g. ``{"Retry-After": "1"}`` on a 429)."""
    stall_s: float = 0.0
    """Send the status line, headers and half the body, then stall this long and cut the connection."""


Handler = Callable[[str, dict[str, Any]], "Reply | str | dict[str, Any]"]


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class FakeLLMServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 answering from a script.

    An asyncio server on its own loop thread: waiting (``latency_s``, ``Reply.delay_s``) costs no
    thread, so hundreds of requests can be in flight, as against a real batching LM server.
    Handlers run in a thread pool, so a handler may block.

    Args:
        handler: ``(role, request) -> Reply | str | dict``.
        latency_s: fixed delay before every answer (for benchmarks).
        port: 0 picks a free port.
    """

    def __init__(self, handler: Handler, *, latency_s: float = 0.0, port: int = 0, model: str = "fake-model") -> None:
        self.handler = handler
        self.latency_s = latency_s
        self.model = model
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._port = self._sock.getsockname()[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pool = ThreadPoolExecutor(max_workers=512, thread_name_prefix="fake-llm-handler")

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> FakeLLMServer:
        """Serve in a background thread; returns once the server accepts connections."""
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve_connection, sock=self._sock, backlog=1024, limit=2**24)
            )
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-llm", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and free the port."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()  # kept-alive connections are cut, not served on
            await cancel_other_tasks()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._sock.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ HTTP

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no delayed-ACK stalls
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = ([*lines[0].split(" ", 2), "", ""])[:3]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                keep = await self._respond(method, path, headers, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:  # stop(): end quietly (asyncio logs connection tasks that end cancelled)
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
        stall_s: float = 0.0,
    ) -> None:
        body = json.dumps(payload).encode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        if stall_s:  # a response that starts and then stops coming: the client's read timeout must end it
            writer.write(head + body[: len(body) // 2])
            await writer.drain()
            await asyncio.sleep(stall_s)
            writer.transport.abort()
            return
        writer.write(head + body)
        await writer.drain()

    async def _respond(
        self, method: str, path: str, headers: dict[str, str], raw: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        route = path.split("?", 1)[0].rstrip("/")
        if method == "GET":
            if route.endswith("/models"):
                await self._send(writer, 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})
            elif route.endswith("/health"):
                await self._send(writer, 200, {"status": "ok"})
            else:
                await self._send(writer, 404, {"error": {"message": f"no route {path}"}})
            return True
        body = json.loads(raw or b"{}")
        role = headers.get("x-trustee-role", "policy")
        with self._lock:
            self.requests.append((role, body))
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        loop = asyncio.get_running_loop()
        try:
            reply = await loop.run_in_executor(self._pool, self.handler, role, body)
        except Exception as err:  # a broken script is a test bug: answer 500 with the reason
            await self._send(writer, 500, {"error": {"message": f"fake handler failed: {err!r}"}})
            return True
        if not isinstance(reply, Reply):
            reply = Reply(content=reply)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.drop_connection:
            writer.transport.abort()
            return False
        if reply.status != 200:
            error = {"error": {"message": reply.content or f"scripted HTTP {reply.status}"}}
            await self._send(writer, reply.status, error, reply.headers, reply.stall_s)
            return not reply.stall_s
        content = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        prompt_tokens = sum(len(str(m.get("content", ""))) // 4 for m in body.get("messages", []))
        completion_tokens = max(1, len(content) // 4)
        await self._send(
            writer,
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", self.model),
                "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
            reply.headers,
            reply.stall_s,
        )
        return not reply.stall_s

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


def _scalar_fields(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"<argument>": value}`` for every scalar argument of the calls (flat, as a world-state record)."""
    return {
        name: value
        for call in calls
        for name, value in call["arguments"].items()
        if isinstance(value, (str, int, float, bool))
    }


def checks_task(expected: list[Any], tools: list[Any], *, strictness: int = 4) -> Any:
    """A minimal :class:`~trustee_env.schemas.Task` for scoring calls with ``run_checks`` (no episode needed)."""
    from trustee_env.schemas import Aspects, Persona, Task

    aspects = Aspects(
        num_tools=1,
        num_calls=1,
        num_turns=1,
        prompt_specificity="detailed",
        persona="expert",
        ambiguity="clear",
        strictness=strictness,
    )
    return Task(
        task_id="t",
        seed=0,
        difficulty=50,
        aspects=aspects,
        tools=tools,
        system_prompt="s",
        persona=Persona(name="p", expertise="expert", description="d"),
        intent="i",
        first_query="q",
        expected_calls=expected,
    )


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
            # Every example value is in the state, so read tools find "their" records (the task gate checks it).
            "initial_state": {"records": [{"id": "r1", "status": "open", **_scalar_fields(calls)}]},
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
