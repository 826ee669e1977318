"""The embedded server behind the no-configuration default, shared across processes.

The first process that needs it starts it and records ``{pid, base_url, model}`` in a
state file under a file lock; later processes (subprocess vector envs, Ray workers, a
second notebook) reuse it while it answers. The process that started it stops it at exit.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trustee_env.serve.local import LocalServer, ServerSpec, pick_engine, server_answers

__all__ = ["EmbeddedServer", "ensure_embedded_server", "stop_embedded_server"]

logger = logging.getLogger("trustee_env")
_lock = threading.Lock()
_owned: list[LocalServer] = []  # servers this process started (stopped at exit)
_current: EmbeddedServer | None = None


class EmbeddedServer:
    """Where the embedded server answers."""

    def __init__(self, base_url: str, model_name: str, pid: int | None, owned: bool, engine: str = "") -> None:
        self.base_url = base_url
        self.model_name = model_name
        self.pid = pid
        self.owned = owned
        self.engine = engine

    def serves(self, engine: str) -> bool:
        """Whether this server satisfies a request for ``engine`` (``auto`` takes any)."""
        return engine == "auto" or engine == self.engine


def _state_dir() -> Path:
    root = os.environ.get("TRUSTEE_STATE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "trustee"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _file_lock(path: Path) -> Any:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def ensure_embedded_server(engine: str = "auto", parallel: int = 1) -> EmbeddedServer:
    """Start the embedded server, or reuse the one this machine already runs."""
    global _current
    with _lock:
        if _current is not None and _current.serves(engine) and server_answers(_current.base_url) is not None:
            return _current
        state_dir = _state_dir()
        state_file = state_dir / "embedded-server.json"
        with _file_lock(state_dir / "embedded-server.lock"):
            if state_file.exists():
                try:
                    state = json.loads(state_file.read_text())
                    found = EmbeddedServer(
                        state["base_url"],
                        state["model"],
                        int(state["pid"]),
                        owned=False,
                        engine=state.get("engine", ""),
                    )
                    if found.serves(engine) and _alive(found.pid or 0) and server_answers(found.base_url) is not None:
                        _current = found
                        logger.info("trustee: reusing the embedded model server at %s", _current.base_url)
                        return _current
                except (ValueError, KeyError, OSError):
                    pass
            chosen = pick_engine(engine)  # an explicit engine is honoured or refused, never swapped
            server = LocalServer(ServerSpec(engine=chosen, parallel=parallel, threads=max(1, os.cpu_count() or 1)))
            logger.warning(
                "trustee: no base_url given; starting the embedded %s server with %s%s. "
                "Pass base_url=... for a real simulator.",
                chosen,
                server.model_name,
                "" if chosen == "vllm" else " (a small smoke-test model)",
            )
            server.start()
            if not _owned:
                atexit.register(stop_embedded_server)
            _owned.append(server)
            state_file.write_text(
                json.dumps(
                    {"pid": server.pid, "base_url": server.base_url, "model": server.model_name, "engine": chosen}
                )
            )
            _current = EmbeddedServer(server.base_url, server.model_name, server.pid, owned=True, engine=chosen)
            logger.warning("trustee: embedded server ready at %s (%.1fs)", server.base_url, server.startup_s or 0)
            return _current


def stop_embedded_server() -> None:
    """Stop the embedded server if this process started it."""
    global _current
    with _lock:
        while _owned:
            _owned.pop().stop()
        _current = None
