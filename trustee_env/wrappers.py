"""Gymnasium wrappers for Trustee environments.

``CurriculumWrapper`` is a convenience for single-env loops. The curriculum itself lives on
the unwrapped env (``env.unwrapped.curriculum``), which already asks it for each task's
difficulty at reset and reports each finished episode to it, so the same rule also works
with ``astep``/``areset`` and vector envs, where wrappers are skipped.

Example:
    >>> env = CurriculumWrapper(gym.make("Trustee-v0", base_url=url), curriculum="paper")  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
    >>> info["curriculum"]  # doctest: +SKIP
    {'difficulty': 10.0, 'levels': {'num_tools': 0, ...}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

from trustee_env.curriculum import Curriculum, ReportsProgress, make_curriculum

__all__ = ["CurriculumWrapper"]


class CurriculumWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Installs a curriculum rule on the env and reports it in ``info["curriculum"]``.

    ``info["curriculum"]`` (at reset and on every step, the final one included) is
    ``{"difficulty": D, "levels": {aspect: level index}}``, read from the rule after the
    env has reported the step, so on a final step it already includes that episode.

    Args:
        env: a Trustee env (or a wrapper around one).
        curriculum: ``"paper"``, ``"band"``, a ``{"name": ..., ...}`` dict or a rule object.
            ``None`` keeps the env's own rule, or installs ``"paper"`` if it has none (or if
            ``kwargs`` are given).
        **kwargs: options of the named rule (e.g. ``difficulty=20, update_every=128``).

    Change logs:
        * v0.1.0 - first release.
    """

    def __init__(self, env: gym.Env, curriculum: str | Mapping[str, Any] | Curriculum | None = None, **kwargs: Any):
        gym.utils.RecordConstructorArgs.__init__(self, curriculum=curriculum, **kwargs)
        gym.Wrapper.__init__(self, env)
        if not hasattr(env.unwrapped, "curriculum"):
            raise TypeError(f"CurriculumWrapper needs a Trustee env, got {type(env.unwrapped).__name__}")
        own = env.unwrapped.curriculum
        if curriculum is None and own is not None and not kwargs:
            rule = own
        else:
            rule = make_curriculum("paper" if curriculum is None else curriculum, **kwargs)
        env.unwrapped.curriculum = rule

    @property
    def curriculum(self) -> Curriculum:
        """The rule the env uses (the same object as ``env.unwrapped.curriculum``)."""
        return self.env.unwrapped.curriculum

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset the env (its curriculum picks the task's difficulty) and add ``info["curriculum"]``."""
        obs, info = self.env.reset(seed=seed, options=options)
        info["curriculum"] = _snapshot(self.curriculum)
        return obs, info

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Step the env and add ``info["curriculum"]``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["curriculum"] = _snapshot(self.curriculum)
        return obs, reward, terminated, truncated, info

    def update(self, rewards: Sequence[float] | None = None) -> None:
        """End a training step: see :meth:`Curriculum.update`."""
        self.curriculum.update(rewards)

    def state_dict(self) -> dict[str, Any]:
        """The rule's JSON-serialisable state (see :meth:`Curriculum.state_dict`)."""
        return self.curriculum.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the rule's state (see :meth:`Curriculum.load_state_dict`)."""
        self.curriculum.load_state_dict(state)


def _snapshot(rule: Any) -> dict[str, Any]:
    """``{"difficulty", "levels"}`` of a rule; a bare :class:`CurriculumRule` may not report them."""
    if isinstance(rule, ReportsProgress):
        return rule.snapshot()
    return {"difficulty": getattr(rule, "difficulty", None), "levels": dict(getattr(rule, "levels", {}))}
