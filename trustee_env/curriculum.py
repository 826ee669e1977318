"""Adaptive curriculum rules: which difficulty the next task gets, learned from rewards.

Two rules, both pure, thread-safe and serialisable (no Gymnasium here):

- :class:`PaperCurriculum`, the paper's rule: one score D in [1, 100]; after every training step
  D += 3 if the batch's mean reward is above 0.5, D -= 3 if it is below 0.0. Each task's aspects
  come from D, each drawn at random at or below its level with probability 0.5 (diversity).
- :class:`BandCurriculum`, Trustee's rule: each of the seven aspects has its own level, moved
  per episode to keep the success rate (reward > 0) at that level inside a target band.

The env calls ``task_settings`` at reset and ``observe`` when a non-faulted episode ends; a
trainer calls ``update`` once per training step. In distributed training the driver owns the
rule and ships ``state_dict()``; workers ``load_state_dict`` a ``frozen`` copy.

Example:
    >>> import numpy as np
    >>> rule = PaperCurriculum(difficulty=10.0)
    >>> rule.update([1.0, 1.0, 0.0, 1.0])
    >>> rule.difficulty
    13.0
    >>> difficulty, aspects = rule.task_settings(np.random.default_rng(0))
"""

from __future__ import annotations

import abc
import difflib
import inspect
import json
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from trustee_env.difficulty import ASPECT_LEVELS, aspect_level, sample_aspects
from trustee_env.errors import ConfigError
from trustee_env.schemas import Aspects

__all__ = ["BandCurriculum", "Curriculum", "CurriculumRule", "PaperCurriculum", "ReportsProgress", "make_curriculum"]


@runtime_checkable
class CurriculumRule(Protocol):
    """What an env needs from a curriculum: task settings to draw from, and the rewards it earned.

    :class:`Curriculum` implements it (with locking, history and state dicts); any object with
    these two methods can be passed as ``curriculum=`` too.
    """

    def task_settings(self, rng: np.random.Generator, pinned: Mapping[str, Any] | None = None) -> tuple[float, Aspects]:
        """The difficulty and aspects of the next task (``pinned`` aspects are kept as given)."""
        ...

    def observe(self, reward: float, aspects: Mapping[str, Any] | Aspects) -> None:
        """One finished, non-faulted episode's reward and the aspects it was played at."""
        ...


@runtime_checkable
class ReportsProgress(Protocol):
    """A rule that can say where it stands (``info["curriculum"]`` carries it)."""

    def snapshot(self) -> dict[str, Any]:
        """``{"difficulty": D, "levels": {aspect: level}}`` now."""
        ...


STATE_VERSION = 1


def _level_of(aspect: str, value: Any) -> int | None:
    """The level index of an aspect's value, or None if it is not one of its levels."""
    try:
        return ASPECT_LEVELS[aspect].index(value)
    except ValueError:
        return None


def _check_reward(reward: float) -> float:
    value = float(reward)
    if not math.isfinite(value):
        raise ValueError(f"a curriculum reward must be a finite number, got {reward!r}")
    return value


