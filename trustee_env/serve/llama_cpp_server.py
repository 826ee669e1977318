"""llama-cpp-python's OpenAI-compatible server, sampling grammar-constrained answers the way llama-server does.

Run by path, with the arguments ``python -m llama_cpp.server`` takes (plus ``--grammar-first`` to keep
llama-cpp-python's own sampling order)::

    python /path/to/trustee_env/serve/llama_cpp_server.py --model M.gguf --n_threads 2 ...

It is how Trustee starts every llama-cpp-python server, for two reasons: grammar-last sampling (below), and a
check that the llama.cpp build can run the model at all (see :func:`disable_extra_buffers`).

Why: llama-cpp-python (0.3.36) puts the grammar sampler *inside* its sampler chain, before top-k and the
random draw, so at every generated token the grammar is checked against all ~49k vocabulary entries
(SmolLM2) before anything is sampled: that check costs more than the model's own forward pass here.
llama.cpp's own ``llama-server`` samples first and checks only the chosen token against the grammar
(``common_sampler_sample`` with ``grammar_first=false`` in ``common/sampling.cpp``); only when that token is
rejected does it apply the grammar to every candidate and sample again. The answer still always obeys the
grammar, and most tokens of a JSON answer are accepted on the first draw.

The server process imports this file and llama_cpp only (no trustee_env): it is started as a script so
that a broken or partial Trustee install cannot break the server, and so the server's start-up cost stays
that of ``python -m llama_cpp.server``. Unconstrained requests (no grammar) sample exactly as before.
"""

from __future__ import annotations

import ctypes
import inspect
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

# Run as a script, Python puts this file's folder first on sys.path; its sibling modules (local.py,
# convert.py, ...) must not shadow anything the server imports.
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import llama_cpp
import numpy as np  # a dependency of llama-cpp-python itself
from llama_cpp import _internals
from llama_cpp.llama_grammar import LlamaGrammar

__all__ = [
    "STATS",
    "GrammarLastSampler",
    "child_crashed",
    "disable_extra_buffers",
    "extra_buffers_work",
    "install",
    "main",
    "uninstall",
]

GRAMMAR_FIRST_FLAG = "--grammar-first"
"""This script's own option (removed before the server parses its arguments): keep llama-cpp-python's sampling."""
PROBE_FLAG = "--trustee-probe"

# Matches llama.cpp's ``llama_token_data`` (int32 id, float logit, float p: 12 bytes, no padding).
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
assert _TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)

STATS: dict[str, int] = {"tokens": 0, "redraws": 0}
"""Tokens sampled under a grammar by this process, and how many of them needed the full-grammar redraw."""

_original_init_sampler: Any = None
_report = False  # the server (main) logs each answer's sampled and redrawn token counts when its sampler is freed


