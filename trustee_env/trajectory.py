"""Appending finished episodes to a JSONL file, flushed as each one ends.

Every finished trajectory is written the moment its episode ends (DESIGN rule 6), with
one ``write`` of one line under a process-wide lock per file, then ``flush`` and
``fsync``: a crash loses no episode that had ended.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["append_trajectory", "read_trajectories"]

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(path.resolve()), threading.Lock())


def append_trajectory(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one trajectory as a JSON line and make it durable."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    with _lock_for(target), open(target, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_trajectories(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield every trajectory of a JSONL file (a torn last line from a crash is skipped)."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