class Curriculum(abc.ABC):
    """Base of the curriculum rules: shared locking, buffering, history and (de)serialisation.

    Subclasses set ``name``, list their constructor arguments in ``_config_keys`` and their
    JSON-able state attributes in ``_state_keys``, and implement ``difficulty``, ``levels`` and
    the ``_observe_locked`` / ``_update_locked`` hooks. Every public method may be called from
    any thread; all state changes happen under one lock.

    Attributes:
        history: one entry per ``update``: ``step``, ``difficulty``, ``mean_reward``,
            ``success_rate``, ``episodes`` and ``levels`` (aspect -> level index).
        frozen: when True, ``observe`` and ``update`` do nothing (for workers that only
            receive the driver's ``state_dict``). Not part of the state dict.
    """

    name: ClassVar[str] = ""
    _config_keys: ClassVar[tuple[str, ...]] = ("p_random",)  # constructor arguments, restored by load_state_dict
    _state_keys: ClassVar[tuple[str, ...]] = ("_steps", "_episodes", "_buffer", "history")  # JSON-able attributes

    def __init__(self, *, p_random: float, frozen: bool = False) -> None:
        if not 0.0 <= p_random <= 1.0:
            raise ConfigError(f"p_random must be in [0, 1], got {p_random}")
        self.p_random = float(p_random)
        self.frozen = frozen
        self.history: list[dict[str, Any]] = []
        self._buffer: list[float] = []
        self._steps = 0
        self._episodes = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ to implement

    @property
    @abc.abstractmethod
    def difficulty(self) -> float:
        """The current (equivalent) difficulty score D in [1, 100]."""

    @property
    @abc.abstractmethod
    def levels(self) -> dict[str, int]:
        """The current level index of every aspect (0 = easiest)."""

    @abc.abstractmethod
    def _observe_locked(self, reward: float, aspects: dict[str, Any]) -> None:
        """Learn from one episode (lock held; the reward is already buffered)."""

    @abc.abstractmethod
    def _update_locked(self, rewards: list[float]) -> None:
        """Learn from one training step's batch (lock held)."""

    # ------------------------------------------------------------------ public API

    def task_settings(self, rng: np.random.Generator, pinned: Mapping[str, Any] | None = None) -> tuple[float, Aspects]:
        """The difficulty and aspects of the next task.

        Args:
            rng: the episode's generator (seeded, so a seeded reset gets the same aspects).
            pinned: aspects the user fixed (``reset(options={"aspects": ...})``); never changed.

        Returns:
            ``(difficulty, aspects)``.
        """
        with self._lock:
            difficulty, levels = self.difficulty, self.levels
        aspects = sample_aspects(difficulty, rng, p_random=self.p_random, pinned=dict(pinned or {}), levels=levels)
        return difficulty, aspects

    def observe(self, reward: float, aspects: Mapping[str, Any] | Aspects) -> None:
        """Record one finished, non-faulted episode (the env calls this)."""
        reward = _check_reward(reward)
        values = aspects.model_dump() if isinstance(aspects, Aspects) else dict(aspects)
        with self._lock:
            if self.frozen:
                return
            self._episodes += 1
            self._buffer.append(reward)
            self._observe_locked(reward, values)

    def update(self, rewards: Sequence[float] | None = None) -> None:
        """End one training step: apply the rule to a batch of rewards and log a history entry.

        Args:
            rewards: the step's episode rewards. ``None`` uses the rewards ``observe`` buffered
                since the last update. The buffer is emptied either way (a given batch is the
                authority for this step). An empty batch changes nothing.
        """
        batch = None if rewards is None else [_check_reward(r) for r in rewards]
        with self._lock:
            if self.frozen:
                return
            batch, self._buffer = (self._buffer if batch is None else batch), []
            if batch:
                self._step_locked(batch)

    def _step_locked(self, batch: list[float]) -> None:
        """Apply the rule to one step's batch and log it (lock held)."""
        self._steps += 1
        self._update_locked(batch)
        self.history.append(
            {
                "step": self._steps,
                "difficulty": self.difficulty,
                "mean_reward": float(np.mean(batch)),
                "success_rate": sum(r > 0 for r in batch) / len(batch),
                "episodes": len(batch),
                "levels": self.levels,
                **self._history_extra(),
            }
        )

    def _history_extra(self) -> dict[str, Any]:
        return {}

    def snapshot(self) -> dict[str, Any]:
        """``{"difficulty": D, "levels": {...}}``: what the wrapper puts in ``info["curriculum"]``."""
        with self._lock:
            return {"difficulty": self.difficulty, "levels": self.levels}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore this rule exactly (its configuration included); JSON-serialisable."""
        with self._lock:
            state = {
                "name": self.name,
                "version": STATE_VERSION,
                "config": {key: getattr(self, key) for key in self._config_keys},
                **{key.lstrip("_"): getattr(self, key) for key in self._state_keys},
            }
            return json.loads(json.dumps(state))  # a deep copy that is sure to serialise

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()``; ``frozen`` is left as it is."""
        state = json.loads(json.dumps(dict(state)))
        if state.get("name") != self.name:
            raise ConfigError(f"state dict is for the {state.get('name')!r} curriculum, not {self.name!r}")
        if int(state.get("version", 0)) > STATE_VERSION:
            raise ConfigError(f"state dict version {state['version']} is newer than this trustee_env reads")
        missing = [key for key in self._state_keys if key.lstrip("_") not in state]
        if missing or set(state.get("config", {})) != set(self._config_keys):
            raise ConfigError(f"incomplete {self.name!r} curriculum state dict (missing {missing or 'config keys'})")
        with self._lock:
            for key, value in state["config"].items():
                setattr(self, key, value)
            for key in self._state_keys:
                setattr(self, key, state[key.lstrip("_")])

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Curriculum:
        """A new rule of the right kind, restored from ``state``."""
        rule = make_curriculum(str(state.get("name")))
        rule.load_state_dict(state)
        return rule

    def write_history(self, path: str | Path) -> None:
        """Write the history as JSON Lines (one entry per update), replacing the file."""
        with self._lock:
            lines = [json.dumps(entry) + "\n" for entry in self.history]
        Path(path).write_text("".join(lines), encoding="utf-8")

    @property
    def episodes(self) -> int:
        """Episodes observed so far."""
        return self._episodes

    def __getstate__(self) -> dict[str, Any]:  # locks do not pickle (subprocess vector envs)
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(difficulty={self.difficulty:.1f}, levels={self.levels})"


