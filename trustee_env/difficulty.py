"""From one difficulty score D in [1, 100] to the seven aspects of a task.

Every aspect rises linearly with D from its easiest to its hardest level (the paper's
scheme). ``sample_aspects`` adds the paper's diversity rule: with probability
``p_random`` each aspect is drawn uniformly at or below its current level.

Example:
    >>> aspects_for(1).num_tools, aspects_for(100).num_tools
    (1, 10)
"""

from __future__ import annotations

from typing import Any, get_args

import numpy as np

from trustee_env.schemas import Ambiguity, Aspects, Expertise, PromptSpecificity

__all__ = ["ASPECT_LEVELS", "aspect_level", "aspects_for", "budget_for", "sample_aspects", "with_level"]

# Each aspect as an ordered list of levels, easiest first.
ASPECT_LEVELS: dict[str, list[Any]] = {
    "num_tools": list(range(1, 11)),
    "num_calls": [1, 2, 3],
    "num_turns": [1, 2],
    "prompt_specificity": list(get_args(PromptSpecificity)),
    "persona": list(get_args(Expertise)),
    "ambiguity": list(get_args(Ambiguity)),
    "strictness": [1, 2, 3, 4, 5],
}


def _fraction(difficulty: float) -> float:
    return (min(max(float(difficulty), 1.0), 100.0) - 1.0) / 99.0


def aspect_level(difficulty: float, aspect: str) -> int:
    """The level index (0 = easiest) of one aspect at difficulty D."""
    levels = ASPECT_LEVELS[aspect]
    return min(len(levels) - 1, int(np.floor(_fraction(difficulty) * len(levels))))


def with_level(aspect: str, level: int) -> Any:
    """The value of an aspect at a level index (clamped)."""
    levels = ASPECT_LEVELS[aspect]
    return levels[min(max(level, 0), len(levels) - 1)]


def aspects_for(difficulty: float, pinned: dict[str, Any] | None = None) -> Aspects:
    """The aspects at difficulty D, each aspect in ``pinned`` replaced by the given value."""
    values = {name: with_level(name, aspect_level(difficulty, name)) for name in ASPECT_LEVELS}
    values.update(pinned or {})
    return Aspects(**values)


def sample_aspects(
    difficulty: float,
    rng: np.random.Generator,
    *,
    p_random: float = 0.5,
    pinned: dict[str, Any] | None = None,
    levels: dict[str, int] | None = None,
) -> Aspects:
    """Aspects for a new task: each drawn at or below its level with probability ``p_random``.

    Args:
        difficulty: the score D that sets each aspect's level.
        rng: the source of randomness (seeded for reproducible tasks).
        p_random: chance that an aspect is drawn uniformly from levels 0..current.
        pinned: aspects the user fixed; never randomised.
        levels: per-aspect level indexes overriding the ones D gives (the band curriculum).
    """
    values: dict[str, Any] = {}
    for name in ASPECT_LEVELS:
        level = (levels or {}).get(name, aspect_level(difficulty, name))
        if p_random > 0 and rng.random() < p_random:
            level = int(rng.integers(0, level + 1))
        values[name] = with_level(name, level)
    values.update(pinned or {})
    return Aspects(**values)


def budget_for(aspects: Aspects) -> tuple[int, int]:
    """Default (max policy messages, max tool calls) of an episode with these aspects.

    Enough room for every expected call to be made, retried once after an error, the
    clarification turns to happen and a final answer to be given.
    """
    max_tool_calls = 3 * aspects.num_calls + 2
    max_steps = 2 * aspects.num_calls + 2 * aspects.num_turns + 4
    return max_steps, max_tool_calls
