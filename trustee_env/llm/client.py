"""The async OpenAI-compatible client shared by every role.

One call = one role asking for one structured answer:

1. look the request up in the record/replay cache;
2. send it with the answer constrained to a JSON schema (OpenAI ``json_schema`` for vLLM and
   llama-server, ``json_object`` + ``schema`` for llama-cpp-python; ``auto`` tries the first and
   falls back once per endpoint, only when the server rejects the ``response_format`` itself: vLLM
   ignores ``schema`` in ``json_object`` mode, so a fallback there would turn enforcement off), with
   every object in the schema closed and the role's sampling settings sent explicitly;
3. retry transport failures (429, 5xx, timeouts, refused connections) with exponential
   backoff, outside the concurrency slot;
4. parse leniently (raw newlines in strings, trailing commas), validate with pydantic and
   the role's own checks, and re-ask with the errors appended (bounded repairs);
5. record usage, and the final validated answer in the cache.

``openai.*`` exceptions are translated to the Trustee tree here and nowhere else.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import json_repair
import openai
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from trustee_env.config import EndpointConfig
from trustee_env.errors import (
    LLMConnectionError,
    LLMError,
    LLMStatusError,
    LLMTimeoutError,
    OutputTruncatedError,
    ReplayMissError,
    SimulatorOutputError,
)
from trustee_env.llm.cache import ResponseCache
from trustee_env.llm.limits import limiter_for, pool_for
from trustee_env.llm.transport import AnswerTooLargeError, Transport, answer_byte_limit, transport_for
from trustee_env.llm.usage import Usage
from trustee_env.log import repair as log_repair
from trustee_env.prompts import render
from trustee_env.schemas import content_hash

__all__ = ["LLMClient", "closed_schema", "is_retryable", "parse_json_output", "response_formats"]

T = TypeVar("T", bound=BaseModel)
Validator = Callable[[Any], list[str]]

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
# An error about the response format's type itself (llama-cpp-python: 422 "response_format.type: Input should be
# 'text' or 'json_object'"; others: "response_format type json_schema is not supported"), not about the schema
# inside it, the prompt length or anything else the same status may mean.
_FORMAT_REJECTED_RE = re.compile(
    r"json_object|response_format\W+type|response_format[^.]{0,60}(?:not supported|unsupported)", re.IGNORECASE
)
logger = logging.getLogger("trustee_env")
_FENCE_RE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)

# Per-process knowledge about endpoints, shared by all loops.
_format_for_url: dict[str, str] = {}
_fallback_reason: dict[str, str] = {}
_model_for_url: dict[str, str] = {}
_endpoint_lock = threading.Lock()


def is_retryable(exc: BaseException) -> bool:
    """Transport failures worth another try: refused/reset connections, timeouts, 408/409/429/5xx."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRYABLE_STATUS
    return False


RETRY_AFTER_CAP_S = 30.0
"""The longest ``Retry-After`` honoured; a server asking for more gets this, then the retry budget decides."""