class PaperCurriculum(Curriculum):
    """The paper's rule: one score D moved by a fixed step after every training step.

    Args:
        difficulty: the starting D.
        step: how much D moves per update.
        raise_above: D rises when the batch's mean reward is above this.
        lower_below: D falls when the batch's mean reward is below this.
        p_random: chance that each aspect is drawn at random at or below its level.
        update_every: if set, ``observe`` calls ``update()`` itself every this many episodes.
        min_difficulty: lower bound of D.
        max_difficulty: upper bound of D.
        frozen: ignore ``observe``/``update`` (workers).
    """

    name = "paper"
    _config_keys = (
        "p_random",
        "step",
        "raise_above",
        "lower_below",
        "update_every",
        "min_difficulty",
        "max_difficulty",
    )
    _state_keys = (*Curriculum._state_keys, "_difficulty")

    def __init__(
        self,
        difficulty: float = 10.0,
        step: float = 3.0,
        raise_above: float = 0.5,
        lower_below: float = 0.0,
        p_random: float = 0.5,
        update_every: int | None = None,
        min_difficulty: float = 1,
        max_difficulty: float = 100,
        *,
        frozen: bool = False,
    ) -> None:
        super().__init__(p_random=p_random, frozen=frozen)
        if not 1 <= min_difficulty <= max_difficulty <= 100:
            raise ConfigError(
                f"need 1 <= min_difficulty <= max_difficulty <= 100, got {min_difficulty}, {max_difficulty}"
            )
        if lower_below > raise_above:
            raise ConfigError(f"lower_below ({lower_below}) must not exceed raise_above ({raise_above})")
        if update_every is not None and update_every < 1:
            raise ConfigError(f"update_every must be a positive number of episodes or None, got {update_every}")
        self.step, self.raise_above, self.lower_below = float(step), float(raise_above), float(lower_below)
        self.update_every = update_every
        self.min_difficulty, self.max_difficulty = float(min_difficulty), float(max_difficulty)
        self._difficulty = min(max(float(difficulty), self.min_difficulty), self.max_difficulty)

    @property
    def difficulty(self) -> float:
        return self._difficulty

    @property
    def levels(self) -> dict[str, int]:
        return {name: aspect_level(self._difficulty, name) for name in ASPECT_LEVELS}

    def _observe_locked(self, reward: float, aspects: dict[str, Any]) -> None:
        if self.update_every is not None and len(self._buffer) >= self.update_every:
            batch, self._buffer = self._buffer, []
            self._step_locked(batch)

    def _update_locked(self, rewards: list[float]) -> None:
        mean = float(np.mean(rewards))
        if mean > self.raise_above:
            self._difficulty += self.step
        elif mean < self.lower_below:
            self._difficulty -= self.step
        self._difficulty = min(max(self._difficulty, self.min_difficulty), self.max_difficulty)


