"""TRL: a ``rollout_func`` for ``GRPOTrainer`` that plays full multi-turn Trustee episodes.

TRL's own tool loop (``tools=`` / ``environment_factory``) stops at the first message without a
tool call, so it cannot play the simulated user's turns, and it fixes the tool schemas when the
trainer starts. A ``rollout_func`` owns the whole rollout instead: for each prompt it replays the
prompt's task from a task bank, lets the policy act turn by turn, appends tool results and user
replies as environment tokens (``env_mask`` 0, no loss on them) and returns the judge's reward as
an extra column for :func:`trustee_reward`. Sim-faulted episodes get the reward ``None``, which
TRL treats as unscorable (advantage 0), so they never teach the policy anything.

Example:
    >>> from trl import GRPOConfig, GRPOTrainer  # doctest: +SKIP
    >>> from trustee_env.integrations.trl import TrusteeRollout, task_dataset, trustee_reward
    >>> rollout = TrusteeRollout("bank.json", env_kwargs={"base_url": URL})  # doctest: +SKIP
    >>> trainer = GRPOTrainer(model=model, args=GRPOConfig(...), reward_funcs=trustee_reward,  # doctest: +SKIP
    ...                       train_dataset=task_dataset("bank.json"), rollout_func=rollout)

Requires the ``trl`` extra (``pip install "trustee-env[trl]"``, TRL 1.16).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from trustee_env._portal import portal
from trustee_env.bank import TaskBank
from trustee_env.env import TrusteeToolEnv
from trustee_env.integrations.tasks import TaskIndex, prompt_key
from trustee_env.schemas import derive_seed
from trustee_env.tokens import TokenEpisode, TurnTokenizer, cut_turn, run_token_episode

__all__ = ["TrusteeRollout", "task_dataset", "trustee_reward"]

logger = logging.getLogger("trustee_env.integrations")

Batch = list[list[int]]
TurnOutput = tuple[list[int], list[float] | None]
Backend = Callable[[Batch, list[int]], list[TurnOutput]]
"""``backend(contexts, max_new_tokens) -> [(new_ids, logprobs or None)]``: one policy turn for several episodes."""


def task_dataset(tasks: Any) -> Any:
    """A ``datasets.Dataset`` with one row per bank task: ``prompt``, ``task`` (JSON), ``task_id``, ``difficulty``.

    Build it from the same bank as the :class:`TrusteeRollout`; every process does so, and a
    prompt then names the same task everywhere.
    """
    from datasets import Dataset

    return Dataset.from_list(TaskIndex(tasks).rows())


def trustee_reward(completions: list[Any], trustee_reward: list[float | None], **kwargs: Any) -> list[float | None]:
    """The reward function to pass to ``GRPOTrainer``: the episode's reward, ``None`` for a sim fault.

    The rollout already judged each episode; this hands its reward (the ``trustee_reward``
    column the rollout returned) to TRL, which leaves ``None`` rows out of the group statistics.
    """
    return [None if r is None else float(r) for r in trustee_reward]


class _WaveBatcher:
    """Batches the policy turns of concurrent episodes: one backend call once every live episode waits.

    Episodes spend most of their time waiting for simulators; generation is cheaper batched. With
    ``collective`` the backend is a collective operation (TRL's vLLM server mode, tensor-parallel
    colocate), so every rank must make the same calls with the same batch size: each wave first
    agrees on the largest batch across ranks, pads to it, and a rank with nothing left keeps
    joining empty waves until no rank has work (:meth:`drain`).
    """

    def __init__(
        self, backend: Backend, eot: list[int], *, live: int, collective: bool, gather: Callable[[list[int]], list[int]]
    ) -> None:
        self.backend = backend
        self.eot = eot
        self.live = live
        self.collective = collective
        self.gather = gather
        self._pending: list[tuple[list[int], int, asyncio.Future[TurnOutput]]] = []
        self._busy = False

    async def generate(self, context_ids: list[int], max_new: int) -> TurnOutput:
        future: asyncio.Future[TurnOutput] = asyncio.get_running_loop().create_future()
        self._pending.append((list(context_ids), int(max_new), future))
        self._maybe_flush()
        return await future

    def leave(self) -> None:
        """An episode ended: the next wave need not wait for it."""
        self.live -= 1
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if self._busy or not self._pending or len(self._pending) < self.live:
            return
        batch, self._pending = self._pending, []
        self._busy = True
        asyncio.get_running_loop().create_task(self._flush(batch))

    async def _flush(self, batch: list[tuple[list[int], int, asyncio.Future[TurnOutput]]]) -> None:
        try:
            outputs = await asyncio.to_thread(self._call, [c for c, _, _ in batch], [m for _, m, _ in batch])
        except BaseException as err:  # every waiting episode sees the failure
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(err)
            raise
        finally:
            self._busy = False
        for (_, max_new, future), (ids, logprobs) in zip(batch, outputs, strict=True):
            keep = cut_turn(ids, self.eot, max_new)
            future.set_result((list(ids[:keep]), None if logprobs is None else list(logprobs[:keep])))
        self._maybe_flush()

    def _call(self, contexts: Batch, max_new: list[int]) -> list[TurnOutput]:
        if not self.collective:
            return self.backend(contexts, max_new)
        width = max(self.gather([len(contexts)]))
        filler = contexts[0] if contexts else list(self.eot)
        outputs = self.backend(contexts + [filler] * (width - len(contexts)), max_new + [1] * (width - len(contexts)))
        return outputs[: len(contexts)]

    def drain(self) -> None:
        """Join the other ranks' remaining waves with empty batches (collective backends only)."""
        if not self.collective:
            return
        while True:
            width = max(self.gather([0]))
            if width == 0:
                return
            self.backend([list(self.eot)] * width, [1] * width)


