"""The record of one finished episode: a typed :class:`Trajectory`, appended to JSONL as it ends.

Every finished trajectory is written the moment its episode ends (DESIGN rule 6), with
one ``write`` of one line under a process-wide lock per file and an advisory file lock
(``flock``) across processes, then ``flush`` and ``fsync``: a crash loses no episode that had
ended, and writers in several processes never interleave. Each line carries a ``schema_version``;
:func:`read_trajectories` reads older lines too (fields they lack take their defaults).
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

try:  # POSIX: an advisory lock makes one line per write whole across processes, off local disks too
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from trustee_env.checks import CallRecord
from trustee_env.roles.judge import Verdict
from trustee_env.schemas import Aspects, Task

__all__ = ["TRAJECTORY_SCHEMA_VERSION", "SimFault", "Timings", "Trajectory", "append_trajectory", "read_trajectories"]

TRAJECTORY_SCHEMA_VERSION = 2
"""1: the untyped dicts of trustee-env 0.1 (no ``schema_version`` key); 2: this model."""


class SimFault(BaseModel):
    """Why a simulator role failed after its retries (the episode is labelled, not punished)."""

    role: str = "unknown"
    reason: str = "unknown"
    attempts: int = 0
    message: str = ""


class Timings(BaseModel):
    """Where an episode's time went (seconds)."""

    wall_s: float = 0.0
    env_busy_s: float = 0.0
    lm_wait_s: float = 0.0
    env_overhead_s: float = 0.0


class Trajectory(BaseModel):
    """One finished episode, as written to JSONL and read back: the one shape trainers and viewers use."""

    model_config = ConfigDict(extra="allow")  # keys added by newer versions survive a read-write round trip

    schema_version: int = TRAJECTORY_SCHEMA_VERSION
    episode_id: int = 0
    seed: int | None = None
    member: int = 0
    slot: int | None = Field(default=None, description="Vector env sub-env index.")
    group_id: str | None = Field(default=None, description="GRPO group (vector env).")
    task: Task | None = None
    difficulty: float | None = None
    aspects: Aspects | None = None
    messages: list[dict[str, Any]] = Field(default_factory=list)
    calls: list[CallRecord] = Field(default_factory=list)
    world_state: dict[str, Any] = Field(default_factory=dict)
    termination: str | None = None
    reward: float = 0.0
    verdict: Verdict | None = None
    sim_fault: SimFault | None = None
    parse_errors: int = 0
    user_gate_overrides: int = 0
    usage: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Per role: calls, tokens, latency.")
    timings: Timings = Field(default_factory=Timings)
    transcript: list[str] = Field(default_factory=list, description="What the simulators saw, policy text fenced.")
    created: float = 0.0

    @property
    def success(self) -> bool:
        """Reward > 0 and no simulator fault."""
        return self.sim_fault is None and self.reward > 0

    def to_json_line(self) -> str:
        """One JSONL line (no trailing newline)."""
        return self.model_dump_json(exclude_none=False)

    # Deprecated dict-style access, for code written against trustee-env 0.1's dict records.
    def __getitem__(self, key: str) -> Any:
        warnings.warn(
            "trajectory records are Trajectory models now: use attribute access (record.reward), "
            "or record.model_dump(mode='json') for a dict; dict-style access will be removed in 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.model_dump(mode="json")[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Deprecated: see ``__getitem__``."""
        try:
            return self[key]
        except KeyError:
            return default


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(path.resolve()), threading.Lock())


def append_trajectory(path: str | os.PathLike[str], record: Trajectory | dict[str, Any]) -> None:
    """Append one trajectory as a JSON line and make it durable."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(record, Trajectory):
        line = record.to_json_line() + "\n"
    else:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    with _lock_for(target), open(target, "a", encoding="utf-8") as handle:
        if fcntl is not None:  # other processes (sharded vector envs, Ray workers) append to the same file
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_trajectories(path: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Yield every trajectory of a JSONL file as a :class:`Trajectory` (a torn last line from a crash is skipped)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                data.setdefault("schema_version", 1)
                yield Trajectory.model_validate(data)
