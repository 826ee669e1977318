"""Content-addressed record/replay store for LM answers (sqlite).

The key is a hash of the *original* request (role, model, messages, sampling, schema,
seed); the value is the final validated output plus how many attempts it took and the
token usage of the recording, so a replay reports the same ``info["usage"]``.
Safe for many threads and processes: each operation opens its own short transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from trustee_env.errors import ConfigError

__all__ = ["ResponseCache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now'))
)
"""


class ResponseCache:
    """A sqlite file mapping request keys to recorded answers.

    Args:
        path: the sqlite file; created with its folder if missing.
        mode: ``read_write`` records misses and serves hits; ``replay_only`` serves hits
            and makes misses an error (the caller raises ReplayMissError).
    """

    def __init__(self, path: str | Path, mode: str = "read_write") -> None:
        if mode not in ("read_write", "replay_only"):
            raise ConfigError(f"cache mode must be 'read_write' or 'replay_only', got {mode!r}")
        self.path = Path(path)
        self.mode = mode
        if mode == "replay_only" and not self.path.exists():
            raise ConfigError(f"cache_mode='replay_only' but the cache file {self.path} does not exist")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> dict[str, Any] | None:
        """The recorded value for ``key``, or None."""
        row = self._connect().execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, role: str, value: dict[str, Any]) -> dict[str, Any]:
        """Record ``value`` under ``key`` unless an answer is recorded already; returns the one that is.

        The first recording wins, so replays stay stable. The result is ``value`` itself when it was
        recorded, else the earlier answer: a writer that lost the race (another process or episode asked
        the same request at the same moment) must carry on with that one, or its episode goes on from an
        answer that no replay will ever see.
        """
        if self.mode == "replay_only":
            return value
        cursor = self._connect().execute(
            "INSERT OR IGNORE INTO responses (key, role, value) VALUES (?, ?, ?)",
            (key, role, json.dumps(value, ensure_ascii=False)),  # key order kept: replays must be identical
        )
        if cursor.rowcount == 1:
            return value
        return self.get(key) or value

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def count_by_role(self) -> dict[str, int]:
        """How many answers are recorded for each role."""
        rows = self._connect().execute("SELECT role, COUNT(*) FROM responses GROUP BY role").fetchall()
        return {role: int(count) for role, count in rows}

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
