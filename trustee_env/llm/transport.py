"""How the client's requests reach an endpoint: one aiohttp session per event loop and endpoint.

The SDK's own transport (httpx) costs ~1.8 ms of CPU per call at hundreds of calls in flight, most of
it in httpcore's connection-pool bookkeeping; aiohttp, the faster transport the SDK itself ships as
``openai[aiohttp]``, costs ~0.55 ms (``benchmarks/bench_env.py``, section ``steady_1s``). What the
rest of the client relies on is kept: the SDK's typed exceptions (``APITimeoutError``,
``APIConnectionError`` and the ``APIStatusError`` subclasses, built by the SDK itself from the
response), so retries, ``Retry-After`` and the error translation are unchanged.

Sessions are bound to the loop that made them. A small keeper task per loop closes them when the loop
shuts down (``asyncio.run`` and the sync portal cancel every task on the way out), so no session is
left unclosed.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import urllib.parse
import urllib.request
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import openai

from trustee_env.config import EndpointConfig

__all__ = [
    "AnswerTooLargeError",
    "Transport",
    "answer_byte_limit",
    "environment_proxy",
    "read_capped",
    "sdk_http_client",
    "ssl_context",
    "transport_for",
]

ANSWER_BYTES_PER_TOKEN = 256
"""Bytes of HTTP answer allowed per requested token (JSON escaping and usage fields included); see below."""
ANSWER_MIN_BYTES = 1 << 20
ERROR_BODY_MAX_BYTES = 1 << 16
"""The most of an error response read into the error (a proxy's HTML page need not be read whole)."""
KEEPALIVE_S = 4.0
"""How long an idle connection is kept: under uvicorn's 5 s (llama-cpp-python, vLLM), so the client never
reuses a connection the server is closing at that moment."""
READ_CHUNK = 1 << 16


def answer_byte_limit(max_tokens: Any) -> int:
    """The largest answer body read for a request: ``max_tokens`` x 256 bytes, at least 1 MiB.

    A server that ignores ``max_tokens`` (or a broken proxy) could otherwise send 10 MB that is read,
    decoded and parsed before validation refuses it; reading stops at the limit instead.
    """
    tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 0
    return max(ANSWER_MIN_BYTES, tokens * ANSWER_BYTES_PER_TOKEN)


class AnswerTooLargeError(Exception):
    """An answer body longer than :func:`answer_byte_limit`; a structured call re-asks, like a bad answer."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer was longer than {limit} bytes: the server ignored max_tokens")
        self.limit = limit


async def read_capped(chunks: AsyncIterator[bytes], declared: int | None, limit: int) -> bytes | None:
    """A body read from ``chunks``, or None once it is known to be longer than ``limit`` bytes.

    ``declared`` is the response's Content-Length, when it sent one: a body declared too long is not read.
    """
    if declared is not None and declared > limit:
        return None
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def _httpx() -> tuple[Any, Callable[..., Any]]:
    """The HTTP module the SDK uses and its client factory."""
    factory = getattr(openai, "DefaultAsyncHttpx2Client", None)
    if factory is not None:
        import httpx2 as httpx_module  # openai >= 3 ships its own httpx fork

        return httpx_module, factory
    import httpx as httpx_module  # pragma: no cover - older openai releases

    return httpx_module, openai.DefaultAsyncHttpxClient  # pragma: no cover


@functools.lru_cache(maxsize=2)
def ssl_context(secure: bool) -> ssl.SSLContext:
    """One TLS context per process and kind, shared by every client.

    Loading the trust store costs ~20-30 ms per context otherwise. For ``http://`` none is needed: the
    placeholder loads no certificates and still requires verification, so a redirect to ``https://``
    fails closed instead of trusting anyone.
    """
    if secure:
        return _httpx()[0].create_ssl_context()  # the SDK's default trust (system store)
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def sdk_http_client(concurrency: int, secure: bool = True) -> Any:
    """The SDK's HTTP client with the shared TLS context and ``concurrency`` keep-alive connections.

    Used for the SDK's own calls (``/models``) and by the benchmarks' bare SDK baseline.
    """
    httpx_module, factory = _httpx()
    return factory(
        limits=httpx_module.Limits(max_connections=max(1000, concurrency), max_keepalive_connections=concurrency),
        verify=ssl_context(secure),
    )


def environment_proxy(url: str) -> str | None:
    """The proxy ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` name for ``url``, unless ``NO_PROXY`` exempts it.

    Read once per transport, as the SDK's httpx client does; aiohttp's own ``trust_env`` would look it up (and
    ``~/.netrc``) in a worker thread on every request: ~0.6 ms of CPU per call.
    """
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


class Transport:
    """POSTs JSON bodies to one endpoint's ``/chat/completions`` over one aiohttp session.

    Made by :func:`transport_for` on the loop that uses it. ``sdk`` is an ``AsyncOpenAI`` client for
    the same endpoint: its headers are the ones sent, it builds the typed status errors, and the
    client lists ``/models`` through it.
    """

    def __init__(self, url: str, endpoint: EndpointConfig) -> None:
        secure = not url.startswith("http://")
        self.url = f"{url}/chat/completions"
        self.sdk = openai.AsyncOpenAI(
            base_url=url,
            api_key=endpoint.api_key or "EMPTY",
            timeout=endpoint.timeout,
            max_retries=0,  # one retry loop only: the client's
            http_client=sdk_http_client(4, secure=secure),
        )
        # What the SDK sends with every request (Accept, Content-Type, User-Agent, organisation and project
        # when set, auth), less its X-Stainless-* telemetry.
        self.headers = {
            name: value
            for name, value in self.sdk.default_headers.items()
            if isinstance(value, str) and not name.lower().startswith("x-stainless")
        }
        self.headers.update(self.sdk.auth_headers)
        # The SDK's timeout, as httpx applies it: to connecting and to each wait for the next bytes.
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=endpoint.timeout, sock_read=endpoint.timeout)
        connector = aiohttp.TCPConnector(
            limit=0,  # the client's per-endpoint limiter decides how many requests are in flight
            keepalive_timeout=KEEPALIVE_S,
            ssl=ssl_context(secure) if secure else False,
        )
        self.session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        self.proxy = environment_proxy(url)

    async def post(self, content: bytes, role: str, limit: int) -> bytes:
        """Send one request body; returns the answer's bytes.

        Raises:
            openai.APITimeoutError, openai.APIConnectionError, openai.APIStatusError: as the SDK would.
            AnswerTooLargeError: the answer is longer than ``limit`` bytes (it is not read further).
        """
        try:
            async with self.session.post(
                self.url, data=content, headers={**self.headers, "X-Trustee-Role": role}, proxy=self.proxy
            ) as response:
                if response.status >= 400:
                    body = await read_capped(response.content.iter_chunked(READ_CHUNK), None, ERROR_BODY_MAX_BYTES)
                    raise self._status_error(response, body)
                data = await read_capped(response.content.iter_chunked(READ_CHUNK), response.content_length, limit)
        except asyncio.TimeoutError as err:  # aiohttp's timeouts subclass it (and ClientError): first
            raise openai.APITimeoutError(request=self._request()) from err
        except (aiohttp.ClientError, OSError) as err:  # OSError: TLS failures, resets outside aiohttp's wrapping
            raise openai.APIConnectionError(message=f"{type(err).__name__}: {err}", request=self._request()) from err
        if data is None:
            raise AnswerTooLargeError(limit)
        return data

    def _request(self) -> Any:
        """An httpx request describing the POST, for the SDK's exceptions (which carry one)."""
        return _httpx()[0].Request("POST", self.url)

    def _status_error(self, response: aiohttp.ClientResponse, body: bytes | None) -> openai.APIStatusError:
        """The SDK's own error for this status (``RateLimitError`` for 429, ...), from an httpx mirror."""
        httpx_module = _httpx()[0]
        mirror = httpx_module.Response(
            response.status,
            headers=list(response.headers.items()),
            content=body if body is not None else b"",
            request=self._request(),
        )
        return self.sdk._make_status_error_from_response(mirror)

    async def aclose(self) -> None:
        await self.session.close()
        await self.sdk.close()


# Transports per (event loop, URL, key, timeout): sessions must not cross loops.
_transports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, float], Transport]] = (
    weakref.WeakKeyDictionary()
)
_keepers: set[asyncio.Task[None]] = set()  # held here: the loop itself keeps only weak references to tasks


def transport_for(url: str, endpoint: EndpointConfig) -> Transport:
    """The transport of the running loop for this endpoint, made on first use."""
    loop = asyncio.get_running_loop()
    per_loop = _transports.get(loop)
    if per_loop is None:
        per_loop = _transports[loop] = {}
        keeper = loop.create_task(_close_at_shutdown(per_loop), name="trustee-transport-keeper")
        _keepers.add(keeper)
        keeper.add_done_callback(_keepers.discard)
    key = (url, endpoint.api_key, endpoint.timeout)
    transport = per_loop.get(key)
    if transport is None:
        transport = per_loop[key] = Transport(url, endpoint)
    return transport


async def _close_at_shutdown(per_loop: dict[tuple[str, str, float], Transport]) -> None:
    """Wait until the loop's shutdown cancels this task, then close the loop's sessions."""
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        transports = list(per_loop.values())
        per_loop.clear()
        await asyncio.gather(*(transport.aclose() for transport in transports), return_exceptions=True)
