"""Per-role accounting of LM calls.

``info_view()`` holds only what is a function of seed and actions (calls, tokens,
repairs), because Gymnasium's ``check_env`` compares the ``info`` of two identical seeded
steps. Latency and cache hits live in ``timing_view()``, for ``env.stats`` and the JSONL.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["RoleUsage", "Usage"]


@dataclass
class RoleUsage:
    """Counters for one role."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    repairs: int = 0
    retries: int = 0
    cache_hits: int = 0
    latency_s: float = 0.0
    queued: int = 0  # requests that waited for a slot under the endpoint's concurrency limit
    queue_wait_s: float = 0.0  # seconds they waited (part of latency_s)

    def as_dict(self) -> dict[str, Any]:
        """The counters as a dict (``dataclasses.asdict`` deep-copies through its generic walk: ~10x slower)."""
        return {name: getattr(self, name) for name in _ROLE_FIELDS}


_ROLE_FIELDS = tuple(f.name for f in fields(RoleUsage))


@dataclass
class Usage:
    """Counters for every role of one episode (or one process, when aggregated)."""

    roles: dict[str, RoleUsage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(
        self,
        role: str,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        repairs: int = 0,
        retries: int = 0,
        cache_hit: bool = False,
        latency_s: float = 0.0,
    ) -> None:
        """Count one finished call."""
        with self._lock:
            entry = self.roles.setdefault(role, RoleUsage())
            entry.calls += 1
            entry.prompt_tokens += prompt_tokens
            entry.completion_tokens += completion_tokens
            entry.repairs += repairs
            entry.retries += retries
            entry.cache_hits += int(cache_hit)
            entry.latency_s += latency_s

    def record_queued(self, role: str, wait_s: float) -> None:
        """Count one request that queued behind the concurrency limit (not a call of its own)."""
        with self._lock:
            entry = self.roles.setdefault(role, RoleUsage())
            entry.queued += 1
            entry.queue_wait_s += wait_s

    def merge(self, other: Usage) -> None:
        """Add another Usage's counters to this one."""
        with self._lock:
            for role, theirs in other.roles.items():
                mine = self.roles.setdefault(role, RoleUsage())
                for name in _ROLE_FIELDS:
                    setattr(mine, name, getattr(mine, name) + getattr(theirs, name))

    def info_view(self) -> dict[str, dict[str, int]]:
        """Deterministic counters per role, for ``info["usage"]``."""
        return {
            role: {
                "calls": entry.calls,
                "prompt_tokens": entry.prompt_tokens,
                "completion_tokens": entry.completion_tokens,
                "repairs": entry.repairs,
            }
            for role, entry in sorted(self.roles.items())
        }

    def timing_view(self) -> dict[str, dict[str, Any]]:
        """Everything per role, including latency, transport retries and cache hits."""
        return {role: entry.as_dict() for role, entry in sorted(self.roles.items())}

    @property
    def latency_s(self) -> float:
        """Total seconds spent waiting on LM calls."""
        return sum(entry.latency_s for entry in self.roles.values())

    @property
    def queued(self) -> int:
        """Requests, all roles, that waited for a slot under an endpoint's concurrency limit."""
        return sum(entry.queued for entry in self.roles.values())

    @property
    def calls(self) -> int:
        """Total LM calls."""
        return sum(entry.calls for entry in self.roles.values())
