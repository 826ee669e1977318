"""verl: an ``AgentLoopBase`` that plays one full Trustee episode per trajectory.

verl's tool agent loop knows tools but not a simulated user, and computes rewards after the
rollout. :class:`TrusteeAgentLoop` instead plays the whole episode (policy turns from verl's
rollout server, tool results and user replies from Trustee as masked tokens) and returns the
judge's reward as ``reward_score``, which verl puts on the last response token and then skips
its own reward loop.

Wiring (``@register`` only registers in the importing process, and Ray workers do not import
your script): write the loop into the YAML file that
``actor_rollout_ref.rollout.agent.agent_loop_config_path`` names (:func:`agent_loop_config`, or
``examples/verl/agent_loop.yaml``), and give every dataset row ``agent_name: trustee``
(:func:`write_dataset` does). Keep ``data.max_prompt_length`` at 4096 or more: verl cuts long
prompts from the left, which would remove the system prompt and its tool list.

Sim faults: verl cannot drop one sample of a group. A faulted episode gets reward 0 and an
all-zero ``response_mask`` (no gradient through it), but its 0 still enters its group's mean and
std; ``extra_fields["trustee_sim_fault"]`` names the role so you can count them.

Requires the ``verl`` extra (``pip install "trustee-env[verl]"``, verl 0.9).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput

from trustee_env.integrations._pool import EnvPool
from trustee_env.integrations.tasks import TaskIndex, row_task, task_prompt, write_parquet
from trustee_env.tokens import TurnTokenizer, cut_turn, run_token_episode

__all__ = ["AGENT_NAME", "TrusteeAgentLoop", "agent_loop_config", "dataset_rows", "write_dataset"]

AGENT_NAME = "trustee"
"""The ``agent_name`` dataset rows use and the name in the agent loop YAML."""


def dataset_rows(tasks: Any, *, agent_name: str = AGENT_NAME, data_source: str = "trustee") -> list[dict[str, Any]]:
    """verl dataset rows, one per bank task: ``prompt`` (messages), ``agent_name``, ``data_source``,
    ``reward_model`` (unused: the loop scores) and ``extra_info`` with the task as a JSON string."""
    rows = []
    for index, task in enumerate(TaskIndex(tasks).tasks):
        rows.append(
            {
                "data_source": data_source,
                "prompt": task_prompt(task),
                "agent_name": agent_name,
                "ability": "tool_use",
                "reward_model": {"style": "rule", "ground_truth": ""},
                "extra_info": {"index": index, "task_id": task.task_id, "task": task.model_dump_json()},
            }
        )
    return rows


def write_dataset(tasks: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`dataset_rows` as parquet for ``data.train_files`` / ``data.val_files``."""
    return write_parquet(dataset_rows(tasks, **kwargs), path)


def agent_loop_config(env_kwargs: Mapping[str, Any] | None = None, **loop_kwargs: Any) -> list[dict[str, Any]]:
    """The ``agent_loop_config_path`` YAML content (write it with ``yaml.safe_dump``).

    Extra keys reach :class:`TrusteeAgentLoop`'s constructor through hydra, in every Ray worker.
    """
    entry: dict[str, Any] = {"name": AGENT_NAME, "_target_": f"{__name__}.TrusteeAgentLoop"}
    if env_kwargs:
        entry["env_kwargs"] = dict(env_kwargs)
    entry.update(loop_kwargs)
    return [entry]


_TURNS: dict[tuple[int, str], TurnTokenizer] = {}
_TURNS_LOCK = threading.Lock()


def _turn_tokenizer(tokenizer: Any, kwargs: Mapping[str, Any]) -> TurnTokenizer:
    """One TurnTokenizer per worker and tokenizer (finding the end-of-turn marker renders the template)."""
    key = (id(tokenizer), json.dumps(kwargs, sort_keys=True, default=str))
    with _TURNS_LOCK:
        if key not in _TURNS:
            _TURNS[key] = TurnTokenizer(tokenizer, **kwargs)
        return _TURNS[key]