class _ModelBackend:
    """Policy turns from the trainer's own model with ``generate`` (CPU or a few GPUs, no vLLM)."""

    def __init__(self, model: Any, tokenizer: Any, eot: list[int], args: Any) -> None:
        self.model = model
        self.eot = eot
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eot[-1]
        self.sampling: dict[str, Any] = {
            "do_sample": True,
            "temperature": getattr(args, "temperature", 1.0),
            "top_p": getattr(args, "top_p", 1.0),
            "top_k": getattr(args, "top_k", None) or None,
            "min_p": getattr(args, "min_p", None),
            "repetition_penalty": getattr(args, "repetition_penalty", 1.0),
            **(getattr(args, "generation_kwargs", None) or {}),
        }

    def __call__(self, contexts: Batch, max_new: list[int]) -> list[TurnOutput]:
        import torch

        width = max(len(c) for c in contexts)
        device = next(self.model.parameters()).device
        input_ids = torch.full((len(contexts), width), self.pad_id, dtype=torch.long, device=device)
        attention = torch.zeros((len(contexts), width), dtype=torch.long, device=device)
        for row, ids in enumerate(contexts):  # left padding: every row's next token is at the same position
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids) :] = 1
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max(max_new),
                eos_token_id=self.eot[-1],
                pad_token_id=self.pad_id,
                **self.sampling,
            )
        # Logprobs None: TRL recomputes the old policy's log-probabilities itself on this path.
        return [(out[row, width:].tolist(), None) for row in range(len(contexts))]


class _VLLMBackend:
    """Policy turns from TRL's vLLM (``trainer.vllm_generation``, colocate or server mode), one sample per context."""

    def __init__(self, trainer: Any) -> None:
        self.generation = trainer.vllm_generation

    def __call__(self, contexts: Batch, max_new: list[int]) -> list[TurnOutput]:
        _, completion_ids, logprobs, _ = self.generation.generate(prompts=contexts, images=None, num_generations=1)
        rows = []
        for index, ids in enumerate(completion_ids):
            lps = None if logprobs is None else [float(lp[0]) for lp in logprobs[index]]
            rows.append((list(ids), lps))
        return rows


