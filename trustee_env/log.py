"""The ``trustee_env`` logger: quiet by default, ``TRUSTEE_LOG_LEVEL``, rate-limited fault and repair warnings.

A library should not print unless asked: the ``trustee_env`` logger gets a ``NullHandler`` (so
Python's last-resort handler stays silent) and no level of its own (so an application's logging
configuration, or pytest's ``caplog``, decides). Two ways to see its records:

* ``TRUSTEE_LOG_LEVEL=INFO`` (or ``WARNING``, ``DEBUG``...) attaches one stderr handler at import;
* :func:`configure` does the same from code (the ``trustee`` command calls it).

Simulator faults and repair round-trips can happen thousands of times in a long run. They go
through :data:`faults`, a :class:`RateLimiter`: the first few of each kind are logged as they
come, then one summary line per interval counts the rest, so a 10,000-episode run stays readable.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

__all__ = [
    "LOGGER_NAME",
    "RateLimiter",
    "configure",
    "configured",
    "faults",
    "level_number",
    "logger",
    "repair",
    "sim_fault",
]

LOGGER_NAME = "trustee_env"
logger = logging.getLogger(LOGGER_NAME)
logger.addHandler(logging.NullHandler())

_FORMAT = "%(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (rich's live progress display swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it
        pass


def level_number(level: int | str) -> int:
    """``"info"`` -> ``logging.INFO``; ValueError for a name logging does not know."""
    if isinstance(level, int):
        return level
    resolved = logging.getLevelName(level.strip().upper())
    if not isinstance(resolved, int):
        raise ValueError(f"unknown log level {level!r} (use DEBUG, INFO, WARNING, ERROR or CRITICAL)")
    return resolved


def configure(level: int | str | None = None, *, fmt: str = _FORMAT) -> logging.Handler | None:
    """Send ``trustee_env`` records at ``level`` and above to stderr (one handler, replaced on each call).

    ``level=None`` reads ``TRUSTEE_LOG_LEVEL``; when that is unset too, nothing changes and None is
    returned. Raises ValueError for an unknown level name.
    """
    if level is None:
        level = os.environ.get("TRUSTEE_LOG_LEVEL") or None
        if level is None:
            return None
    level = level_number(level)
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(fmt))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # one line per record, even when the root logger also prints
    return handler


@contextlib.contextmanager
def configured(level: int | str | None = None, *, fmt: str = _FORMAT) -> Iterator[None]:
    """:func:`configure` for the duration of a block, then the logger as it was (handlers, level, propagation).

    The ``trustee`` command runs under it, so calling ``trustee_env.cli.main`` in-process leaves no handler behind.
    """
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        configure(level, fmt=fmt)
        yield
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


class RateLimiter:
    """Log the first ``first`` records of each kind, then one summary per ``interval_s`` seconds.

    Kinds are free strings (``"sim_fault"``, ``"repair"``); each summary names the sub-keys it
    counted (e.g. ``tool/invalid_output: 12``). Nothing runs in the background: a summary is due
    on the next record after the interval, and :meth:`flush` (called at exit) writes what is left.
    """

    def __init__(self, first: int = 5, interval_s: float = 60.0, *, clock: Any = time.monotonic) -> None:
        self.first = first
        self.interval_s = interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        self._held: dict[str, Counter[str]] = {}
        self._last_summary: dict[str, float] = {}

    def log(self, kind: str, key: str, level: int, msg: str, *args: Any) -> bool:
        """Log one record of ``kind`` (summarised under ``key`` once held back); True when it was written."""
        if not logger.isEnabledFor(level):
            return False
        now = self.clock()
        with self._lock:
            self._seen[kind] += 1
            write = self._seen[kind] <= self.first
            announce = self._seen[kind] == self.first
            if not write:
                self._held.setdefault(kind, Counter())[key] += 1
                self._last_summary.setdefault(kind, now)
            elif announce:
                self._last_summary[kind] = now
            summary = self._take_due(kind, now)
        if write:
            logger.log(level, msg, *args)
            if announce:
                logger.log(level, "trustee: further %s messages are summarised every %.0f s", kind, self.interval_s)
        if summary:
            logger.log(level, "%s", summary)
        return write

    def _take_due(self, kind: str, now: float) -> str | None:
        held = self._held.get(kind)
        if not held or now - self._last_summary.get(kind, now) < self.interval_s:
            return None
        self._last_summary[kind] = now
        self._held[kind] = Counter()
        return self._summary(kind, held)

    @staticmethod
    def _summary(kind: str, held: Counter[str]) -> str:
        parts = ", ".join(f"{key}: {count}" for key, count in held.most_common(8))
        more = "" if len(held) <= 8 else f", and {len(held) - 8} more kinds"
        return f"trustee: {sum(held.values())} more {kind} messages held back ({parts}{more})"

    def flush(self) -> None:
        """Write the summary of whatever is held back, now."""
        with self._lock:
            pending = [(kind, held) for kind, held in self._held.items() if held]
            self._held = {}
        for kind, held in pending:
            logger.warning("%s", self._summary(kind, held))

    def counts(self) -> dict[str, int]:
        """How many records of each kind were seen (written or held back)."""
        with self._lock:
            return dict(self._seen)

    def reset(self) -> None:
        """Forget every count (tests; a new run in the same process)."""
        with self._lock:
            self._seen.clear()
            self._held.clear()
            self._last_summary.clear()


faults = RateLimiter()
atexit.register(faults.flush)


def sim_fault(fault: dict[str, Any]) -> None:
    """A simulator failed after its retries and ended an episode (``info["sim_fault"]``)."""
    key = f"{fault.get('role', 'unknown')}/{fault.get('reason', 'unknown')}"
    message = " ".join(str(fault.get("message", "")).split())[:200]
    faults.log("sim_fault", key, logging.WARNING, "trustee: sim fault (%s): %s", key, message)


def repair(role: str, errors: list[str]) -> None:
    """A simulator's answer failed its schema or checks and is being re-asked."""
    first = " ".join(str(errors[0]).split())[:160] if errors else "invalid answer"
    faults.log("repair", role, logging.WARNING, "trustee: repairing the %s's answer: %s", role, first)


def _configure_from_env() -> None:
    try:
        configure()
    except ValueError as err:  # a typo in TRUSTEE_LOG_LEVEL must not break ``import trustee_env``
        configure("WARNING")
        logger.warning("TRUSTEE_LOG_LEVEL: %s; using WARNING", err)


_configure_from_env()