class GrammarLastSampler:
    """A sampler chain plus a grammar that is checked after the chain picks a token, as llama-server does.

    ``sample`` runs the ordinary chain (penalties, top-k, typical, top-p, min-p, temperature, random draw)
    on the full logits, then asks the grammar about the one chosen token. Accepted (the usual case in
    JSON, whose next token is mostly forced or the model's own favourite): done, at the cost of one
    grammar check instead of ~49k. Rejected: the logits are reloaded, the grammar masks every candidate it
    forbids, and the chain draws again, exactly as grammar-first sampling would have. The chosen token is
    then accepted by both the grammar and the chain (repeat-penalty history, grammar state).

    It stands in for ``llama_cpp._internals.LlamaSampler`` where ``Llama`` uses one (``sample`` and,
    for completeness, ``accept``, ``reset``, ``close``).
    """

    def __init__(
        self, chain: _internals.LlamaSampler, model: _internals.LlamaModel, grammar: LlamaGrammar, n_vocab: int
    ) -> None:
        self.chain = chain
        self.n_vocab = n_vocab
        self.grammar: Any = llama_cpp.llama_sampler_init_grammar(
            model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
        )
        if not self.grammar:
            chain.close()
            raise ValueError("llama.cpp could not build a sampler from this grammar")
        self._model = model  # the grammar sampler points into the model's vocabulary: keep the model alive
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._cur = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self._cur_p = llama_cpp.llama_token_data_array(
            data=self._cur.ctypes.data_as(llama_cpp.llama_token_data_p), size=n_vocab, selected=-1, sorted=False
        )
        self._one = np.zeros(1, dtype=_TOKEN_DATA)
        self._one_p = llama_cpp.llama_token_data_array(
            data=self._one.ctypes.data_as(llama_cpp.llama_token_data_p), size=1, selected=-1, sorted=False
        )
        self.tokens = 0
        self.redraws = 0

    def _load(self, ctx: _internals.LlamaContext, idx: int) -> None:
        """All candidates with the model's logits at output ``idx``, unsorted, nothing selected."""
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, idx), shape=(self.n_vocab,))
        self._cur["id"] = self._ids
        self._cur["logit"] = logits
        self._cur["p"] = 0.0
        self._cur_p.size = self.n_vocab
        self._cur_p.selected = -1
        self._cur_p.sorted = False

    def _selected(self) -> int:
        selected = self._cur_p.selected
        if not 0 <= selected < self._cur_p.size:
            raise RuntimeError(f"the sampler chain selected no token (selected={selected}, size={self._cur_p.size})")
        return int(self._cur_p.data[selected].id)

    def allows(self, token: int) -> bool:
        """Whether the grammar, in its current state, accepts ``token`` next."""
        self._one[0] = (token, 1.0, 0.0)
        self._one_p.size = 1
        self._one_p.selected = -1
        self._one_p.sorted = False
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(self._one_p))
        return not math.isinf(float(self._one["logit"][0]))

    def sample(self, ctx: _internals.LlamaContext, idx: int = -1) -> int:
        """Sample the next token (chain first, grammar check, redraw under the grammar if rejected) and accept it."""
        self._load(ctx, idx)
        llama_cpp.llama_sampler_apply(self.chain.sampler, ctypes.byref(self._cur_p))
        token = self._selected()
        if not self.allows(token):
            self.redraws += 1
            STATS["redraws"] += 1
            self._load(ctx, idx)
            llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(self._cur_p))
            llama_cpp.llama_sampler_apply(self.chain.sampler, ctypes.byref(self._cur_p))
            token = self._selected()
        self.tokens += 1
        STATS["tokens"] += 1
        self.accept(token)
        return token

    def accept(self, token: int) -> None:
        """Advance the grammar and the chain (penalty history, RNG-free state) past ``token``."""
        llama_cpp.llama_sampler_accept(self.grammar, token)
        self.chain.accept(token)

    def reset(self) -> None:
        """Back to the start of an answer."""
        llama_cpp.llama_sampler_reset(self.grammar)
        self.chain.reset()

    def close(self) -> None:
        """Free the grammar sampler and the chain (idempotent)."""
        if getattr(self, "grammar", None) is not None:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None
            if _report and self.tokens and sys.stderr is not None:
                print(f"grammar-last: {self.tokens} tokens sampled, {self.redraws} redrawn", file=sys.stderr)
        if getattr(self, "chain", None) is not None:
            self.chain.close()

    def __del__(self) -> None:
        self.close()


def _init_sampler_grammar_last(self: llama_cpp.Llama, *args: Any, **kwargs: Any) -> Any:
    """``Llama._init_sampler`` with the grammar taken out of the chain and checked last (when there is one)."""
    bound = inspect.signature(_original_init_sampler).bind(self, *args, **kwargs)
    grammar = bound.arguments.get("grammar")
    if grammar is None:
        return _original_init_sampler(self, *args, **kwargs)
    bound.arguments["grammar"] = None
    chain = _original_init_sampler(*bound.args, **bound.kwargs)
    return GrammarLastSampler(chain, self._model, grammar, self._n_vocab)


