"""``TrusteeToolEnv``: one fully simulated tool-use episode as a Gymnasium environment (spec sheet on the class)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import gymnasium as gym

from trustee_env._portal import portal
from trustee_env.catalog import Catalog
from trustee_env.config import TrusteeConfig
from trustee_env.curriculum import CurriculumRule
from trustee_env.episode import StepOutput
from trustee_env.errors import LLMError
from trustee_env.parsing import ToolFormat

# Moved to trustee_env.runtime; importable from here for one release.
from trustee_env.runtime import (  # noqa: F401
    Runtime,
    RuntimeViews,
    build_roles,
    check_render_mode,
    check_reset_options,
    open_cache,
    resolve_catalog,
    resolve_config,
    resolve_curriculum,
)
from trustee_env.spaces import Action, ChatAction, ChatObservation, Observation
from trustee_env.viewer import render_episode

__all__ = ["TrusteeToolEnv"]

logger = logging.getLogger("trustee_env")


class TrusteeToolEnv(RuntimeViews, gym.Env[Observation, Action]):
    """A tool-use episode whose task, user, tools and judge are simulated by a language model.

    ## Description
    A simulated user asks the agent (your policy) for help; the agent may call the offered
    tools, which a language model simulates against a JSON world state; when the episode ends
    a judge scores the trajectory. Task, user, tools and judge are all played by LMs behind
    OpenAI-compatible endpoints.

    ## Action Space
    :class:`~trustee_env.spaces.ChatAction`: one assistant message, as an OpenAI-shaped dict
    (``{"role": "assistant", "content": str, "tool_calls": [...]}``), the raw model text (str),
    or an OpenAI SDK ``ChatCompletionMessage``. Tool calls may be native ``tool_calls`` or
    written in the text (Hermes ``<tool_call>``, Llama-3 JSON, Mistral ``[TOOL_CALLS]``,
    pythonic ``f(a=1)``); set ``tool_format`` to teach a non-native policy one syntax.

    ## Observation Space
    :class:`~trustee_env.spaces.ChatObservation`: ``{"messages": [...], "tools": [...]}``, usable
    as is: ``client.chat.completions.create(model=..., messages=obs["messages"], tools=obs["tools"])``.

    ## Rewards
    0 on every step but the last; at the end, the judge's reward: in {-1, 0, 1}
    (``reward_mode="ternary"``) or in [-1, 1] (``"graded"``), capped by deterministic checks.

    ## Episode End
    - ``terminated``: the simulated user is satisfied or gives up.
    - ``truncated``: the step or tool-call budget ran out (judge still runs, reward <= 0), or a
      simulator failed after its retries (reward 0, ``info["sim_fault"]`` set, no judge).

    ## Info
    | key | when | meaning |
    |---|---|---|
    | ``task_id`` | always | content hash of the task |
    | ``turn`` | always | policy messages so far |
    | ``difficulty``, ``aspects`` | always | the task's difficulty knobs |
    | ``parse_errors`` | always | unreadable tool calls so far |
    | ``tool_calls`` | always | tool calls so far |
    | ``usage`` | always | per role: calls, prompt/completion tokens, repairs |
    | ``sim_fault`` | always | None, or ``{"role", "reason", "attempts", "message"}`` |
    | ``verdict``, ``task`` | final step | the judge's verdict; the task (hidden intent revealed) |
    | ``termination``, ``world_state`` | final step | why it ended; the final world state |
    | ``curriculum`` | final step, with a curriculum | ``{"difficulty", "levels"}`` after this episode |

    Latency and cache hits are not in ``info`` (two identical seeded steps must give equal
    info); see ``env.unwrapped.stats`` and the JSONL trajectories.

    ## Arguments
    - ``base_url``: OpenAI-compatible endpoint for every role (a list: a pool with failover);
      None starts (or reuses) the embedded llama.cpp server.
    - ``model``: model name at the endpoint; None asks ``/v1/models``.
    - ``difficulty``: D in [1, 100] when no curriculum is given.
    - ``tool_format``: ``"native"`` or a text syntax the policy is taught (``"hermes"``, ...).
    - ``reward_mode``: ``"ternary"`` ({-1, 0, 1}), ``"graded"`` ([-1, 1]) or ``"checks"`` (the deterministic
      checks alone, no judge call).
    - ``trajectory_path``: JSONL file every finished episode is appended to.
    - ``cache_path``: sqlite record/replay cache (same seed, same episode, no server).
    - ``catalog``: a :class:`~trustee_env.catalog.Catalog` or a path; None: the bundled 300 tools.
    - ``curriculum``: ``"paper"``, ``"band"``, a dict or a :class:`~trustee_env.curriculum.CurriculumRule`.
    - ``config``: a ready :class:`~trustee_env.config.TrusteeConfig`; keywords override it.
    - every other field of :class:`~trustee_env.config.TrusteeConfig` as a keyword (per-role
      overrides such as ``judge={"model": ...}``, budgets, ``user_goal_gate``, ...); each also
      reads ``TRUSTEE_<FIELD>``.

    ## Methods beyond Gymnasium
    ``areset``/``astep``/``afinish`` (on the caller's event loop), ``finish(reason)`` (end now,
    still judged), ``reply_messages()`` (what the env added after the last action),
    ``task_json()`` (the current task, for task banks), ``stats`` (latency, queueing, cache hits).

    ## Version History
    - v0: first release.

    Example:
        >>> import gymnasium as gym, trustee_env
        >>> env = gym.make("Trustee-v0", base_url="http://127.0.0.1:8000/v1")  # doctest: +SKIP
        >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
        >>> obs, reward, terminated, truncated, info = env.step("Which order do you mean?")  # doctest: +SKIP
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        base_url: str | list[str] | None = None,
        model: str | None = None,
        difficulty: float | None = None,
        tool_format: ToolFormat | None = None,
        reward_mode: str | None = None,
        trajectory_path: str | None = None,
        cache_path: str | None = None,
        catalog: Catalog | str | None = None,
        curriculum: str | dict[str, Any] | CurriculumRule | None = None,
        config: TrusteeConfig | None = None,
        **kwargs: Any,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        named = {
            "base_url": base_url,
            "model": model,
            "difficulty": difficulty,
            "tool_format": tool_format,
            "reward_mode": reward_mode,
            "trajectory_path": trajectory_path,
            "cache_path": cache_path,
        }
        self.runtime = Runtime(
            config=config,
            catalog=catalog,
            curriculum=curriculum,
            **{key: value for key, value in named.items() if value is not None},
            **kwargs,
        )
        self.action_space = ChatAction()
        self.observation_space = ChatObservation()
        self.episode = self.runtime.new_episode()

    # ------------------------------------------------------------------ Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a new episode (generates its task). See the class docstring for ``options``."""
        super().reset(seed=seed)
        episode_seed, kwargs = self._episode_settings(seed, options)
        return portal().run(lambda: self.episode.reset(seed=episode_seed, **kwargs))

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Send one policy message; returns ``(obs, reward, terminated, truncated, info)``."""
        try:
            out = portal().run(lambda: self.episode.step(action))
        except LLMError:
            self._keep_raised_fault()
            raise
        return self._after_step(out)

    async def areset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``reset`` on the caller's event loop (for async trainers and many episodes in flight)."""
        super().reset(seed=seed)
        episode_seed, kwargs = self._episode_settings(seed, options)
        return await self.episode.reset(seed=episode_seed, **kwargs)

    async def astep(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """``step`` on the caller's event loop."""
        try:
            out = await self.episode.step(action)
        except LLMError:
            self._keep_raised_fault()
            raise
        return self._after_step(out)

    def finish(self, reason: str = "agent_budget") -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """End the episode now (the trainer's token or turn budget ran out): checks and judge still run.

        Returns the final ``step`` five-tuple, truncated, with the reward capped at 0 and
        ``info["termination"] == reason``; the trajectory is written like any other.
        """
        try:
            out = portal().run(lambda: self.episode.finish(reason))
        except LLMError:
            self._keep_raised_fault()
            raise
        return self._after_step(out)

    async def afinish(self, reason: str = "agent_budget") -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """``finish`` on the caller's event loop."""
        try:
            out = await self.episode.finish(reason)
        except LLMError:
            self._keep_raised_fault()
            raise
        return self._after_step(out)

    def reply_messages(self) -> list[dict[str, Any]]:
        """The messages the environment added after the last action (tool results, feedback, the user's reply).

        After ``reset``: the system and first user message. What a trainer appends as environment
        tokens after the policy's turn, without diffing observations.
        """
        return self.episode.reply_messages()

    def task_json(self) -> dict[str, Any] | None:
        """The current episode's task as JSON (for task banks: ``reset(options={"task": ...})`` replays it)."""
        task = self.episode.task
        return task.model_dump(mode="json") if task is not None else None

    def _keep_raised_fault(self) -> None:
        """With ``raise_on_sim_fault``, the faulted episode is still written before the error propagates."""
        if self.episode.sim_fault is not None:
            self.runtime.write(self.episode.trajectory())

    def render(self) -> str | None:
        """``ansi``: the transcript as text; ``human``: print it."""
        text = render_episode(self.episode)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        """Release the cache connection."""
        self.runtime.close()
        super().close()

    # ------------------------------------------------------------------ internals

    def _episode_settings(self, seed: int | None, options: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        options = check_reset_options(options)
        episode_seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        difficulty, aspects, task = self.runtime.task_settings(episode_seed, options)
        return episode_seed, {"difficulty": difficulty, "aspects": aspects, "task": task}

    def _after_step(self, out: StepOutput) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if out.terminated or out.truncated:
            self._finish_episode(out)
        return out.observation, out.reward, out.terminated, out.truncated, out.info

    def _finish_episode(self, out: StepOutput) -> None:
        self.runtime.finish_episode(self.episode, out)