class BandCurriculum(Curriculum):
    """Trustee's rule: one level per aspect, each kept where its success rate is inside a band.

    After each observed episode, every aspect whose value was at its current level updates
    that level's EMA of success (reward > 0; EMAs start at the band's centre). Once an aspect
    has ``min_episodes`` episodes at its current level it may move one level, and its counter
    restarts: down if the EMA is below ``low``, up if it is above ``high``.

    Credit assignment: one success signal drives all seven aspects, so the plain band cannot
    tell which aspect makes tasks hard. Once the joint success is inside the band every aspect
    stops, mastered ones included, and a failure caused by one aspect lowers them all. With
    diversity (``p_random > 0``) each aspect is also seen below its level, which measures its
    *cost*: the EMA of success below its level minus the EMA at it (0 at level 0). Then

    - an aspect inside the band whose cost is at most ``free_margin`` also rises, unless the
      next level's EMA is below ``low`` (known too hard; that evidence decays towards the
      band's centre at each such decision, so the level is tried again later);
    - an aspect below the band drops only if its cost is above ``free_margin`` (or unknown).

    ``free_margin=None`` or ``p_random=0`` gives the plain band rule.

    Args:
        low: lower edge of the target success band.
        high: upper edge of the target success band.
        alpha: EMA weight of each new episode.
        difficulty: the D whose aspect levels are the starting levels.
        p_random: chance that each aspect is drawn at random at or below its level.
        min_episodes: episodes at an aspect's current level before it may move again.
        free_margin: the largest cost (success lost against the levels below) that still
            counts as free; None turns credit assignment off.
        frozen: ignore ``observe``/``update`` (workers).
    """

    name = "band"
    _config_keys = ("p_random", "low", "high", "alpha", "min_episodes", "free_margin")
    _state_keys = (*Curriculum._state_keys, "_levels", "_ema", "_below", "_count", "_count_below")

    def __init__(
        self,
        low: float = 0.3,
        high: float = 0.7,
        alpha: float = 0.1,
        difficulty: float = 10.0,
        p_random: float = 0.5,
        min_episodes: int = 8,
        free_margin: float | None = 0.05,
        *,
        frozen: bool = False,
    ) -> None:
        super().__init__(p_random=p_random, frozen=frozen)
        if not 0 <= low <= high <= 1:
            raise ConfigError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
        if not 0 < alpha <= 1:
            raise ConfigError(f"alpha must be in (0, 1], got {alpha}")
        if min_episodes < 1:
            raise ConfigError(f"min_episodes must be at least 1, got {min_episodes}")
        if free_margin is not None and free_margin < 0:
            raise ConfigError(f"free_margin must be >= 0 or None, got {free_margin}")
        self.low, self.high, self.alpha = float(low), float(high), float(alpha)
        self.min_episodes = int(min_episodes)
        self.free_margin = None if free_margin is None else float(free_margin)
        self._levels = {name: aspect_level(difficulty, name) for name in ASPECT_LEVELS}
        centre = (self.low + self.high) / 2
        self._ema = {name: [centre] * len(levels) for name, levels in ASPECT_LEVELS.items()}
        self._below = dict.fromkeys(ASPECT_LEVELS, centre)
        self._count = dict.fromkeys(ASPECT_LEVELS, 0)
        self._count_below = dict.fromkeys(ASPECT_LEVELS, 0)

    @property
    def difficulty(self) -> float:
        """The equivalent D: the mean normalised level of the aspects, scaled to [1, 100]."""
        fractions = [self._levels[name] / (len(levels) - 1) for name, levels in ASPECT_LEVELS.items()]
        return float(np.mean(fractions)) * 99.0 + 1.0

    @property
    def levels(self) -> dict[str, int]:
        return dict(self._levels)

    def success_rates(self) -> dict[str, float]:
        """Each aspect's EMA of success at its current level."""
        with self._lock:
            return self._rates_locked()

    def _rates_locked(self) -> dict[str, float]:
        return {name: self._ema[name][level] for name, level in self._levels.items()}

    def _observe_locked(self, reward: float, aspects: dict[str, Any]) -> None:
        success = 1.0 if reward > 0 else 0.0
        for name in ASPECT_LEVELS:
            level = _level_of(name, aspects.get(name))
            if level is None:
                continue
            self._ema[name][level] += self.alpha * (success - self._ema[name][level])
            if level < self._levels[name]:
                self._below[name] += self.alpha * (success - self._below[name])
                self._count_below[name] += 1
            elif level == self._levels[name]:
                self._count[name] += 1
                self._decide(name)

    def _update_locked(self, rewards: list[float]) -> None:
        """Nothing: the band moves per episode, in ``observe`` (``update`` only logs)."""

    def _decide(self, name: str) -> None:
        if self._count[name] < self.min_episodes:
            return
        level, top = self._levels[name], len(ASPECT_LEVELS[name]) - 1
        rate = self._ema[name][level]
        cost = self._cost(name, level, rate)  # None: not known, or credit assignment is off
        if rate < self.low and level > 0 and (cost is None or cost > self.free_margin):
            self._move(name, level - 1)
        elif rate > self.high and level < top:
            self._move(name, level + 1)
        elif level < top and cost is not None and cost <= self.free_margin and rate >= self.low:
            following = self._ema[name][level + 1]
            if following >= self.low:  # not known to be too hard: try it
                self._move(name, level + 1)
            else:  # known too hard, but that evidence ages towards the prior, so it is retried one day
                self._ema[name][level + 1] += self.alpha * ((self.low + self.high) / 2 - following)

    def _cost(self, name: str, level: int, rate: float) -> float | None:
        """How much less often episodes succeed at this level than below it (0 at level 0)."""
        if self.free_margin is None or self.p_random == 0:
            return None
        if level == 0:
            return 0.0
        return self._below[name] - rate if self._count_below[name] >= self.min_episodes else None

    def _move(self, name: str, level: int) -> None:
        old, self._levels[name] = self._levels[name], level
        self._count[name] = 0
        if level > old:  # the old level is now the (adjacent) level below
            self._below[name], self._count_below[name] = self._ema[name][old], self.min_episodes
        else:  # evidence from below must be gathered again
            self._below[name], self._count_below[name] = (self.low + self.high) / 2, 0

    def _history_extra(self) -> dict[str, Any]:
        return {"success_at_level": self._rates_locked()}


