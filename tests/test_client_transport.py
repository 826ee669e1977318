"""The LLM client's direct POST keeps the SDK's typed errors, our retries and the answer shape.

Requests go through the SDK client's own HTTP client and headers, but not through its request
machinery; these tests pin what must not change: 429/5xx retried then ``LLMStatusError`` with the
SDK's status class underneath, timeouts and refused connections typed, the headers every server sees.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from trustee_env.config import EndpointConfig
from trustee_env.errors import LLMConnectionError, LLMStatusError, LLMTimeoutError
from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.testing import FakeLLMServer, Reply


class Answer(BaseModel):
    text: str


def _client(base_url: str, **options: Any) -> LLMClient:
    endpoint = EndpointConfig(base_url=base_url, model="fake-model", timeout=5.0, max_retries=2, **options)
    return LLMClient("tool", endpoint)


def _then_ok(*replies: Any) -> Callable[[str, dict[str, Any]], Any]:
    """A handler that answers with ``replies`` in turn, then ``{"text": "ok"}`` to every later request."""
    pending = list(replies)

    def handler(role: str, request: dict[str, Any]) -> Any:
        return pending.pop(0) if pending else {"text": "ok"}

    return handler


def _ask(client: LLMClient, usage: Usage | None = None) -> Answer:
    messages = [{"role": "user", "content": "hi"}]
    return asyncio.run(client.structured(messages, Answer, seed=1, usage=usage or Usage()))


def test_answer_headers_and_body_reach_the_server() -> None:
    with FakeLLMServer(lambda role, request: {"text": "ok"}) as server:
        usage = Usage()
        assert _ask(_client(server.base_url), usage) == Answer(text="ok")
        role, body = server.requests[-1]
    assert role == "tool"
    assert body["model"] == "fake-model" and body["seed"] == 1
    assert body["response_format"]["type"] == "json_schema"
    assert usage.roles["tool"].calls == 1 and usage.roles["tool"].completion_tokens > 0


def test_retryable_status_is_retried_then_succeeds() -> None:
    with FakeLLMServer(_then_ok(Reply(status=429), Reply(status=503))) as server:
        usage = Usage()
        assert _ask(_client(server.base_url), usage).text == "ok"
    assert usage.roles["tool"].retries == 2


@pytest.mark.parametrize(("status", "sdk_error"), [(429, openai.RateLimitError), (400, openai.BadRequestError)])
def test_status_errors_keep_the_sdk_class(status: int, sdk_error: type[Exception]) -> None:
    with FakeLLMServer(lambda role, request: Reply(status=status)) as server:
        with pytest.raises(LLMStatusError) as caught:
            _ask(_client(server.base_url, response_format="json_schema"))
        tries = len(server.requests)
    assert caught.value.status_code == status
    assert isinstance(caught.value.__cause__, sdk_error)
    assert tries == (3 if status == 429 else 1)  # 429 is retried (max_retries=2), 400 is not


def test_timeout_is_typed() -> None:
    with FakeLLMServer(lambda role, request: Reply(content={"text": "late"}, delay_s=2.0)) as server:
        client = LLMClient("tool", EndpointConfig(base_url=server.base_url, model="m", timeout=0.3, max_retries=0))
        with pytest.raises(LLMTimeoutError) as caught:
            _ask(client)
    assert isinstance(caught.value.__cause__, openai.APITimeoutError)


def test_refused_connection_is_typed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket is closed
    client = LLMClient("tool", EndpointConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0))
    with pytest.raises(LLMConnectionError) as caught:
        _ask(client)
    assert type(caught.value) is LLMConnectionError
    assert isinstance(caught.value.__cause__, openai.APIConnectionError)


def test_retry_after_is_honoured() -> None:
    import time

    with FakeLLMServer(_then_ok(Reply(status=429, headers={"Retry-After": "1"}))) as server:
        began = time.monotonic()
        assert _ask(_client(server.base_url)).text == "ok"
        waited = time.monotonic() - began
    assert waited >= 0.95  # the server's 1 s, not the client's own 0.25-0.5 s first backoff


def test_retry_after_values() -> None:
    import email.utils

    from trustee_env.llm.client import RETRY_AFTER_CAP_S, _WaitRetryAfter, retry_after_s

    def status_error(value: str | None) -> openai.APIStatusError:
        from trustee_env.llm.transport import _httpx

        httpx, _ = _httpx()  # the HTTP module this openai release uses
        headers = {"retry-after": value} if value is not None else {}
        response = httpx.Response(429, headers=headers, request=httpx.Request("POST", "http://x"))
        return openai.RateLimitError("slow down", response=response, body=None)

    assert retry_after_s(status_error("2.5")) == 2.5
    assert retry_after_s(status_error(None)) is None and retry_after_s(status_error("soon")) is None
    later = email.utils.formatdate(timeval=__import__("time").time() + 5, usegmt=True)
    assert 3 <= (retry_after_s(status_error(later)) or 0) <= 5
    assert retry_after_s(ValueError("not an HTTP error")) is None

    class State:
        class outcome:
            @staticmethod
            def exception() -> BaseException:
                return status_error("3600")

    assert _WaitRetryAfter(lambda state: 0.1)(State()) == RETRY_AFTER_CAP_S  # type: ignore[arg-type]


def test_an_answer_larger_than_the_limit_is_not_read_and_is_re_asked() -> None:
    from trustee_env.llm.client import answer_byte_limit

    limit = answer_byte_limit(512)  # the tool role's max_tokens in _client
    with FakeLLMServer(_then_ok({"text": "x" * (limit + 10)})) as server:
        usage = Usage()
        assert _ask(_client(server.base_url, max_tokens=512), usage).text == "ok"
        repair = server.requests[-1][1]["messages"][-1]["content"]
    assert f"longer than {limit} bytes" in repair
    assert usage.roles["tool"].repairs == 1


def test_an_answer_always_too_large_ends_as_a_simulator_output_error() -> None:
    from trustee_env.errors import SimulatorOutputError

    with FakeLLMServer(lambda role, request: {"text": "x" * (3 << 20)}) as server:
        with pytest.raises(SimulatorOutputError, match="bytes"):
            _ask(_client(server.base_url, max_repairs=1))
        assert len(server.requests) == 2


def test_a_streamed_body_without_a_length_stops_at_the_limit() -> None:
    from trustee_env.llm.transport import read_capped

    pulled: list[int] = []

    async def body(chunks: int):  # 64 KiB chunks, no Content-Length header
        for index in range(chunks):
            pulled.append(index)
            yield b"a" * 65536

    async def read(chunks: int, limit: int, declared: int | None = None) -> bytes | None:
        return await read_capped(body(chunks), declared, limit)

    assert asyncio.run(read(4, 1 << 20)) == b"a" * (4 * 65536)
    pulled.clear()
    assert asyncio.run(read(1000, 1 << 20)) is None
    assert len(pulled) == 17  # stopped one chunk past 1 MiB, not after 64 MB
    pulled.clear()
    assert asyncio.run(read(1000, 1 << 20, declared=64 << 20)) is None
    assert pulled == []  # a body declared too long is not read at all


def test_sessions_close_when_their_loop_ends() -> None:
    from trustee_env.llm import transport as transport_module

    with FakeLLMServer(lambda role, request: {"text": "ok"}) as server:
        client = _client(server.base_url)

        async def ask_and_keep() -> Any:
            await client.structured([{"role": "user", "content": "hi"}], Answer, seed=1, usage=Usage())
            return transport_module.transport_for(client.urls[0], client.endpoint)

        used = asyncio.run(ask_and_keep())
        assert used.session.closed  # closed by the keeper task when asyncio.run cancelled it
        again = asyncio.run(ask_and_keep())
    assert again is not used and again.session.closed  # a new loop gets its own session


def test_a_dropped_connection_is_retried_then_typed() -> None:
    with FakeLLMServer(_then_ok(Reply(drop_connection=True))) as server:
        usage = Usage()
        assert _ask(_client(server.base_url), usage).text == "ok"
        assert usage.roles["tool"].retries == 1
    with FakeLLMServer(lambda role, request: Reply(drop_connection=True)) as server:
        with pytest.raises(LLMConnectionError) as caught:
            _ask(_client(server.base_url))
        assert len(server.requests) == 3  # max_retries=2
    assert isinstance(caught.value.__cause__, openai.APIConnectionError)


def test_proxy_settings_from_the_environment_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """As with the SDK's httpx client: HTTP_PROXY carries the request (here to a host that does not resolve)."""
    with FakeLLMServer(lambda role, request: {"text": "via proxy"}) as proxy:
        for name in ("NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url.removesuffix("/v1"))
        assert _ask(_client("http://trustee-proxy-test.invalid/v1")).text == "via proxy"
        assert len(proxy.requests) == 1


def test_no_proxy_exempts_a_host_and_the_scheme_picks_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from trustee_env.llm.transport import environment_proxy

    for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert environment_proxy("http://api.example/v1") == "http://proxy.example:3128"
    assert environment_proxy("http://127.0.0.1:8000/v1") is None
    assert environment_proxy("https://api.example/v1") is None  # no HTTPS_PROXY set
    monkeypatch.setenv("ALL_PROXY", "http://all.example:8080")
    assert environment_proxy("https://api.example/v1") == "http://all.example:8080"