class TrusteeRollout:
    """A ``rollout_func`` for TRL's ``GRPOTrainer``: one full Trustee episode per prompt.

    Returns, per prompt, ``prompt_ids``, ``completion_ids`` (policy turns, tool results and user
    replies, at most ``max_completion_length`` tokens), ``env_mask`` (1 = sampled by the policy),
    ``logprobs`` (the sampler's, with vLLM; ``None`` with the trainer's model) and the extra
    columns ``trustee_reward`` (``None`` for a sim fault), ``trustee_sim_fault``,
    ``trustee_termination``, ``trustee_task_id``, ``trustee_turns`` for reward functions.

    Task identity: the prompt names a bank task (:func:`task_dataset`), so the G copies of a
    prompt play the same task on every process. With ``curriculum``, the prompt is a slot instead:
    each generation step picks, per prompt, a bank task near the curriculum's difficulty, seeded
    by the prompt and the step, so the copies still agree; the rewards of all processes are
    gathered and the curriculum is updated identically on every rank.

    Generation: with ``use_vllm`` through ``trainer.vllm_generation`` (all ranks in step, turn by
    turn), else with the trainer's model. Turns of concurrent episodes are batched.

    Args:
        tasks: a ``TaskBank``, a path to one, or a list of tasks.
        env_kwargs: keywords for :class:`~trustee_env.env.TrusteeToolEnv` (``base_url``, ``model``,
            ``reward_mode`` ...). ``tool_format`` defaults to ``"hermes"``: the tools go into the system
            message, which every chat template keeps.
        curriculum: a curriculum rule (``"paper"``, ``"band"`` or an object); None replays the prompt's task.
        chat_template, end_of_turn, template_kwargs: passed to :class:`~trustee_env.tokens.TurnTokenizer`
            (e.g. ``template_kwargs={"enable_thinking": False}`` for Qwen3).
        max_turn_tokens: cap on one policy turn (default: what is left of ``max_completion_length``).
        seed: base of the episode seeds (simulator sampling).
    """

    def __init__(
        self,
        tasks: Any,
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        curriculum: Any = None,
        chat_template: str | None = None,
        end_of_turn: str | None = None,
        template_kwargs: Mapping[str, Any] | None = None,
        max_turn_tokens: int | None = None,
        seed: int = 0,
    ) -> None:
        self.index = TaskIndex(tasks)
        self.bank = TaskBank(tasks=self.index.tasks)
        self.env_kwargs = {"tool_format": "hermes", **dict(env_kwargs or {})}
        if curriculum is not None and not hasattr(curriculum, "update"):
            from trustee_env.curriculum import make_curriculum

            curriculum = make_curriculum(curriculum)
        self.curriculum = curriculum
        self.turn_kwargs = {
            "chat_template": chat_template,
            "end_of_turn": end_of_turn,
            "template_kwargs": template_kwargs,
        }
        self.max_turn_tokens = max_turn_tokens
        self.seed = seed
        self._envs: list[TrusteeToolEnv] = []
        self._turns: TurnTokenizer | None = None
        self.__name__ = "trustee_rollout"  # TRL and loggers print the rollout function's name

    # ------------------------------------------------------------------ TRL entry point

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        """Play one episode per prompt on this process and return TRL's rollout columns."""
        turns = self.turns(trainer.processing_class)
        accelerator = trainer.accelerator
        step = int(trainer.state.global_step)
        training = bool(trainer.model.training)
        tasks = [self._task_for(prompt, step, training) for prompt in prompts]
        seeds = self._seeds(prompts, step, accelerator.process_index)
        max_tokens = int(trainer.args.max_completion_length)

        def gather(values: list[int]) -> list[int]:
            from accelerate.utils import gather_object

            return list(gather_object(values))

        collective = bool(getattr(trainer, "use_vllm", False)) and accelerator.num_processes > 1
        if getattr(trainer, "use_vllm", False):
            episodes = self._play(prompts, tasks, seeds, _VLLMBackend(trainer), turns, max_tokens, collective, gather)
        else:
            from trl.models import unwrap_model_for_generation

            with unwrap_model_for_generation(
                trainer.model_wrapped,
                accelerator,
                gather_deepspeed3_params=getattr(trainer.args, "ds3_gather_for_generation", True),
            ) as model:
                backend = _ModelBackend(model, trainer.processing_class, turns.eot_ids, trainer.args)
                episodes = self._play(prompts, tasks, seeds, backend, turns, max_tokens, False, gather)
        if self.curriculum is not None and training:
            self._update_curriculum(episodes, tasks)
        return self.columns(episodes, turns, prompts, with_logprobs=bool(getattr(trainer, "use_vllm", False)))

    # ------------------------------------------------------------------ parts (public for custom loops)

    def turns(self, tokenizer: Any) -> TurnTokenizer:
        """The turn tokenizer for the policy's tokenizer (built once)."""
        if self._turns is None or self._turns.tokenizer is not tokenizer:
            self._turns = TurnTokenizer(tokenizer, **self.turn_kwargs)
        return self._turns

    def task_for(self, prompt: Any, step: int) -> dict[str, Any]:
        """The task a prompt plays at a generation step (the same on every process)."""
        return self._task_for(prompt, step, True)

    def _task_for(self, prompt: Any, step: int, training: bool) -> dict[str, Any]:
        if self.curriculum is None or not training:
            return self.index.task_json(prompt)
        rng = np.random.default_rng(derive_seed(self.seed, "curriculum-task", prompt_key(prompt), step))
        (task,) = self.bank.select(1, difficulty=self.curriculum.difficulty, rng=rng)
        return task.model_dump(mode="json")

    def _seeds(self, prompts: list[Any], step: int, rank: int) -> list[int]:
        """One seed per episode: copies of a prompt sample their simulators independently."""
        copies: dict[str, int] = {}
        seeds = []
        for prompt in prompts:
            key = prompt_key(prompt)
            copies[key] = copies.get(key, -1) + 1
            seeds.append(derive_seed(self.seed, key, step, rank, copies[key]))
        return seeds

    def _env(self, i: int) -> TrusteeToolEnv:
        while len(self._envs) <= i:
            self._envs.append(TrusteeToolEnv(**self.env_kwargs))
        return self._envs[i]

    def _play(
        self,
        prompts: list[Any],
        tasks: list[dict[str, Any]],
        seeds: list[int],
        backend: Backend,
        turns: TurnTokenizer,
        max_tokens: int,
        collective: bool,
        gather: Callable[[list[int]], list[int]],
    ) -> list[TokenEpisode]:
        envs = [self._env(i) for i in range(len(prompts))]

        async def play_all() -> list[TokenEpisode]:
            batcher = _WaveBatcher(backend, turns.eot_ids, live=len(prompts), collective=collective, gather=gather)

            async def one(i: int) -> TokenEpisode:
                try:
                    return await run_token_episode(
                        envs[i],
                        batcher.generate,
                        turns,
                        max_completion_tokens=max_tokens,
                        seed=seeds[i],
                        options={"task": tasks[i]},
                        max_turn_tokens=self.max_turn_tokens,
                    )
                finally:
                    batcher.leave()

            episodes = await asyncio.gather(*(one(i) for i in range(len(prompts))))
            await asyncio.to_thread(batcher.drain)
            return list(episodes)

        return portal().run(play_all)

    def _update_curriculum(self, episodes: list[TokenEpisode], tasks: list[dict[str, Any]]) -> None:
        """Every rank observes every rank's non-faulted episodes, in rank order: the rule stays identical."""
        from accelerate.utils import gather_object

        local = [
            (float(ep.reward), task["aspects"])
            for ep, task in zip(episodes, tasks, strict=True)
            if ep.reward is not None
        ]
        gathered = gather_object([local])
        for part in gathered:
            for reward, aspects in part:
                self.curriculum.observe(reward, aspects)
        self.curriculum.update()

    @staticmethod
    def columns(
        episodes: list[TokenEpisode], turns: TurnTokenizer, prompts: list[Any], *, with_logprobs: bool
    ) -> dict[str, list[Any]]:
        """TRL's rollout columns for finished episodes.

        ``logprobs`` is ``None`` as a whole when the sampler gave none (TRL then computes them).
        A sim fault before the first turn still gets a row: the dataset prompt and one masked
        end-of-turn (TRL needs a token per row), reward ``None``.
        """
        out: dict[str, list[Any]] = {
            key: []
            for key in (
                "prompt_ids",
                "completion_ids",
                "env_mask",
                "logprobs",
                "trustee_reward",
                "trustee_sim_fault",
                "trustee_termination",
                "trustee_task_id",
                "trustee_turns",
            )
        }
        for ep, prompt in zip(episodes, prompts, strict=True):
            tokens = ep.tokens
            completion, mask, logprobs = list(tokens.completion_ids), list(tokens.env_mask), list(tokens.logprobs)
            if not completion:
                completion, mask, logprobs = list(turns.eot_ids), [0] * len(turns.eot_ids), [0.0] * len(turns.eot_ids)
            fault = ep.info.get("sim_fault")
            out["prompt_ids"].append(list(tokens.prompt_ids) or turns.prompt_ids(prompt))
            out["completion_ids"].append(completion)
            out["env_mask"].append(mask)
            out["logprobs"].append(logprobs)
            out["trustee_reward"].append(ep.reward)
            out["trustee_sim_fault"].append(fault.get("role") if isinstance(fault, Mapping) else None)
            out["trustee_termination"].append(ep.info.get("termination"))
            out["trustee_task_id"].append(ep.info.get("task_id"))
            out["trustee_turns"].append(ep.turns)
        if not with_logprobs:
            out["logprobs"] = None  # type: ignore[assignment]
        return out