def retry_after_s(exc: BaseException | None) -> float | None:
    """The wait a 429/503 asks for in its ``Retry-After`` header (seconds or an HTTP date), if any."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


class _WaitRetryAfter:
    """Tenacity wait: the server's ``Retry-After`` (capped) when it sent one, else ``fallback``'s backoff."""

    def __init__(self, fallback: Callable[[RetryCallState], float]) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        asked = retry_after_s(outcome.exception() if outcome is not None else None)
        return min(asked, RETRY_AFTER_CAP_S) if asked is not None else self.fallback(retry_state)


def parse_json_output(text: str) -> Any:
    """Parse a model's JSON answer leniently; raise ValueError with a readable reason."""
    stripped = text.strip()
    match = _FENCE_RE.match(stripped)
    if match:
        stripped = match.group(1)
    if not stripped:
        raise ValueError("the answer was empty")
    try:
        return json.loads(stripped, strict=False)
    except json.JSONDecodeError as err:
        repaired = json_repair.loads(stripped)
        if isinstance(repaired, (dict, list)) and repaired:
            return repaired
        raise ValueError(f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None


def response_formats() -> dict[str, dict[str, str | None]]:
    """The structured-output mode in use per endpoint URL in this process, and why it changed, if it did.

    ``{"http://.../v1": {"mode": "json_schema", "fallback": None}}``; shown in ``env.unwrapped.stats``.
    """
    with _endpoint_lock:
        return {url: {"mode": mode, "fallback": _fallback_reason.get(url)} for url, mode in _format_for_url.items()}


def closed_schema(schema: Any) -> Any:
    """A copy of ``schema`` in which every object that lists properties forbids others.

    Grammar engines otherwise let the model invent keys (under vLLM's guidance backend, 10 of 11
    task-generator answers of a small model ran away with nested made-up keys). An object that sets
    ``additionalProperties`` itself (a map, or an explicit ``true``) keeps it.
    """
    if isinstance(schema, list):
        return [closed_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {name: closed_schema(sub) for name, sub in value.items()}  # names, not a schema
        elif key in ("enum", "const", "default", "examples", "required"):
            out[key] = value  # data
        else:
            out[key] = closed_schema(value)
    if isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=64)
def _schema_for(output: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with every object closed, built once (pydantic regenerates it per call)."""
    return cast(dict[str, Any], closed_schema(output.model_json_schema()))


def _json_default(value: Any) -> Any:
    """What the SDK's request encoder does with values JSON lacks (pydantic models, datetimes)."""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True, mode="json", by_alias=True)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _validation_messages(err: ValidationError) -> list[str]:
    out = []
    for error in err.errors()[:8]:
        loc = "/".join(str(part) for part in error["loc"]) or "(root)"
        out.append(f"{loc}: {error['msg']}")
    return out


_EXTRA_SAMPLING = ("top_k", "min_p", "repetition_penalty", "frequency_penalty", "presence_penalty")


def sampling_body(endpoint: EndpointConfig) -> dict[str, Any]:
    """The sampling fields sent with every request of a role, so every engine samples alike.

    llama-cpp-python's server defaults to top_k 40, min_p 0.05 and a repeat penalty of 1.1; vLLM to
    no top-k, no min-p and no penalty. The repetition penalty goes under both engines' names
    (``repetition_penalty`` for vLLM, ``repeat_penalty`` for llama.cpp; each ignores the other's).
    A setting of None is not sent (for endpoints that refuse fields outside OpenAI's API).
    """
    body: dict[str, Any] = {
        "temperature": endpoint.temperature,
        "top_p": endpoint.top_p,
        "frequency_penalty": endpoint.frequency_penalty,
        "presence_penalty": endpoint.presence_penalty,
    }
    if endpoint.top_k is not None:
        body["top_k"] = endpoint.top_k
    if endpoint.min_p is not None:
        body["min_p"] = endpoint.min_p
    if endpoint.repetition_penalty is not None:
        body["repetition_penalty"] = body["repeat_penalty"] = endpoint.repetition_penalty
    return body


def _format_rejected(err: openai.APIStatusError) -> bool:
    """Whether an error response says the ``response_format`` itself is not accepted."""
    if err.status_code not in (400, 422, 500):
        return False
    body = err.body if err.body is not None else err.message
    return bool(_FORMAT_REJECTED_RE.search(json.dumps(body, default=str) if not isinstance(body, str) else body))


def _fall_back(url: str, err: openai.APIStatusError) -> None:
    """Switch ``url`` to ``json_object`` + ``schema`` for the rest of the process, with one warning."""
    body = err.body if err.body is not None else err.message
    reason = f"HTTP {err.status_code}: {str(body)[:200]}"
    with _endpoint_lock:
        first = _format_for_url.get(url) != "json_object"
        _format_for_url[url] = "json_object"
        _fallback_reason.setdefault(url, reason)
    if first:
        logger.warning(
            "trustee: %s rejected response_format json_schema (%s); using json_object with the schema from now on "
            "(set response_format explicitly to skip this probe)",
            url,
            reason,
        )


class LLMClient:
    """Structured and free-text chat calls for one role on one endpoint (or a pool of them).

    Args:
        role: role name, sent as the ``X-Trustee-Role`` header and used in errors and usage.
        endpoint: the resolved endpoint settings of that role.
        cache: optional record/replay store.
        prompt_dir: folder searched before the bundled prompts (for ``repair.j2``).
    """

    def __init__(
        self,
        role: str,
        endpoint: EndpointConfig,
        *,
        cache: ResponseCache | None = None,
        prompt_dir: str | None = None,
    ) -> None:
        if not endpoint.base_url:
            raise LLMConnectionError(f"role {role!r} has no base_url", role=role)
        self.role = role
        self.endpoint = endpoint
        self.cache = cache
        self.prompt_dir = prompt_dir
        urls = [endpoint.base_url] if isinstance(endpoint.base_url, str) else list(endpoint.base_url)
        self.urls = [url.rstrip("/") for url in urls]
        self._pool = pool_for(self.urls)
        self._limiters = {url: limiter_for(url, endpoint.concurrency) for url in self.urls}
        self._sampling = sampling_body(endpoint)

    # ------------------------------------------------------------------ public calls

    async def structured(
        self,
        messages: list[dict[str, Any]],
        output: type[T],
        *,
        seed: int,
        usage: Usage,
        schema: dict[str, Any] | None = None,
        validate: Validator | None = None,
    ) -> T:
        """Ask for an answer matching ``schema`` (default: ``output``'s schema) and return it as ``output``.

        Raises:
            SimulatorOutputError: still invalid after ``max_repairs`` re-asks.
            OutputTruncatedError: every attempt stopped at ``max_tokens``.
            LLMConnectionError, LLMTimeoutError, LLMStatusError: transport failures after retries.
            ReplayMissError: replay-only cache without this request.
        """
        schema = schema or _schema_for(output)
        # The key names the configured model, so a replay needs no server to resolve "auto".
        # Hashing the whole request costs as much as sending it: only done when there is a cache.
        key = (
            self._cache_key(kind="structured", messages=messages, seed=seed, schema=schema)
            if self.cache is not None
            else ""
        )
        cached = self._cache_get(key)
        if cached is not None:
            usage.record(self.role, cache_hit=True, **cached["usage"])
            return self._from_entry(cached, output, self.endpoint.model or "")
        model = await self._model()

        started = time.perf_counter()
        attempt_messages = list(messages)
        errors: list[str] = []
        raw = ""
        totals = {"prompt_tokens": 0, "completion_tokens": 0}
        retries = 0
        truncated = 0
        attempts = self.endpoint.max_repairs + 1
        for attempt in range(attempts):
            too_large: str | None = None
            try:
                completion, tries = await self._send(
                    model,
                    attempt_messages,
                    seed=seed + attempt,
                    schema=schema,
                    max_tokens=self.endpoint.max_tokens,
                    usage=usage,
                )
            except AnswerTooLargeError as err:  # never parsed: re-asked like an answer that fails its schema
                completion, tries = {"choices": [{"message": {"content": ""}}]}, 0
                too_large = f"{err}; write a short answer that follows the schema"
            retries += tries
            tokens = completion.get("usage") or {}
            totals["prompt_tokens"] += tokens.get("prompt_tokens") or 0
            totals["completion_tokens"] += tokens.get("completion_tokens") or 0
            choice = completion["choices"][0]
            raw = (choice.get("message") or {}).get("content") or ""
            if too_large:
                errors = [too_large]
            elif choice.get("finish_reason") == "length":
                truncated += 1
                errors = ["your answer was cut off at the length limit: write shorter values and close the JSON"]
            else:
                try:
                    value = output.model_validate(parse_json_output(raw))
                    errors = validate(value) if validate else []
                except ValueError as err:  # includes ValidationError
                    errors = _validation_messages(err) if isinstance(err, ValidationError) else [str(err)]
                if not errors:
                    usage.record(
                        self.role,
                        repairs=attempt,
                        retries=retries,
                        latency_s=time.perf_counter() - started,
                        prompt_tokens=totals["prompt_tokens"],
                        completion_tokens=totals["completion_tokens"],
                    )
                    if self.cache is not None:
                        entry = {"usage": {**totals, "repairs": attempt}, "output": value.model_dump(mode="json")}
                        recorded = self._cache_put(key, entry)
                        if recorded is not entry:  # another writer recorded this request first: its answer wins
                            return self._from_entry(recorded, output, model)
                    return value
            if attempt + 1 < attempts:
                log_repair(self.role, errors)  # rate-limited
                attempt_messages = [
                    *messages,
                    {"role": "assistant", "content": raw[:3000]},
                    {"role": "user", "content": render("repair.j2", self.prompt_dir, errors=errors)},
                ]
        usage.record(
            self.role,
            repairs=attempts - 1,
            retries=retries,
            latency_s=time.perf_counter() - started,
            prompt_tokens=totals["prompt_tokens"],
            completion_tokens=totals["completion_tokens"],
        )
        error_cls = OutputTruncatedError if truncated == attempts else SimulatorOutputError
        failure = {
            "class": error_cls.__name__,
            "message": f"{self.role}: no valid answer after {attempts} attempts: {'; '.join(errors)[:500]}",
            "raw": raw[:3000],
            "errors": errors,
            "attempts": attempts,
        }
        # Failures are recorded too, so a replay reproduces the same sim fault instead of missing.
        entry = {"usage": {**totals, "repairs": attempts - 1}, "failure": failure}
        recorded = self._cache_put(key, entry)
        if recorded is not entry:  # another writer recorded this request first: its answer wins
            return self._from_entry(recorded, output, model)
        raise self._failure(failure, model)

    def _from_entry(self, entry: dict[str, Any], output: type[T], model: str) -> T:
        """The answer a cache entry holds, as ``structured`` returns it (raised, if it is a failure)."""
        if "failure" in entry:
            raise self._failure(entry["failure"], model)
        return output.model_validate(entry["output"])

    def _failure(self, failure: dict[str, Any], model: str) -> SimulatorOutputError:
        error_cls = OutputTruncatedError if failure["class"] == OutputTruncatedError.__name__ else SimulatorOutputError
        return error_cls(
            failure["message"],
            raw=failure["raw"],
            errors=failure["errors"],
            role=self.role,
            model=model,
            attempts=failure["attempts"],
        )

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        seed: int,
        usage: Usage,
        tools: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A free-text completion (the policy's turn); returns the assistant message as a dict."""
        key = self._cache_key(kind="chat", messages=messages, seed=seed, schema=tools) if self.cache is not None else ""
        cached = self._cache_get(key)
        if cached is not None:
            usage.record(self.role, cache_hit=True, **cached["usage"])
            return dict(cached["output"])
        model = await self._model()
        started = time.perf_counter()
        try:
            data, retries = await self._send(
                model, messages, seed=seed, schema=None, max_tokens=self.endpoint.max_tokens, tools=tools, usage=usage
            )
        except AnswerTooLargeError as err:
            raise LLMError(f"{self.role} @ {', '.join(self.urls)}: {err}", role=self.role, model=model) from None
        # The SDK's own typed parse (what ``cast_to=ChatCompletion`` did), for its tool-call objects.
        completion = ChatCompletion.model_construct(**data)
        message = completion.choices[0].message
        out: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
        if message.tool_calls:
            out["tool_calls"] = [call.model_dump(mode="json", exclude_none=True) for call in message.tool_calls]
        tokens = {
            "prompt_tokens": completion.usage.prompt_tokens if completion.usage else 0,
            "completion_tokens": completion.usage.completion_tokens if completion.usage else 0,
        }
        usage.record(self.role, retries=retries, latency_s=time.perf_counter() - started, **tokens)
        recorded = self._cache_put(key, {"usage": {**tokens, "repairs": 0}, "output": out})
        return dict(recorded["output"])  # another writer's, when it recorded this request first

    # ------------------------------------------------------------------ internals

    def _cache_key(self, **request: Any) -> str:
        sampling = {
            "temperature": self.endpoint.temperature,
            "top_p": self.endpoint.top_p,
            "max_tokens": self.endpoint.max_tokens,
            "repairs": self.endpoint.max_repairs,
        }
        # The other sampling settings enter the key only when changed from their defaults, so caches
        # recorded before they were sent explicitly still replay.
        for name in _EXTRA_SAMPLING:
            value = getattr(self.endpoint, name)
            if value != EndpointConfig.model_fields[name].default:
                sampling[name] = value
        model = self.endpoint.model or "auto"  # "auto": whatever the endpoint serves first
        return content_hash({"role": self.role, "model": model, "sampling": sampling, **request}, length=64)

    def _cache_get(self, key: str) -> dict[str, Any] | None:
        if self.cache is None or not key:
            return None
        hit = self.cache.get(key)
        if hit is None and self.cache.mode == "replay_only":
            raise ReplayMissError(
                f"replay-only cache {self.cache.path} has no answer for this {self.role} request (key {key[:16]}); "
                "record it first with cache_mode='read_write'",
                key=key,
            )
        return hit

    def _cache_put(self, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """Record ``value``; returns what the cache holds for ``key`` now (``value`` itself, unless another
        writer recorded this request first: see ``ResponseCache.put``)."""
        if self.cache is None:
            return value
        return self.cache.put(key, self.role, value)

    async def _model(self) -> str:
        if self.endpoint.model:
            return self.endpoint.model
        url = self.urls[0]
        with _endpoint_lock:
            known = _model_for_url.get(url)
        if known:
            return known
        try:
            page = await transport_for(url, self.endpoint).sdk.models.list()
        except openai.OpenAIError as err:
            raise self._translate(err, attempts=1) from err
        if not page.data:
            raise LLMStatusError(f"{url}/models lists no model; pass model=...", status_code=404, role=self.role)
        with _endpoint_lock:
            _model_for_url[url] = page.data[0].id
        return page.data[0].id

    def _response_format(self, url: str, schema: dict[str, Any]) -> dict[str, Any]:
        mode = self.endpoint.response_format
        with _endpoint_lock:
            if mode == "auto":
                mode = _format_for_url.setdefault(url, "json_schema")
            else:
                _format_for_url.setdefault(url, mode)
        if mode == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": self.role, "schema": schema}}

    async def _send(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        seed: int,
        schema: dict[str, Any] | None,
        max_tokens: int,
        tools: list[dict[str, Any]] | None = None,
        usage: Usage | None = None,
    ) -> tuple[dict[str, Any], int]:
        """One request with transport retries; returns (the completion as decoded JSON, retries used)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.endpoint.max_retries + 1),
            wait=_WaitRetryAfter(wait_exponential_jitter(multiplier=0.25, max=8.0, jitter=0.25)),
            retry=retry_if_exception(is_retryable),
            reraise=True,
        )
        tried: set[str] = set()
        attempt_number = 0
        try:
            async for attempt in retrying:
                attempt_number = attempt.retry_state.attempt_number
                with attempt:
                    url = self._pool.choose(exclude=tried if len(tried) < len(self.urls) else set())
                    failed = False
                    try:
                        return await self._send_once(url, model, messages, seed, schema, max_tokens, tools, usage), (
                            attempt_number - 1
                        )
                    except openai.APIConnectionError:
                        failed = True
                        tried.add(url)
                        raise
                    finally:
                        self._pool.done(url, failed=failed)
        except openai.OpenAIError as err:
            raise self._translate(err, attempts=attempt_number, model=model) from err
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(
        self,
        url: str,
        model: str,
        messages: list[dict[str, Any]],
        seed: int,
        schema: dict[str, Any] | None,
        max_tokens: int,
        tools: list[dict[str, Any]] | None,
        usage: Usage | None = None,
    ) -> dict[str, Any]:
        transport = transport_for(url, self.endpoint)
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            **self._sampling,
            "max_tokens": max_tokens,
            "seed": seed,
        }
        if tools:
            body["tools"] = tools
        if self.endpoint.chat_template_kwargs:
            body["chat_template_kwargs"] = self.endpoint.chat_template_kwargs
        limiter = self._limiters[url]
        started = time.perf_counter()
        if await limiter.acquire() and usage is not None:
            usage.record_queued(self.role, time.perf_counter() - started)
        try:
            if schema is None:
                return await self._post(transport, body)
            fmt = self._response_format(url, schema)
            try:
                return await self._post(transport, {**body, "response_format": fmt})
            except openai.APIStatusError as err:
                # llama-cpp-python rejects OpenAI's json_schema form; fall back once per endpoint, and only
                # then: any other 400 (a prompt over the context, a schema the grammar engine refuses) is
                # raised as it is, since vLLM would take json_object but ignore its schema.
                if self.endpoint.response_format == "auto" and fmt["type"] == "json_schema" and _format_rejected(err):
                    _fall_back(url, err)
                    return await self._post(transport, {**body, "response_format": self._response_format(url, schema)})
                raise
        finally:
            limiter.release()

    async def _post(self, transport: Transport, body: dict[str, Any]) -> dict[str, Any]:
        """POST /chat/completions with our JSON as is; returns the answer as decoded JSON.

        Sent through :mod:`trustee_env.llm.transport`, with the SDK's headers and exceptions
        (``APITimeoutError``, ``APIConnectionError``, and ``APIStatusError`` subclasses built by the SDK
        itself from the response), so retries and error translation are unchanged. What is skipped is the
        SDK's per-request machinery (request options model, header merging, URL building, response
        wrappers and the ``ChatCompletion`` object tree) and its httpx connection pool: together ~2 ms of
        CPU per call at hundreds in flight (``benchmarks/bench_env.py``, section ``steady_1s``).
        ``chat.completions.create`` would also walk every message and schema (~2 ms for a task-generator
        schema).
        """
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default)
        data = await transport.post(content.encode(), self.role, answer_byte_limit(body.get("max_tokens")))
        return cast(dict[str, Any], json.loads(data))

    def _translate(self, err: openai.OpenAIError, *, attempts: int, model: str = "") -> LLMError:
        where = f"{self.role} @ {', '.join(self.urls)}"
        common = {"role": self.role, "model": model or (self.endpoint.model or ""), "attempts": attempts}
        if isinstance(err, openai.APITimeoutError):
            return LLMTimeoutError(
                f"{where}: no answer within {self.endpoint.timeout}s ({attempts} attempts)", **common
            )
        if isinstance(err, openai.APIConnectionError):
            return LLMConnectionError(f"{where}: cannot connect ({attempts} attempts): {err}", **common)
        if isinstance(err, openai.APIStatusError):
            body = err.body if err.body is not None else err.message
            return LLMStatusError(
                f"{where}: HTTP {err.status_code} after {attempts} attempts: {str(body)[:300]}",
                status_code=err.status_code,
                body=body,
                **common,
            )
        return LLMError(f"{where}: {err}", **common)
