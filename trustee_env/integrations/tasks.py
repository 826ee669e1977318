"""Task-bank rows for trainer datasets: the prompt is built from the task and identifies it.

Trainers hand an adapter only part of a dataset row (TRL's ``rollout_func`` sees only the
prompts), and the G copies of a row in a GRPO group may run in different processes. So the
task travels as a JSON string in the row, and the prompt (system prompt + first query) is a
key back to it: every process builds the same :class:`TaskIndex` from the same bank and looks
tasks up locally, with no communication. A task replays with ``env.reset(options={"task": ...})``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trustee_env.schemas import Task

__all__ = ["TaskIndex", "load_tasks", "prompt_key", "row_task", "task_prompt", "write_parquet"]

logger = logging.getLogger("trustee_env.integrations")

TaskLike = Task | Mapping[str, Any] | str


def _as_task(item: TaskLike) -> Task:
    if isinstance(item, Task):
        return item
    if isinstance(item, str):
        return Task.model_validate_json(item)
    return Task.model_validate(dict(item))


def load_tasks(source: Any) -> list[Task]:
    """Tasks from a task bank: a ``TaskBank``, a path to a saved bank, or an iterable of tasks.

    Tasks may be :class:`~trustee_env.schemas.Task` objects, their ``model_dump(mode="json")``
    dicts, or JSON strings (as stored in dataset rows).
    """
    if isinstance(source, (str, Path)):
        from trustee_env.bank import TaskBank  # the bank format belongs to trustee_env.bank

        return list(TaskBank.load(source).tasks)
    tasks = getattr(source, "tasks", source)
    return [_as_task(item) for item in tasks]


def task_prompt(task: TaskLike) -> list[dict[str, str]]:
    """The prompt a dataset row shows for a task: its system prompt and the user's first query.

    The adapters send the env's own rendering of the episode to the model (the tool list is
    added for non-native tool formats); this prompt only names the task, and logs read well.
    """
    task = _as_task(task)
    return [
        {"role": "system", "content": task.system_prompt},
        {"role": "user", "content": task.first_query},
    ]


def prompt_key(prompt: Sequence[Mapping[str, Any]] | str) -> str:
    """A content hash of a prompt (role and text of each message; other keys are ignored)."""
    if isinstance(prompt, str):
        canonical: Any = prompt
    else:
        canonical = [[str(m.get("role", "")), _text(m.get("content"))] for m in prompt]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()[:32]


def _text(content: Any) -> str:
    """Message content as text (content parts joined), so a dataset's own normalisation does not change the key."""
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, Mapping) else str(part) for part in content)
    return "" if content is None else str(content)


class TaskIndex:
    """Tasks keyed by their prompt: dataset rows out, the task back from a prompt.

    Two tasks with the same prompt cannot be told apart by a trainer that only passes prompts;
    the later one is dropped (with a warning) so that a lookup is never ambiguous.

    Args:
        tasks: anything :func:`load_tasks` accepts.
    """

    def __init__(self, tasks: Any) -> None:
        self._by_key: dict[str, Task] = {}
        dropped = 0
        for task in load_tasks(tasks):
            key = prompt_key(task_prompt(task))
            if key in self._by_key:
                dropped += 1
                continue
            self._by_key[key] = task
        if dropped:
            logger.warning("task bank: %d task(s) share a prompt with an earlier task and were dropped", dropped)
        if not self._by_key:
            raise ValueError("the task bank is empty")

    def __len__(self) -> int:
        return len(self._by_key)

    @property
    def tasks(self) -> list[Task]:
        """The indexed tasks, in bank order."""
        return list(self._by_key.values())

    def rows(self) -> list[dict[str, Any]]:
        """One dataset row per task: ``prompt`` (messages), ``task`` (JSON string), ``task_id``, ``difficulty``."""
        return [
            {
                "prompt": task_prompt(task),
                "task": task.model_dump_json(),
                "task_id": task.task_id,
                "difficulty": task.difficulty,
            }
            for task in self._by_key.values()
        ]

    def lookup(self, prompt: Sequence[Mapping[str, Any]] | str) -> Task:
        """The task whose row showed this prompt.

        Raises:
            KeyError: the prompt is not from this bank (e.g. the dataset and the index were built
                from different banks).
        """
        try:
            return self._by_key[prompt_key(prompt)]
        except KeyError:
            raise KeyError(
                "this prompt is not from the task bank the adapter was given; build the dataset and the "
                "adapter from the same bank (TaskIndex.rows())"
            ) from None

    def task_json(self, prompt: Sequence[Mapping[str, Any]] | str) -> dict[str, Any]:
        """``lookup(prompt)`` as the JSON dict ``reset(options={"task": ...})`` takes."""
        return self.lookup(prompt).model_dump(mode="json")

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> TaskIndex:
        """An index from dataset rows that carry a ``task`` JSON column (what :meth:`rows` wrote)."""
        return cls([row["task"] for row in rows])


def write_parquet(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write dataset rows as one parquet file (needs ``pyarrow``; verl and SkyRL read parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), target)
    return target


def row_task(row: Mapping[str, Any]) -> dict[str, Any]:
    """The task JSON of a dataset row: ``extra_info["task"]`` (verl, SkyRL) or a top-level ``task`` column."""
    extra = row.get("extra_info")
    task = extra.get("task") if isinstance(extra, Mapping) else None
    if task is None:
        task = row.get("task")
    if task is None:
        raise ValueError(
            "the dataset row carries no task (extra_info['task']): build the dataset from a task bank with the "
            "adapter's write_dataset(bank, path)"
        )
    return json.loads(task) if isinstance(task, str) else dict(task)
