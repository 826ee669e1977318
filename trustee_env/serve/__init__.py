"""Starting, health-checking and stopping a real local model server.

``LocalServer`` runs one server as a child process (llama.cpp's ``llama-server``, the
``llama-cpp-python`` server, or vLLM); ``ensure_embedded_server`` gives a process (and its
siblings) one shared embedded server for the no-configuration default.
"""

from trustee_env.serve.local import (
    DEFAULT_MODEL_ALIAS,
    LocalServer,
    ServerSpec,
    build_command,
    bundled_gguf,
    pick_engine,
)
from trustee_env.serve.managed import ensure_embedded_server, stop_embedded_server

__all__ = [
    "DEFAULT_MODEL_ALIAS",
    "LocalServer",
    "ServerSpec",
    "build_command",
    "bundled_gguf",
    "ensure_embedded_server",
    "pick_engine",
    "stop_embedded_server",
]
