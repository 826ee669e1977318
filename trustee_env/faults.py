"""Fault injection for the scripted server: wrap a handler so chosen answers go wrong.

Used by the fault-matrix test (``tests/test_fault_matrix.py``, which writes ``docs/fault-matrix.md``)
and the soak benchmark (``benchmarks/soak.py``). Each fault kind is one way an OpenAI-compatible
server can fail a request, built as a :class:`~trustee_env.testing.Reply` from the answer the
wrapped handler would have given. Two faults are not answers and are staged by the caller instead:
a server that is down from the start (a URL where nothing listens) and one that dies mid-episode
(:meth:`~trustee_env.testing.FakeLLMServer.stop`).

Example:
    >>> from trustee_env.faults import FaultPlan
    >>> from trustee_env.testing import ScriptedSimulator
    >>> handler = FaultPlan(ScriptedSimulator(), role="judge", kind="http_503", times=1)
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from typing import Any

from trustee_env.testing import Handler, Reply

__all__ = ["REPLY_FAULTS", "FaultPlan", "RandomFaults", "fault_reply"]

HUGE_BYTES = 10 * 2**20
"""The size of the ``huge_answer`` fault: a 10 MB answer."""

REPLY_FAULTS: dict[str, str] = {
    "http_429": "HTTP 429 with Retry-After: 1",
    "http_500": "HTTP 500",
    "http_503": "HTTP 503",
    "connection_reset": "connection cut before any answer",
    "read_timeout": "no answer until after the client's timeout",
    "stalled_stream": "headers and half the body, then nothing",
    "empty_content": "HTTP 200 with empty content",
    "truncated_json": "the answer cut in half, finish_reason 'length'",
    "wrong_schema": "valid JSON of another shape",
    "out_of_range": "judge verdict 7 and scores 3 (judge only)",
    "huge_answer": "a 10 MB answer (its first string field 10 MB long)",
}
"""Fault kinds a server can put into one answer, with what each sends."""


def _content(good: Reply | str | dict[str, Any]) -> Any:
    """The payload of the answer the wrapped handler gave."""
    return good.content if isinstance(good, Reply) else good


def fault_reply(kind: str, role: str, good: Reply | str | dict[str, Any], *, slow_s: float = 2.0) -> Reply | None:
    """The faulty answer of ``kind`` in place of ``good``; None when the kind does not apply to ``role``.

    ``slow_s`` is how long ``read_timeout`` and ``stalled_stream`` keep the client waiting (make it
    longer than the client's timeout).
    """
    content = _content(good)
    text = content if isinstance(content, str) else json.dumps(content)
    if kind == "http_429":
        return Reply(status=429, headers={"Retry-After": "1"})
    if kind in ("http_500", "http_503"):
        return Reply(status=int(kind[-3:]))
    if kind == "connection_reset":
        return Reply(drop_connection=True)
    if kind == "read_timeout":
        return Reply(content=content, delay_s=slow_s)
    if kind == "stalled_stream":
        return Reply(content=content, stall_s=slow_s)
    if kind == "empty_content":
        return Reply(content="")
    if kind == "truncated_json":
        return Reply(content=text[: max(1, len(text) // 2)], finish_reason="length")
    if kind == "wrong_schema":
        return Reply(content={"answer": "I am not in the schema", "items": [1, 2, 3]})
    if kind == "out_of_range":
        if role != "judge":
            return None
        value = dict(content) if isinstance(content, dict) else {}
        value["verdict"] = 7
        value["scores"] = {name: 3 for name in (value.get("scores") or {"intent": 0})}
        return Reply(content=value)
    if kind == "huge_answer":
        return Reply(content=_huge(content if isinstance(content, dict) else {"text": text}))
    raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(REPLY_FAULTS)}")


def _huge(value: dict[str, Any]) -> dict[str, Any]:
    """The answer with its first string field (depth first) 10 MB long; a ``padding`` field if it has none."""
    out = json.loads(json.dumps(value))
    stack: list[Any] = [out]
    while stack:
        node = stack.pop()
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for key, item in items:
            if isinstance(item, str):
                node[key] = "x" * HUGE_BYTES
                return out
            if isinstance(item, dict | list):
                stack.append(item)
    out["padding"] = "x" * HUGE_BYTES
    return out


class FaultPlan:
    """A handler that spoils the first ``times`` requests of one role (``times=None``: every request).

    Requests are told apart by ``(model, role)``: envs that send different model names get
    independent plans from one server, so many fault cells can share it.

    Args:
        inner: the handler giving the good answers.
        role: the role whose requests go wrong.
        kind: a key of :data:`REPLY_FAULTS`.
        times: how many requests of that role (per model) go wrong; None for all.
        slow_s: see :func:`fault_reply`.
    """

    def __init__(self, inner: Handler, *, role: str, kind: str, times: int | None = 1, slow_s: float = 2.0) -> None:
        if kind not in REPLY_FAULTS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(REPLY_FAULTS)}")
        self.inner = inner
        self.role = role
        self.kind = kind
        self.times = times
        self.slow_s = slow_s
        self.injected = 0
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, role: str, request: dict[str, Any]) -> Reply | str | dict[str, Any]:
        good = self.inner(role, request)
        if role != self.role:
            return good
        with self._lock:
            model = str(request.get("model"))
            self._seen[model] += 1
            if self.times is not None and self._seen[model] > self.times:
                return good
            self.injected += 1
        return fault_reply(self.kind, role, good, slow_s=self.slow_s) or good


class RandomFaults:
    """A handler that spoils each request with probability ``rate``, the kind drawn uniformly.

    Seeded, so a soak run is repeatable in what it injects (not in when: requests race).
    ``injected`` counts per ``(role, kind)``.
    """

    def __init__(
        self,
        inner: Handler,
        *,
        rate: float,
        kinds: tuple[str, ...] = tuple(REPLY_FAULTS),
        seed: int = 0,
        slow_s: float = 2.0,
    ) -> None:
        self.inner = inner
        self.rate = rate
        self.kinds = kinds
        self.slow_s = slow_s
        self.injected: Counter[tuple[str, str]] = Counter()
        self.requests = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, role: str, request: dict[str, Any]) -> Reply | str | dict[str, Any]:
        good = self.inner(role, request)
        with self._lock:
            self.requests += 1
            if self._rng.random() >= self.rate:
                return good
            kind = self._rng.choice(self.kinds)
        faulty = fault_reply(kind, role, good, slow_s=self.slow_s)
        if faulty is None:
            return good
        with self._lock:
            self.injected[(role, kind)] += 1
        return faulty
