"""Token-exact multi-turn episodes for RL trainers.

A policy-gradient trainer must score exactly the tokens the policy sampled. Re-rendering the whole
chat after every turn and re-tokenising it breaks that: templates are not always prefix-preserving
(Qwen3 drops earlier turns' ``<think>`` blocks, so the history the model sampled from is not a prefix
of the re-rendered chat) and re-tokenising sampled text can merge or split tokens. So the sequence
is built by appending only:

- the prompt, rendered once with the generation prompt;
- the policy's own sampled ids (mask 1);
- for each environment turn (tool results, simulated user replies), the tokens the template puts
  between the end of an assistant turn and the start of the next one (mask 0). They are found by
  rendering the new messages after a *sentinel* assistant turn and cutting at that turn's
  end-of-turn marker, so nothing before it (and no template quirk about earlier turns) matters.

The helper needs only a Hugging Face tokenizer (anything with ``apply_chat_template``, ``encode``,
``decode``); no torch. :func:`run_token_episode` drives one Trustee episode with any async
``generate`` callable: the bundled trainer, TRL, verl and SkyRL adapters all share it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from trustee_env.errors import ConfigError

__all__ = ["Generate", "TokenEpisode", "TokenSequence", "TurnTokenizer", "cut_turn", "run_token_episode"]

_SENTINEL = "\u2063trustee-sentinel-7f3a\u2063"
_PROBE_USER = "\u2063trustee-probe\u2063"


class TurnTokenizer:
    """Renders a chat template turn by turn, as token ids, without re-tokenising history.

    Args:
        tokenizer: a Hugging Face tokenizer (``apply_chat_template``, ``encode``, ``decode``).
        chat_template: a template to use instead of the tokenizer's own.
        end_of_turn: the text that closes an assistant turn (``<|im_end|>``, ``<|eot_id|>``...);
            found from the template when None: the first special token after an assistant turn's content.
        template_kwargs: extra template variables, e.g. ``{"enable_thinking": False}`` for Qwen3.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        chat_template: str | None = None,
        end_of_turn: str | None = None,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.template_kwargs = dict(template_kwargs or {})
        self.end_of_turn = end_of_turn or self._find_end_of_turn()
        self.eot_ids: list[int] = self.encode(self.end_of_turn)
        if not self.eot_ids:
            raise ConfigError(f"the end-of-turn marker {self.end_of_turn!r} encodes to no tokens")

    # ------------------------------------------------------------------ rendering

    def render(self, messages: Sequence[Mapping[str, Any]], *, tools: Any = None, generation_prompt: bool) -> str:
        """The template's text for ``messages`` (never tokenised by the template itself)."""
        kwargs: dict[str, Any] = dict(self.template_kwargs)
        if tools:
            kwargs["tools"] = list(tools)
        if self.chat_template is not None:
            kwargs["chat_template"] = self.chat_template
        text = self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=generation_prompt, **kwargs
        )
        return str(text)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, with no BOS/EOS added: the template writes its own special tokens."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens kept (a tool-call tag may be one)."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False))

    def _find_end_of_turn(self) -> str:
        """The first special token the template writes after an assistant turn's content."""
        text = self.render(
            [{"role": "user", "content": _PROBE_USER}, {"role": "assistant", "content": _SENTINEL}],
            generation_prompt=False,
        )
        after = text.split(_SENTINEL, 1)[-1]
        specials = sorted(
            {str(t) for t in getattr(self.tokenizer, "all_special_tokens", [])}
            | {str(t) for t in getattr(self.tokenizer, "additional_special_tokens", []) or []}
            | {
                str(getattr(t, "content", t))
                for t in (getattr(self.tokenizer, "added_tokens_decoder", {}) or {}).values()
                if getattr(t, "special", False)
            },
            key=len,
            reverse=True,
        )
        best: tuple[int, str] | None = None
        for token in specials:
            if token and (at := after.find(token)) >= 0 and (best is None or at < best[0]):
                best = (at, token)
        if best is None:
            raise ConfigError(
                "could not find the end-of-turn token of this chat template (no special token follows an "
                "assistant turn); pass end_of_turn='<|im_end|>' (or your template's marker) explicitly"
            )
        return best[1]

    # ------------------------------------------------------------------ turns

    def prompt_ids(self, messages: Sequence[Mapping[str, Any]], tools: Any = None) -> list[int]:
        """The first prompt, ending with the generation prompt of the first assistant turn."""
        return self.encode(self.render(messages, tools=tools, generation_prompt=True))

    def env_text(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """What the template writes for ``messages`` after a closed assistant turn, up to the next generation prompt.

        Rendered after a sentinel assistant turn and cut at that turn's end-of-turn marker, so earlier
        turns (and a template's special handling of them) cannot change it.
        """
        if not messages:
            raise ValueError("env_text needs at least one environment message")
        context: list[dict[str, Any]] = [
            {"role": "user", "content": _PROBE_USER},
            {"role": "assistant", "content": _SENTINEL},
            *(dict(m) for m in messages),
        ]
        text = self.render(context, generation_prompt=True)
        if text.count(_SENTINEL) != 1:
            raise ConfigError("the chat template dropped or repeated an assistant turn; cannot cut environment turns")
        after = text.split(_SENTINEL, 1)[1]
        at = after.find(self.end_of_turn)
        if at < 0:
            raise ConfigError(f"the chat template does not close assistant turns with {self.end_of_turn!r}")
        return after[at + len(self.end_of_turn) :]

    def env_ids(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        """Token ids of environment messages after a closed assistant turn (mask them out of the loss)."""
        return self.encode(self.env_text(messages))

    def close_ids(self, completion_ids: Sequence[int]) -> list[int]:
        """The end-of-turn ids to append when a generation stopped without them (e.g. at max tokens)."""
        n = len(self.eot_ids)
        if len(completion_ids) >= n and list(completion_ids[-n:]) == self.eot_ids:
            return []
        return list(self.eot_ids)

    def strip_end(self, completion_ids: Sequence[int]) -> list[int]:
        """``completion_ids`` without a trailing end-of-turn marker (the text the env should see)."""
        ids = list(completion_ids)
        n = len(self.eot_ids)
        if len(ids) >= n and ids[-n:] == self.eot_ids:
            return ids[:-n]
        return ids


def cut_turn(ids: Sequence[int], eot: Sequence[int], limit: int) -> int:
    """Length of one policy turn: up to and including the first end-of-turn marker, at most ``limit`` tokens.

    Engines may stop on another EOS, or run on after the marker when it is not their stop token;
    the env must see exactly one turn, and the trainer must never get more than it asked for.
    """
    n, marker, head = len(eot), list(eot), list(ids[:limit])
    for end in range(n, len(head) + 1):
        if head[end - n : end] == marker:
            return end
    return len(head)


@dataclasses.dataclass
class TokenSequence:
    """One episode as tokens: the prompt, then model and environment tokens with a loss mask.

    ``env_mask[i]`` is 1 where ``completion_ids[i]`` was sampled by the policy, 0 where the
    environment (or the template) wrote it; ``logprobs`` is 0.0 at environment tokens.
    """

    prompt_ids: list[int]
    completion_ids: list[int] = dataclasses.field(default_factory=list)
    env_mask: list[int] = dataclasses.field(default_factory=list)
    logprobs: list[float] = dataclasses.field(default_factory=list)

    def add_model(self, ids: Sequence[int], logprobs: Sequence[float] | None = None) -> None:
        """Append tokens the policy sampled."""
        if logprobs is not None and len(logprobs) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(logprobs)} logprobs")
        self.completion_ids.extend(int(i) for i in ids)
        self.env_mask.extend([1] * len(ids))
        self.logprobs.extend([float(x) for x in logprobs] if logprobs is not None else [0.0] * len(ids))

    def add_env(self, ids: Sequence[int]) -> None:
        """Append tokens the environment or the template wrote (no loss on them)."""
        self.completion_ids.extend(int(i) for i in ids)
        self.env_mask.extend([0] * len(ids))
        self.logprobs.extend([0.0] * len(ids))

    @property
    def context_ids(self) -> list[int]:
        """Everything so far: what the policy conditions on for its next turn."""
        return self.prompt_ids + self.completion_ids

    @property
    def num_model_tokens(self) -> int:
        """How many completion tokens the policy sampled."""
        return sum(self.env_mask)


@dataclasses.dataclass
class TokenEpisode:
    """A finished episode: its tokens, reward (None for a simulator fault) and last ``info``."""

    tokens: TokenSequence
    reward: float | None
    info: dict[str, Any]
    turns: int
    truncated_by_budget: bool = False

    @property
    def sim_fault(self) -> bool:
        """The episode ended on a simulator failure: drop it from the update."""
        return self.reward is None


Generate = Callable[[list[int], int], Awaitable[tuple[list[int], list[float] | None]]]
"""``async generate(context_ids, max_new_tokens) -> (new_ids, logprobs or None)``: one policy turn."""


async def run_token_episode(
    env: Any,
    generate: Generate,
    turns: TurnTokenizer,
    *,
    max_completion_tokens: int,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    max_turn_tokens: int | None = None,
) -> TokenEpisode:
    """Play one Trustee episode on the caller's loop, building its token sequence as it goes.

    ``env`` is a :class:`~trustee_env.env.TrusteeToolEnv` (``gym.make(...).unwrapped``). Each policy
    turn generates at most ``max_turn_tokens`` (default: what is left of ``max_completion_tokens``);
    when the completion budget is spent before the episode ends, the episode is finished early
    (``env.afinish``: truncated, judged, reward capped at 0), so the trainer never gets a sequence
    longer than it asked for. The tools are assumed to be in the system message
    (``tool_format="hermes"`` or another text format): chat templates that take ``tools=`` render
    them differently per turn.
    """
    obs, info = await env.areset(seed=seed, options=options)
    tokens = TokenSequence(prompt_ids=turns.prompt_ids(obs["messages"]))
    seen = len(obs["messages"])
    reward: float = 0.0
    terminated = truncated = by_budget = False
    n_turns = 0
    if info.get("sim_fault"):
        return TokenEpisode(tokens, None, dict(info), 0)
    while not (terminated or truncated):
        left = max_completion_tokens - len(tokens.completion_ids) - len(turns.eot_ids)
        if left <= 0:
            obs, reward, terminated, truncated, info = await env.afinish("agent_budget")
            by_budget = True
            break
        new_ids, logprobs = await generate(tokens.context_ids, min(left, max_turn_tokens or left))
        tokens.add_model(new_ids, logprobs)
        tokens.add_env(turns.close_ids(new_ids))
        n_turns += 1
        text = turns.decode(turns.strip_end(new_ids))
        obs, reward, terminated, truncated, info = await env.astep(text)
        messages = obs["messages"]
        fresh = messages[seen + 1 :]  # after the assistant message the env just added
        seen = len(messages)
        if not (terminated or truncated) and fresh:
            env_ids = turns.env_ids(fresh)
            if len(tokens.completion_ids) + len(env_ids) + len(turns.eot_ids) >= max_completion_tokens:
                obs, reward, terminated, truncated, info = await env.afinish("agent_budget")
                by_budget = True
                break
            tokens.add_env(env_ids)
    final = None if info.get("sim_fault") else float(reward)
    return TokenEpisode(tokens, final, dict(info), n_turns, by_budget)
