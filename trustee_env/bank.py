"""Task banks: tasks generated once, stored as JSON, replayed exactly.

A held-out evaluation set must not drift between runs, and a trainer (TRL, verl, the bundled
one) that needs the same task for the G members of a group, across processes, needs it as data.
A bank is that data: a JSON file of :class:`~trustee_env.schemas.Task` objects plus how they
were made. Replay one with ``env.reset(options={"task": bank.tasks[i]})``, or a batch of groups
with ``vector_env.reset(options={"tasks": bank.tasks[:n]})``.

Example:
    >>> bank = build_bank(8, seed=0, difficulties=(1, 30))          # doctest: +SKIP
    >>> bank.save("heldout.json"); TaskBank.load("heldout.json").summary()["tasks"]  # doctest: +SKIP
    8
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from trustee_env.errors import ConfigError, LLMError
from trustee_env.llm.usage import Usage
from trustee_env.schemas import Task, content_hash, derive_seed

__all__ = ["BANK_SCHEMA_VERSION", "TaskBank", "abuild_bank", "build_bank"]

BANK_SCHEMA_VERSION = 1


class TaskBank(BaseModel):
    """Stored tasks and their provenance."""

    schema_version: int = BANK_SCHEMA_VERSION
    seed: int | None = Field(default=None, description="The seed the bank was generated from.")
    model: str | None = Field(default=None, description="The task generator's model.")
    created: str = Field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    failed: int = Field(default=0, description="Generations that ended in a simulator fault (not stored).")
    tasks: list[Task]

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def bank_id(self) -> str:
        """A content hash of the tasks: two banks with the same id replay the same episodes."""
        return content_hash([task.model_dump(mode="json") for task in self.tasks])

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the bank as one JSON file (atomically: a crash never leaves half a bank)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(self.model_dump_json(indent=1), encoding="utf-8")
        os.replace(tmp, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TaskBank:
        """Read a bank written by :meth:`save` (or a plain JSON list of task objects)."""
        source = Path(path)
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"task bank {source} does not exist; build one with `trustee bank build`") from None
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"task bank {source} is not readable JSON: {err}") from None
        if isinstance(data, list):
            data = {"tasks": data}
        if isinstance(data, dict) and data.get("schema_version", BANK_SCHEMA_VERSION) > BANK_SCHEMA_VERSION:
            raise ConfigError(f"task bank {source} has schema_version {data['schema_version']}; upgrade trustee-env")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(f"task bank {source} is not valid: {where}: {first['msg']}") from None

    def select(self, n: int, *, difficulty: float | None = None, rng: np.random.Generator | None = None) -> list[Task]:
        """``n`` tasks drawn at random, among those nearest ``difficulty`` when given.

        A curriculum over a fixed bank: the candidates are the ``max(n, len/4)`` tasks closest to
        the current difficulty, so a trainer follows the curriculum without generating tasks.
        """
        if not self.tasks:
            raise ConfigError("the task bank is empty")
        rng = rng or np.random.default_rng()
        order = list(range(len(self.tasks)))
        if difficulty is not None:
            order.sort(key=lambda i: (abs(self.tasks[i].difficulty - difficulty), i))
            order = order[: max(n, math.ceil(len(order) / 4))]
        picks = rng.choice(len(order), size=n, replace=n > len(order))
        return [self.tasks[order[int(i)]] for i in picks]

    def split(self, fraction: float, *, seed: int = 0) -> tuple[TaskBank, TaskBank]:
        """Two disjoint banks (e.g. train / held-out), ``fraction`` of the tasks in the first."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.tasks))
        cut = round(fraction * len(self.tasks))
        first = [self.tasks[int(i)] for i in sorted(order[:cut])]
        second = [self.tasks[int(i)] for i in sorted(order[cut:])]
        meta = {"seed": self.seed, "model": self.model, "created": self.created}
        return TaskBank(tasks=first, **meta), TaskBank(tasks=second, **meta)

    def summary(self) -> dict[str, Any]:
        """Counts for ``trustee bank show``: tasks, difficulties, expected calls, tools and categories."""
        difficulties = [task.difficulty for task in self.tasks]
        categories = Counter(tool.category or "?" for task in self.tasks for tool in task.tools)
        return {
            "bank_id": self.bank_id,
            "tasks": len(self.tasks),
            "failed_generations": self.failed,
            "model": self.model,
            "seed": self.seed,
            "created": self.created,
            "difficulty": {
                "min": min(difficulties, default=None),
                "mean": round(sum(difficulties) / len(difficulties), 2) if difficulties else None,
                "max": max(difficulties, default=None),
            },
            "expected_calls": dict(sorted(Counter(len(task.expected_calls) for task in self.tasks).items())),
            "tools_offered": dict(sorted(Counter(len(task.tools) for task in self.tasks).items())),
            "categories": dict(categories.most_common(10)),
        }


