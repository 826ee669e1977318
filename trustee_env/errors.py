"""One exception tree for everything Trustee raises.

```
TrusteeError                                 catch-all for Trustee
├── ConfigError(TrusteeError, ValueError)    bad keyword, TRUSTEE_* value or endpoint
├── CatalogError                             unreadable catalog or invalid tool spec
├── TemplateError                            missing template or undefined variable
├── LLMError                                 a role's LM call failed after its retries
│   ├── LLMConnectionError                   server unreachable
│   │   └── LLMTimeoutError                  the per-call deadline passed
│   ├── LLMStatusError                       non-retryable HTTP status
│   └── SimulatorOutputError                 not JSON / fails the schema after repairs
│       └── OutputTruncatedError             finish_reason == "length" on every attempt
├── ReplayMissError                          replay-only cache has no entry for a request
├── EpisodeStateError(TrusteeError, gymnasium.error.ResetNeeded)
│                                            step before reset / after the end
└── ServerError                              a local model server failed to start or stay healthy
```

Policy mistakes (bad tool-call syntax, unknown tools, invalid arguments) are never
exceptions: they come back to the agent as feedback messages. Simulator failures inside
an episode are labelled (``info["sim_fault"]``), not raised.
"""

from __future__ import annotations

from typing import Any

from gymnasium.error import ResetNeeded

__all__ = [
    "CatalogError",
    "ConfigError",
    "EpisodeStateError",
    "LLMConnectionError",
    "LLMError",
    "LLMStatusError",
    "LLMTimeoutError",
    "OutputTruncatedError",
    "ReplayMissError",
    "ServerError",
    "SimulatorOutputError",
    "TemplateError",
    "TrusteeError",
]


class TrusteeError(Exception):
    """Base class of every exception Trustee raises on purpose."""


class ConfigError(TrusteeError, ValueError):
    """A configuration value (keyword, ``TRUSTEE_*`` variable, endpoint) is invalid."""


class CatalogError(TrusteeError):
    """A tool catalog could not be read or holds an invalid tool spec."""


class TemplateError(TrusteeError):
    """A prompt template is missing or uses an undefined variable."""


class LLMError(TrusteeError):
    """A language-model call for one role failed after all its retries.

    Attributes:
        role: the simulator role that made the call (``task_generator``, ``user``, ...).
        model: the model name sent to the endpoint.
        attempts: how many requests were made before giving up.
        reason: a short machine-readable label, used as ``info["sim_fault"]["reason"]``.
    """

    reason = "llm_error"

    def __init__(self, message: str, *, role: str = "", model: str = "", attempts: int = 0) -> None:
        super().__init__(message)
        self.role = role
        self.model = model
        self.attempts = attempts


class LLMConnectionError(LLMError):
    """The endpoint could not be reached."""

    reason = "connection"


class LLMTimeoutError(LLMConnectionError):
    """The endpoint did not answer within the configured timeout."""

    reason = "timeout"


class LLMStatusError(LLMError):
    """The endpoint answered with an HTTP status that retrying will not fix."""

    reason = "http_status"

    def __init__(self, message: str, *, status_code: int, body: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code
        self.body = body


class SimulatorOutputError(LLMError):
    """The model's answer was not valid JSON for the role's schema, even after repairs."""

    reason = "invalid_output"

    def __init__(self, message: str, *, raw: str = "", errors: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.raw = raw
        self.errors = errors or []


class OutputTruncatedError(SimulatorOutputError):
    """The model hit ``max_tokens`` before finishing its answer on every attempt."""

    reason = "truncated_output"


class ReplayMissError(TrusteeError):
    """``cache_mode="replay_only"`` and the cache holds no answer for this request."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class EpisodeStateError(TrusteeError, ResetNeeded):
    """The episode was driven out of order: ``step`` before ``reset`` or after it ended."""


class ServerError(TrusteeError):
    """A local model server failed to start or to pass its health check.

    Attributes:
        cmd: the command line that was run.
        log_tail: the last lines the server printed.
    """

    def __init__(self, message: str, *, cmd: list[str] | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.cmd = cmd or []
        self.log_tail = log_tail