def install() -> None:
    """Make every ``llama_cpp.Llama`` in this process sample grammar-last (idempotent)."""
    global _original_init_sampler
    if _original_init_sampler is None:
        _original_init_sampler = llama_cpp.Llama._init_sampler
        llama_cpp.Llama._init_sampler = _init_sampler_grammar_last  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore llama-cpp-python's own grammar-first sampling (idempotent)."""
    global _original_init_sampler
    if _original_init_sampler is not None:
        llama_cpp.Llama._init_sampler = _original_init_sampler  # type: ignore[method-assign]
        _original_init_sampler = None


def disable_extra_buffers() -> None:
    """Load every model in this process without llama.cpp's extra CPU buffer types (AMX, repacked weights).

    Some virtual machines advertise AMX and fault on its first instruction (``ldtilecfg``): a llama.cpp built
    for such a CPU (llama-cpp-python compiles for the CPU it is installed on) then crashes on the first prompt.
    Without the extra buffer types the weights stay in ordinary memory and the AVX kernels run instead.
    """
    original = llama_cpp.llama_model_default_params
    if getattr(original, "_trustee_plain", False):
        return

    def plain_params() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    plain_params._trustee_plain = True  # type: ignore[attr-defined]
    llama_cpp.llama_model_default_params = plain_params  # type: ignore[assignment]
    llama_cpp.llama.llama_cpp.llama_model_default_params = plain_params  # type: ignore[attr-defined]


def extra_buffers_work(model: str, timeout: float = 300.0) -> bool:
    """Whether this llama.cpp evaluates a prompt with ``model`` and its extra buffer types, tried in a child.

    Only a child killed by a signal (SIGSEGV, SIGILL) counts as broken: any other failure (a missing model
    file) is left for the server to report, and a probe that takes too long is given the benefit of the doubt.
    """
    return not child_crashed([sys.executable, __file__, PROBE_FLAG, model], timeout)


def child_crashed(command: list[str], timeout: float = 300.0) -> bool:
    """Whether ``command`` was killed by a signal (a timeout is not a crash)."""
    try:
        child = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False
    return child.returncode < 0


def _probe(model: str) -> None:
    """Load ``model`` and evaluate a short prompt (the child side of :func:`extra_buffers_work`)."""
    llm = llama_cpp.Llama(model_path=model, n_ctx=256, n_threads=1, verbose=False)
    # A prompt of many tokens: llama.cpp sends one-token batches down other kernels than a real prompt.
    llm.create_completion(" ".join(["Hello, my name is Trustee and I check tools."] * 8), max_tokens=2)


def _option(args: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``args``."""
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main() -> None:
    """Run ``python -m llama_cpp.server`` with this process's arguments, grammar-last unless ``--grammar-first``.

    Before the server loads its model, a child process checks that this llama.cpp build can evaluate it with
    its extra buffer types; where it crashes (AMX on some virtual machines) the server runs without them.
    """
    global _report
    args = sys.argv[1:]
    if args[:1] == [PROBE_FLAG]:
        _probe(args[1])
        return
    grammar_first = GRAMMAR_FIRST_FLAG in args
    args = [arg for arg in args if arg != GRAMMAR_FIRST_FLAG]
    sys.argv[1:] = args
    model = _option(args, "--model")
    if model and not extra_buffers_work(model):
        disable_extra_buffers()
        print(
            "llama_cpp_server: this llama.cpp build crashes with its extra CPU buffer types (AMX or repacked "
            "weights, on a CPU that advertises more than it runs); serving without them",
            file=sys.stderr,
            flush=True,
        )
    if not grammar_first:
        install()
        _report = True
        print("llama_cpp_server: grammar-last sampling installed", file=sys.stderr, flush=True)
    from llama_cpp.server.__main__ import main as server_main

    server_main()


if __name__ == "__main__":
    main()