def _difficulties(n: int, difficulties: Sequence[float] | tuple[float, float]) -> list[float]:
    """``n`` difficulties: a (low, high) pair spread evenly, or an explicit list cycled."""
    values = [float(d) for d in difficulties]
    if not values or any(not 1 <= d <= 100 for d in values):
        raise ConfigError(f"difficulties must lie in [1, 100], got {list(difficulties)}")
    if len(values) == 2 and n > 2:
        low, high = values
        return [round(low + (high - low) * i / (n - 1), 2) for i in range(n)]
    return [values[i % len(values)] for i in range(n)]


async def abuild_bank(
    n: int,
    *,
    seed: int = 0,
    difficulties: Sequence[float] | tuple[float, float] = (1.0, 40.0),
    aspects: dict[str, Any] | None = None,
    concurrency: int = 4,
    on_task: Callable[[Task | None], None] | None = None,
    **env_kwargs: Any,
) -> TaskBank:
    """Generate ``n`` tasks (on the caller's loop) with the configured task generator.

    ``env_kwargs`` are :class:`~trustee_env.config.TrusteeConfig` fields (``base_url``, ``model``,
    ``catalog``...). Generations that end in a simulator fault are counted in ``failed`` and not
    stored, so a bank may hold fewer than ``n`` tasks; ``on_task`` sees each result (None: failed).
    """
    from trustee_env.runtime import Runtime  # the env layer: banks are built with the env's own roles

    if n < 1:
        raise ConfigError(f"a bank needs at least one task, got n={n}")
    runtime = Runtime(**env_kwargs)
    gate = asyncio.Semaphore(max(1, concurrency))
    options = {"aspects": aspects} if aspects else {}

    async def one(index: int, difficulty: float) -> Task | None:
        task_seed = derive_seed(seed, "bank", index)
        _, task_aspects, _ = runtime.task_settings(task_seed, {**options, "difficulty": difficulty})
        async with gate:
            try:
                task = await runtime.roles.task_generator.generate_with_attempts(
                    runtime.catalog,
                    task_seed,
                    difficulty,
                    task_aspects,
                    attempts=runtime.config.task_attempts,
                    usage=Usage(),
                )
            except LLMError:
                task = None
        if on_task is not None:
            on_task(task)
        return task

    try:
        results = await asyncio.gather(*(one(i, d) for i, d in enumerate(_difficulties(n, difficulties))))
        model = runtime.config.endpoint("task_generator").model
    finally:
        runtime.close()
    tasks = [task for task in results if task is not None]
    return TaskBank(seed=seed, model=model, failed=len(results) - len(tasks), tasks=tasks)


def build_bank(n: int, **kwargs: Any) -> TaskBank:
    """:func:`abuild_bank` from synchronous code (runs on Trustee's background loop)."""
    from trustee_env._portal import portal

    return portal().run(lambda: abuild_bank(n, **kwargs))