class TrusteeAgentLoop(AgentLoopBase):
    """Plays the dataset row's task as one Trustee episode; verl's rollout server is the policy.

    The response holds every policy turn (mask 1) and every tool result and user reply (mask 0),
    at most ``rollout.response_length`` tokens: when the budget runs out the episode is finished
    early, still judged, reward capped at 0. ``reward_score`` is the judge's reward.

    Args (extra keys of the agent loop YAML entry):
        env_kwargs: keywords for :class:`~trustee_env.env.TrusteeToolEnv` (``base_url``, ``model``, ...);
            ``TRUSTEE_*`` environment variables work too. ``tool_format`` defaults to ``"hermes"``.
        end_of_turn, chat_template: for :class:`~trustee_env.tokens.TurnTokenizer`; the template kwargs
            are ``data.apply_chat_template_kwargs`` (e.g. ``enable_thinking: false``), as verl's own loops use.
        max_turn_tokens: cap on one policy turn.
    """

    def __init__(
        self,
        *args: Any,
        env_kwargs: Mapping[str, Any] | None = None,
        end_of_turn: str | None = None,
        chat_template: str | None = None,
        max_turn_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("tools", None)  # verl passes its tool list; Trustee's tools come with each task
        super().__init__(*args, **kwargs)
        self.prompt_length = int(self.rollout_config.prompt_length)
        self.response_length = int(self.rollout_config.response_length)
        self.env_kwargs = {"tool_format": "hermes", **dict(env_kwargs or {})}
        self.max_turn_tokens = max_turn_tokens
        template_kwargs = dict(self.apply_chat_template_kwargs or {})
        self.turns = _turn_tokenizer(
            self.tokenizer,
            {"end_of_turn": end_of_turn, "chat_template": chat_template, "template_kwargs": template_kwargs},
        )

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """Play the row's task (``extra_info["task"]``) to its end and return verl's trajectory."""
        task = row_task(kwargs)
        request_id = uuid4().hex  # one id for every turn: the server may keep the prefix cached
        timings = {"generate_sequences": 0.0}
        eot = self.turns.eot_ids
        sampled_logprobs: list[bool] = []

        async def generate(context_ids: list[int], max_new: int) -> tuple[list[int], list[float] | None]:
            if not sampled_logprobs and len(context_ids) > self.prompt_length:  # the first turn sees the prompt
                raise ValueError(
                    f"the episode's prompt is {len(context_ids)} tokens, over rollout.prompt_length="
                    f"{self.prompt_length}; raise data.max_prompt_length (verl would cut the system prompt)"
                )
            start = time.perf_counter()
            out = await self.server_manager.generate(
                request_id=request_id,
                prompt_ids=context_ids,
                sampling_params={**sampling_params, "max_tokens": max_new},
            )
            timings["generate_sequences"] += time.perf_counter() - start
            keep = cut_turn(out.token_ids, eot, max_new)
            sampled_logprobs.append(bool(out.log_probs))
            return list(out.token_ids[:keep]), (list(out.log_probs[:keep]) if out.log_probs else None)

        key, env = EnvPool.acquire(self.env_kwargs)
        start = time.perf_counter()
        try:
            episode = await run_token_episode(
                env,
                generate,
                self.turns,
                max_completion_tokens=self.response_length,
                options={"task": task},
                max_turn_tokens=self.max_turn_tokens,
            )
        finally:
            EnvPool.release(key, env)
        elapsed = time.perf_counter() - start
        return self.output(episode, timings["generate_sequences"], elapsed, with_logprobs=all(sampled_logprobs or [0]))

    def output(self, episode: Any, generate_s: float, total_s: float, *, with_logprobs: bool) -> AgentLoopOutput:
        """verl's trajectory for a finished episode (a sim fault: reward 0, every token masked)."""
        tokens = episode.tokens
        eot = self.turns.eot_ids
        response = list(tokens.completion_ids) or list(eot)  # verl needs a token to put the reward on
        mask = list(tokens.env_mask) if tokens.completion_ids else [0] * len(eot)
        logprobs = list(tokens.logprobs) if tokens.completion_ids else [0.0] * len(eot)
        fault = episode.info.get("sim_fault")
        if episode.reward is None:
            mask = [0] * len(response)
        return AgentLoopOutput(
            prompt_ids=list(tokens.prompt_ids),
            response_ids=response[: self.response_length],
            response_mask=mask[: self.response_length],
            response_logprobs=logprobs[: self.response_length] if with_logprobs else None,
            reward_score=0.0 if episode.reward is None else float(episode.reward),
            num_turns=1 + 2 * episode.turns,
            metrics={"generate_sequences": generate_s, "tool_calls": max(0.0, total_s - generate_s)},
            extra_fields={
                "turn_scores": [],
                "tool_rewards": [],
                "trustee_sim_fault": fault.get("role") if isinstance(fault, Mapping) else None,
                "trustee_termination": episode.info.get("termination"),
                "trustee_task_id": episode.info.get("task_id"),
            },
        )
