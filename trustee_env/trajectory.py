"""The record of one finished episode: a typed :class:`Trajectory`, appended to JSONL as it ends.

Every finished trajectory is written the moment its episode ends (DESIGN rule 6): one ``write``
of one line under a process-wide lock per file and an advisory file lock (``flock``) across
processes, so writers in several processes never interleave. The line is then in the kernel: a
process killed right after (even with SIGKILL) loses nothing that had ended. Making it durable
against a machine crash (``fsync``, milliseconds to seconds on a busy disk) is the job of one
writer thread per process, which syncs every file written since its last pass, so an event loop
with hundreds of episodes in flight never waits on the disk. :func:`flush_trajectories` waits for
that thread (it also runs at exit).

Each line carries a ``schema_version``; :func:`read_trajectories` reads older lines too (fields
they lack take their defaults) and skips, with a :class:`TornLineWarning`, a line cut short by a
crash mid-write; the next append after such a line starts on a fresh line, so only the torn one is lost.
"""

from __future__ import annotations

import atexit
import json
import logging
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

__all__ = [
    "TRAJECTORY_SCHEMA_VERSION",
    "SimFault",
    "Timings",
    "TornLineWarning",
    "Trajectory",
    "append_trajectory",
    "flush_trajectories",
    "read_trajectories",
]

logger = logging.getLogger(__name__)

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


class TornLineWarning(UserWarning):
    """A JSONL line could not be read (cut short by a crash mid-write) and was skipped."""


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(path.resolve()), threading.Lock())


class _Syncer:
    """One daemon thread that ``fsync``s every file written since its last pass (many lines, one sync)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._dirty: set[str] = set()
        self._written = 0  # lines handed over
        self._synced = 0  # lines known durable
        self._thread: threading.Thread | None = None

    def mark(self, path: str) -> None:
        with self._cond:
            self._dirty.add(path)
            self._written += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="trustee-trajectory-sync", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._dirty))
                paths, self._dirty = self._dirty, set()
                target = self._written
            for path in paths:
                try:
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                except OSError as err:  # the line is written; only its durability against a machine crash is lost
                    logger.warning("could not fsync trajectory file %s: %s", path, err)
            with self._cond:
                self._synced = max(self._synced, target)
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        with self._cond:
            target = self._written
            return self._cond.wait_for(lambda: self._synced >= target, timeout)

    def after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]  # the thread did not survive the fork; lines already written did


_syncer = _Syncer()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_syncer.after_fork)
atexit.register(lambda: _syncer.flush(timeout=30))


def flush_trajectories(timeout: float | None = None) -> bool:
    """Wait until every trajectory appended so far in this process is ``fsync``ed; False on timeout."""
    return _syncer.flush(timeout)


def append_trajectory(path: str | os.PathLike[str], record: Trajectory | dict[str, Any]) -> None:
    """Append one trajectory as a JSON line: written at once, made durable by the writer thread soon after."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(record, Trajectory):
        line = record.to_json_line() + "\n"
    else:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    data = line.encode("utf-8")
    with _lock_for(target):
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:  # other processes (sharded vector envs, Ray workers) append to the same file
                fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a crash left a torn line: do not glue onto it
                data = b"\n" + data
            view = memoryview(data)
            while view:  # one write for a regular file; the loop only covers a short write
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)  # closing releases the flock
    _syncer.mark(os.path.abspath(target))  # the thread must find it whatever the cwd is by then


def read_trajectories(path: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Yield every trajectory of a JSONL file as a :class:`Trajectory`.

    A line that is not a whole JSON object (a crash cut it short mid-write, or a writer is appending
    it right now) is skipped with a :class:`TornLineWarning` naming the line.
    """
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                data = None
            if not isinstance(data, dict):
                warnings.warn(
                    f"{path}:{number}: skipped an unreadable line of {len(raw)} bytes "
                    "(cut short by a crash mid-write, or still being written)",
                    TornLineWarning,
                    stacklevel=2,
                )
                continue
            data.setdefault("schema_version", 1)
            yield Trajectory.model_validate(data)
