"""The real llama.cpp server with the bundled SmolLM2-135M model, started once per session.

These tests are marked ``real_server``; deselect them explicitly with ``-m "not real_server"``.
If the server cannot start they fail with the reason: they are never skipped silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from trustee_env.serve.local import LocalServer, ServerSpec


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A llama-cpp-python server on a free port, stopped by PID at the end of the session."""
    log = tmp_path_factory.mktemp("llama") / "server.log"
    server = LocalServer(ServerSpec(engine="llama-cpp-python", threads=max(1, os.cpu_count() or 1)), log_path=str(log))
    server.start()  # raises ServerError (test error, not skip) with the log tail if it cannot start
    try:
        yield server
    finally:
        server.stop()
        assert server.process is None
