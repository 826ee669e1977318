"""``TrusteeVectorEnv``: many simulated episodes in flight on one event loop, in GRPO groups.

``gym.make_vec("Trustee-v0", num_envs=N, group_size=G, **env_kwargs)`` returns it. The N
sub-episodes are plain :class:`~trustee_env.episode.Episode` objects that share one set of
simulator roles (one LLM client per endpoint); each ``step`` runs them concurrently with
``asyncio.gather`` (no subprocesses). ``reset``/``step`` are sync (they run on the process-wide
background loop); ``areset``/``astep`` run on the caller's loop.

## GRPO groups
Slot ``i`` belongs to block ``i // G`` and is member ``i % G`` of it. The r-th episode of every
slot of a block (counted from the last ``reset``) plays the same task ``(block, r)``: same tools,
persona, hidden intent, first query, initial world state and difficulty. The task is generated
once, by whichever member needs it first (a memoised future: the others await it, so members
need not start together). Task seed = ``derive_seed(reset_seed, block, r)``; member ``m``'s
episode seed = ``derive_seed(task_seed, m)``, so the simulators sample each member apart.

## Task banks
``reset(options={"tasks": [...]})`` plays stored tasks (:class:`~trustee_env.schemas.Task` objects or
their JSON dicts, e.g. from a :class:`~trustee_env.bank.TaskBank`): every round of group ``b`` plays
``tasks[b % len(tasks)]`` (``b`` counted over the whole batch, shards included), so no task is
generated and a held-out set never drifts. ``"task"`` (one task for every group) and ``"tasks"``
exclude each other.

## Autoreset (``AutoresetMode.NEXT_STEP``)
A sub-env whose episode ended on step t is reset on step t + 1: its action on step t + 1 is
ignored (pass ``None``), and step t + 1 returns its first observation of the new episode, reward
0, ``terminated=False``, ``truncated=False`` and the reset's info.

## Holding a slot
``None`` as the action of a slot whose episode is running *holds* it: the slot is not stepped, no
simulator is called, and it returns its current observation, reward 0, ``False``, ``False`` and an
info with ``held=True``. Episodes take different numbers of turns; a trainer that wants exactly one
episode per slot holds the slots that are done (after their autoreset) until the others finish.

## Observations, actions, infos
Observations: a tuple of N :class:`~trustee_env.spaces.ChatObservation` dicts. Actions: a
sequence of N :class:`~trustee_env.spaces.ChatAction` values (``None`` for autoresetting slots).
Rewards: ``np.float64`` array; terminations/truncations: ``np.bool_`` arrays. Infos are batched
with Gymnasium's ``_add_info``: ``infos[key][i]`` with the mask ``infos["_" + key][i]``; nested
dicts (``aspects``, ``usage``) are batched recursively. ``None`` values are left out (mask
False), and ``task``, ``verdict``, ``world_state``, ``sim_fault`` and ``group_rewards`` are kept
whole in object arrays. Besides the single env's keys: ``group_id`` (always), and on the final
step of the last member of a group to finish, ``group_rewards`` (rewards by member, ``None`` for
sim-faulted members) and ``group_zero_variance`` (all non-faulted members got the same reward;
also True when fewer than two are non-faulted: such a group carries no GRPO signal).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from trustee_env._portal import portal
from trustee_env.catalog import Catalog
from trustee_env.config import TrusteeConfig
from trustee_env.episode import StepOutput
from trustee_env.errors import ConfigError, EpisodeStateError, LLMError
from trustee_env.llm.usage import Usage
from trustee_env.runtime import (
    Runtime,
    RuntimeViews,
    check_render_mode,
    check_reset_options,
    check_vector_layout,
)
from trustee_env.schemas import Aspects, Task, content_hash, derive_seed
from trustee_env.spaces import ChatAction, ChatObservation
from trustee_env.viewer import render_episode

__all__ = ["TrusteeVectorEnv"]

logger = logging.getLogger("trustee_env")

OPAQUE_INFO_KEYS = frozenset({"task", "verdict", "world_state", "sim_fault", "group_rewards"})
"""Info values kept whole in an object array: free-form JSON that ``_add_info`` must not recurse into."""

StepResult = tuple[dict[str, Any], float, bool, bool, dict[str, Any]]


@dataclass
class _GroupTask:
    """The shared task of one GRPO group ``(block, round)`` and the results of its members."""

    group_id: str
    task_seed: int
    difficulty: float
    aspects: Aspects
    task: Task | None = None
    future: asyncio.Future[Task] | None = None
    generation_usage: Usage | None = None
    rewards: dict[int, float | None] = field(default_factory=dict)  # member -> reward (None: sim fault)


class TrusteeVectorEnv(RuntimeViews, VectorEnv):
    """N Trustee episodes stepped together, in GRPO groups of ``group_size`` sharing a task.

    Args:
        num_envs: number of sub-episodes N.
        group_size: G, members per GRPO group; must divide N. 1 (default) gives every slot its own tasks.
        render_mode: ``"ansi"`` (``render()`` returns a tuple of transcripts), ``"human"`` (prints them) or None.
        config: a :class:`~trustee_env.config.TrusteeConfig`; keyword arguments override its fields.
        catalog: a :class:`~trustee_env.catalog.Catalog` or a path.
        curriculum: a curriculum rule object (``task_settings(rng, pinned)`` / ``observe(reward, aspects)``) or a
            name such as ``"paper"``. It is read once per group task and told every non-faulted episode's reward.
        **kwargs: every other field of ``TrusteeConfig`` (``base_url``, ``model``, ``difficulty``, ...).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": ["ansi", "human"],
        "render_fps": 4,
    }

    _slot_offset: int = 0
    """Global index of slot 0 when this env is one shard of a :class:`~trustee_env.sharded.ShardedVectorEnv` (a
    multiple of ``group_size``): task seeds, group ids and trajectory slots use global indices, so a shard plays
    the very tasks its slots play in a single process."""

    def __init__(
        self,
        num_envs: int = 1,
        group_size: int = 1,
        render_mode: str | None = None,
        *,
        config: TrusteeConfig | None = None,
        catalog: Catalog | str | None = None,
        curriculum: Any = None,
        **kwargs: Any,
    ) -> None:
        check_vector_layout(num_envs, group_size)
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.num_envs = int(num_envs)
        self.group_size = int(group_size)
        self.num_groups = self.num_envs // self.group_size
        self.render_mode = render_mode
        self.runtime = Runtime(config=config, catalog=catalog, curriculum=curriculum, **kwargs)  # one set of clients

        self.single_observation_space = ChatObservation()
        self.single_action_space = ChatAction()
        self.observation_space = spaces.Tuple([ChatObservation() for _ in range(self.num_envs)])
        self.action_space = spaces.Tuple([ChatAction() for _ in range(self.num_envs)])

        self.episodes = [self.runtime.new_episode(member=i % self.group_size) for i in range(self.num_envs)]
        self.stats.update(groups=0, zero_variance_groups=0)
        self._reset_seed: int | None = None
        self._options: dict[str, Any] = {}
        self._tasks: list[Task] | None = None
        self._rounds = [0] * self.num_envs
        self._group_ids: list[str | None] = [None] * self.num_envs
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)
        self._groups: dict[tuple[int, int], _GroupTask] = {}
        self._ready = False

    # ------------------------------------------------------------------ Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
        """Start a new episode in every slot; round 0 of every group. ``options`` (``difficulty``,
        ``aspects``, ``task``, or ``tasks``: one per group) apply until the next ``reset``, autoresets included."""
        return portal().run(lambda: self._reset_all(seed, options))

    def step(
        self, actions: Sequence[Any]
    ) -> tuple[tuple[dict[str, Any], ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One policy message per slot; ``None`` resets a slot that ended on the last step, and holds a running one."""
        return portal().run(lambda: self._step_all(actions))

    async def areset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
        """``reset`` on the caller's event loop."""
        return await self._reset_all(seed, options)

    async def astep(
        self, actions: Sequence[Any]
    ) -> tuple[tuple[dict[str, Any], ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """``step`` on the caller's event loop."""
        return await self._step_all(actions)

    def render(self) -> tuple[str, ...] | None:
        """``ansi``: a tuple with each sub-episode's transcript; ``human``: print them."""
        texts = tuple(render_episode(episode) for episode in self.episodes)
        if self.render_mode == "human":
            for index, text in enumerate(texts):
                print(f"===== sub-env {index} =====\n{text}")
            return None
        return texts

    def close_extras(self, **kwargs: Any) -> None:
        """Cancel task generations still in flight and release the cache connection."""
        self._drop_groups()
        self.runtime.close()

    # ------------------------------------------------------------------ reset / step

    async def _reset_all(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(
                f"seed must be an int or None, got {type(seed).__name__}: one reset seed seeds every group's tasks"
            )
        options = dict(options or {})
        tasks = self._check_tasks(options.pop("tasks", None), single="task" in options)
        options = check_reset_options(options)
        VectorEnv.reset(self, seed=None if seed is None else int(seed))
        self._tasks = tasks
        self._ready = False
        self._reset_seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self._options = options
        self._drop_groups()
        self._rounds = [0] * self.num_envs
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)
        results = await _gather_all([self._reset_slot(i) for i in range(self.num_envs)])
        self._ready = True
        observations = tuple(obs for obs, _ in results)
        return observations, self._batch_infos([info for _, info in results])

    async def _step_all(
        self, actions: Sequence[Any]
    ) -> tuple[tuple[dict[str, Any], ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._ready:
            raise EpisodeStateError("step() called before reset() (or after a failed step): call reset() first")
        if isinstance(actions, (str, dict)) or not hasattr(actions, "__len__"):
            raise TypeError(f"actions must be a sequence of {self.num_envs} assistant messages, got {actions!r:.80}")
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions (one per sub-env), got {len(actions)}")
        resetting = self._autoreset.copy()

        async def one(index: int) -> StepOutput:
            if resetting[index]:  # NEXT_STEP autoreset: the action is ignored
                self._rounds[index] += 1
                obs, info = await self._reset_slot(index)
                return StepOutput(obs, 0.0, False, False, info)
            episode = self.episodes[index]
            if actions[index] is None:  # held: not stepped, no simulator called
                return StepOutput(
                    episode.observation(), 0.0, False, False, {"group_id": self._group_ids[index], "held": True}
                )
            try:
                out = await episode.step(actions[index])
            except LLMError:  # raise_on_sim_fault: the faulted episode is still written (DESIGN rule 6)
                if episode.sim_fault is not None:
                    self.runtime.write(
                        episode.trajectory(group_id=self._group_ids[index], slot=self._slot_offset + index)
                    )
                raise
            out.info["group_id"] = self._group_ids[index]
            return out

        try:
            outputs = await _gather_all([one(i) for i in range(self.num_envs)])
        except BaseException:
            self._ready = False  # some slots moved on, others did not: only a full reset is safe
            raise
        for index, out in enumerate(outputs):  # in slot order, so "the last finisher" is deterministic
            if not resetting[index] and (out.terminated or out.truncated):
                self._finish(index, out)
        rewards = np.array([out.reward for out in outputs], dtype=np.float64)
        terminations = np.array([out.terminated for out in outputs], dtype=np.bool_)
        truncations = np.array([out.truncated for out in outputs], dtype=np.bool_)
        self._autoreset = terminations | truncations
        infos = self._batch_infos([out.info for out in outputs])
        return tuple(out.observation for out in outputs), rewards, terminations, truncations, infos

    async def _reset_slot(self, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
        block, member = divmod(index, self.group_size)
        group = self._group_task(block, self._rounds[index])
        episode = self.episodes[index]
        settings = {"seed": derive_seed(group.task_seed, member), "difficulty": group.difficulty}
        generated_here = False
        if group.task is not None:
            obs, info = await episode.reset(**settings, aspects=group.aspects, task=group.task)
        else:
            if group.future is None:  # the first member to need the task starts its generation
                usage = Usage()
                group.generation_usage = usage
                group.future = asyncio.ensure_future(
                    self.roles.task_generator.generate_with_attempts(
                        self.catalog,
                        group.task_seed,
                        group.difficulty,
                        group.aspects,
                        attempts=self.config.task_attempts,
                        usage=usage,
                    )
                )
                generated_here = True
            # shield: one member being cancelled must not cancel the task the others await
            obs, info = await episode.reset(**settings, aspects=group.aspects, task_future=asyncio.shield(group.future))
        if generated_here and group.generation_usage is not None:
            episode.usage.merge(group.generation_usage)  # as in the single env: the task's calls count once
            info["usage"] = episode.usage.info_view()
        self._group_ids[index] = group.group_id
        info["group_id"] = group.group_id
        return obs, info

    def _group_task(self, block: int, round_: int) -> _GroupTask:
        """The memoised task settings of group ``(block, round_)``; the curriculum is read once per group."""
        key = (block, round_)
        group = self._groups.get(key)
        if group is None:
            assert self._reset_seed is not None
            block += self._slot_offset // self.group_size  # global block; the memo key stays local
            task_seed = derive_seed(self._reset_seed, block, round_)
            difficulty, aspects, task = self.runtime.task_settings(task_seed, self._options)
            if self._tasks:
                task = self._tasks[block % len(self._tasks)]
                difficulty, aspects = task.difficulty, task.aspects
            group = _GroupTask(
                group_id=content_hash([self._reset_seed, block, round_]),
                task_seed=task_seed,
                difficulty=difficulty,
                aspects=aspects,
                task=task,
            )
            self._groups[key] = group
        return group

    def _finish(self, index: int, out: StepOutput) -> None:
        """Log a finished episode; when it is its group's last, report the group's rewards on its info."""
        block, member = divmod(index, self.group_size)
        key = (block, self._rounds[index])
        faulted = out.info.get("sim_fault") is not None
        self.runtime.finish_episode(
            self.episodes[index], out, group_id=self._group_ids[index], slot=self._slot_offset + index
        )
        group = self._groups.get(key)
        if group is None:  # cannot happen while the bookkeeping is intact
            logger.warning("finished episode of slot %d has no group %s", index, key)
            return
        group.rewards[member] = None if faulted else float(out.reward)
        if len(group.rewards) < self.group_size:
            return
        rewards = [group.rewards[m] for m in range(self.group_size)]
        valid = [reward for reward in rewards if reward is not None]
        zero_variance = len(valid) < 2 or max(valid) - min(valid) <= 1e-9
        out.info["group_rewards"] = rewards
        out.info["group_zero_variance"] = bool(zero_variance)
        self.stats["groups"] += 1
        self.stats["zero_variance_groups"] += int(zero_variance)
        del self._groups[key]  # every member has reset into it and finished: nobody needs the task again

    @staticmethod
    def _check_tasks(tasks: Any, *, single: bool) -> list[Task] | None:
        """Validate ``reset(options={"tasks": [...]})``: a non-empty sequence of tasks or task dicts."""
        if tasks is None:
            return None
        if single:
            raise ConfigError('reset options "task" and "tasks" exclude each other: pass one task or a list')
        if isinstance(tasks, (str, bytes, dict, Task)) or not isinstance(tasks, Sequence) or not tasks:
            raise ConfigError(f'reset option "tasks" must be a non-empty list of tasks, got {tasks!r:.80}')
        return [task if isinstance(task, Task) else Task.model_validate(task) for task in tasks]

    def _drop_groups(self) -> None:
        """Forget every group task; cancel generations nobody will await any more."""
        for group in self._groups.values():
            future = group.future
            if future is not None and not future.done():
                try:
                    future.get_loop().call_soon_threadsafe(future.cancel)
                except RuntimeError:  # its loop is closed (an asyncio.run that ended)
                    pass
        self._groups = {}

    def _batch_infos(self, infos: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Gymnasium's batched info (``_add_info``), with free-form JSON values kept whole and ``None`` left out."""
        batched: dict[str, Any] = {}
        for index, info in enumerate(infos):
            plain: dict[str, Any] = {}
            for key, value in info.items():
                if value is None:
                    continue
                if key in OPAQUE_INFO_KEYS:
                    if key not in batched:
                        batched[key] = np.full(self.num_envs, None, dtype=object)
                        batched[f"_{key}"] = np.zeros(self.num_envs, dtype=np.bool_)
                    batched[key][index] = value
                    batched[f"_{key}"][index] = True
                else:
                    plain[key] = value
            batched = self._add_info(batched, plain, index)
        return batched


# ---------------------------------------------------------------------- helpers (env.py could share these)


async def _gather_all(coroutines: list[Awaitable[Any]]) -> list[Any]:
    """Run all concurrently and wait for all (none left running); then re-raise the first failure."""
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