CURRICULA: dict[str, type[Curriculum]] = {"paper": PaperCurriculum, "band": BandCurriculum}


def make_curriculum(spec: str | Mapping[str, Any] | CurriculumRule, **kwargs: Any) -> CurriculumRule:
    """A curriculum rule from a name, a ``{"name": ..., **kwargs}`` dict, or a rule object.

    Args:
        spec: ``"paper"``, ``"band"``, ``{"name": "paper", "difficulty": 20}``, or a rule
            object (a :class:`Curriculum`, or any :class:`CurriculumRule`),
            returned as is.
        **kwargs: constructor arguments, merged over the dict's.

    Raises:
        ConfigError: unknown name or constructor argument.
    """
    if isinstance(spec, CurriculumRule):
        if kwargs:
            raise ConfigError(f"curriculum options {sorted(kwargs)} given with a ready rule object {spec!r}")
        return spec
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None)
        if name is None:
            raise ConfigError(f"a curriculum dict needs a 'name' ({' or '.join(map(repr, CURRICULA))}), got {spec!r}")
    else:
        raise ConfigError(f"curriculum must be a name, a dict or a Curriculum, got {type(spec).__name__}")
    options.update(kwargs)
    cls = CURRICULA.get(str(name).strip().lower())
    if cls is None:
        raise ConfigError(
            f"unknown curriculum {name!r}; known: {', '.join(CURRICULA)}.{_did_you_mean(name, CURRICULA)}"
        )
    known = [p for p in inspect.signature(cls).parameters if p != "self"]
    for key in options:
        if key not in known:
            raise ConfigError(f"unknown option {key!r} for the {cls.name!r} curriculum.{_did_you_mean(key, known)}")
    return cls(**options)


def _did_you_mean(word: Any, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word).strip().lower(), list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
