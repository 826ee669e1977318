"""The runtime both envs share: settings, tool catalog, cache, simulator roles, curriculum and stats.

:class:`TrusteeToolEnv` drives one episode with it, :class:`TrusteeVectorEnv` many; neither
builds clients, picks task settings or accounts a finished episode itself. One runtime is one
set of LM clients (and so one concurrency limit per endpoint) for every episode it serves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trustee_env.catalog import Catalog
from trustee_env.config import TrusteeConfig, make_config
from trustee_env.curriculum import CurriculumRule, ReportsProgress, make_curriculum
from trustee_env.difficulty import aspects_for
from trustee_env.episode import Episode, Roles, StepOutput
from trustee_env.errors import ConfigError
from trustee_env.llm.cache import ResponseCache
from trustee_env.llm.client import LLMClient, response_formats
from trustee_env.llm.usage import Usage
from trustee_env.roles import Judge, TaskGenerator, ToolSimulator, UserSimulator
from trustee_env.schemas import Aspects, Role, Task
from trustee_env.trajectory import Trajectory, append_trajectory, flush_trajectories

__all__ = [
    "RESET_OPTIONS",
    "Runtime",
    "RuntimeViews",
    "TaskSettings",
    "build_roles",
    "check_render_mode",
    "check_reset_options",
    "check_vector_layout",
    "open_cache",
    "resolve_catalog",
    "resolve_config",
    "resolve_curriculum",
]

RESET_OPTIONS = frozenset({"difficulty", "aspects", "task"})
TaskSettings = tuple[float, Aspects, "Task | None"]
"""Difficulty, aspects and (when replaying one) the fixed task of the next episode."""


def resolve_config(config: TrusteeConfig | None = None, **kwargs: Any) -> TrusteeConfig:
    """Build the config and fill in ``base_url`` from the embedded server when none is given."""
    cfg = make_config(config, **kwargs)
    if cfg.base_url is None and any(getattr(cfg, r.value).base_url is None for r in Role if r is not Role.POLICY):
        from trustee_env.serve.managed import ensure_embedded_server

        server = ensure_embedded_server(engine=cfg.server_engine, parallel=cfg.server_parallel)
        cfg = cfg.model_copy(update={"base_url": server.base_url, "model": cfg.model or server.model_name})
    return cfg


def resolve_catalog(catalog: Catalog | str | None, config: TrusteeConfig) -> Catalog:
    """A Catalog from an object, a path, the config's ``catalog`` path, or the bundled default."""
    if isinstance(catalog, Catalog):
        return catalog
    source = catalog or config.catalog
    return Catalog.shared(source) if source else Catalog.default()


def open_cache(config: TrusteeConfig) -> ResponseCache | None:
    """The record/replay cache the config asks for, or None when ``cache_mode="off"``."""
    if config.cache_mode == "off" or not config.cache_path:
        return None
    return ResponseCache(config.cache_path, config.cache_mode)


def build_roles(config: TrusteeConfig, cache: ResponseCache | None = None) -> Roles:
    """The four simulator roles, each on its own resolved endpoint, with the config's ``prompt_dir``."""

    def client(role: Role) -> LLMClient:
        return LLMClient(role.value, config.endpoint(role), cache=cache, prompt_dir=config.prompt_dir)

    prompts = config.prompt_dir
    return Roles(
        task_generator=TaskGenerator(
            client(Role.TASK_GENERATOR),
            ungrounded=config.ungrounded_arguments,
            prompt_dir=prompts,
            require_records=config.task_require_records,
            dedup_window=config.task_dedup_window,
        ),
        user=UserSimulator(client(Role.USER), prompt_dir=prompts),
        tool=ToolSimulator(client(Role.TOOL), prompt_dir=prompts),
        judge=Judge(client(Role.JUDGE), mode=config.reward_mode, prompt_dir=prompts),
    )


def resolve_curriculum(curriculum: str | dict[str, Any] | CurriculumRule | None) -> CurriculumRule | None:
    """A curriculum rule from a name (``"paper"``, ``"band"``), a ``{"name": ...}`` dict or a rule object."""
    return None if curriculum is None else make_curriculum(curriculum)


def check_render_mode(render_mode: str | None, modes: list[str]) -> None:
    """A ``render_mode`` the env supports, or None; else a ConfigError naming the choices."""
    if render_mode is not None and render_mode not in modes:
        raise ConfigError(f"render_mode must be one of {modes} or None, got {render_mode!r}")


def check_vector_layout(num_envs: Any, group_size: Any) -> None:
    """Positive ints with ``num_envs`` a multiple of ``group_size`` (slot i belongs to GRPO group i // group_size)."""
    for name, value in (("num_envs", num_envs), ("group_size", group_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive int, got {value!r}")
    if num_envs % group_size:
        raise ConfigError(
            f"num_envs ({num_envs}) must be a multiple of group_size ({group_size}): "
            f"slot i belongs to GRPO group i // group_size"
        )


def check_reset_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``reset(options=...)``: only difficulty, aspects and task; a task dict becomes a Task."""
    options = dict(options or {})
    unknown = set(options) - RESET_OPTIONS
    if unknown:
        raise ConfigError(f"unknown reset option(s) {sorted(unknown)}; known: {', '.join(sorted(RESET_OPTIONS))}")
    task = options.get("task")
    if task is not None and not isinstance(task, Task):
        options["task"] = Task.model_validate(task)
    return options


class Runtime:
    """Everything the episodes of one env share.

    Args:
        config: ready settings (keywords override them), else built from ``kwargs`` and ``TRUSTEE_*``.
        catalog: a Catalog, a path, or None for the config's catalog or the bundled one.
        curriculum: a curriculum name, dict or rule object, or None.
        **kwargs: any :class:`~trustee_env.config.TrusteeConfig` field.
    """

    def __init__(
        self,
        *,
        config: TrusteeConfig | None = None,
        catalog: Catalog | str | None = None,
        curriculum: str | dict[str, Any] | CurriculumRule | None = None,
        **kwargs: Any,
    ) -> None:
        self.config = resolve_config(config, **kwargs)
        self.catalog = resolve_catalog(catalog, self.config)
        self.cache = open_cache(self.config)
        self.roles = build_roles(self.config, self.cache)  # one set of clients for every episode
        self.curriculum = resolve_curriculum(curriculum)
        self.stats: dict[str, Any] = {"episodes": 0, "sim_faults": 0, "usage": Usage()}

    def new_episode(self, member: int = 0) -> Episode:
        """An episode on this runtime's roles (``member``: its index in a GRPO group)."""
        return Episode(self.roles, self.config, self.catalog, member=member)

    def task_settings(self, seed: int, options: dict[str, Any]) -> TaskSettings:
        """Difficulty, aspects and fixed task of one task: from options, else the curriculum, else the config."""
        pinned = {**(self.config.aspects or {}), **(options.get("aspects") or {})}
        difficulty = float(options.get("difficulty", self.config.difficulty))
        if self.curriculum is not None and "difficulty" not in options:
            difficulty, aspects = self.curriculum.task_settings(np.random.default_rng(seed), pinned=pinned)
        else:
            aspects = aspects_for(difficulty, pinned)
        if not isinstance(aspects, Aspects):
            aspects = Aspects.model_validate(aspects)
        return float(difficulty), aspects, options.get("task")

    def finish_episode(self, episode: Episode, out: StepOutput, **extra: Any) -> Trajectory:
        """Account a finished episode: stats, curriculum (non-faulted only), the JSONL trajectory."""
        faulted = out.info.get("sim_fault") is not None
        self.stats["episodes"] += 1
        self.stats["sim_faults"] += int(faulted)
        self.stats["usage"].merge(episode.usage)
        self.stats["task_gate"] = self.roles.task_generator.gate_stats.as_dict()
        record = episode.trajectory(**extra)
        self.stats["last_timings"] = record.timings.model_dump()
        if self.curriculum is not None and not faulted:
            self.curriculum.observe(out.reward, record.aspects.model_dump() if record.aspects else {})
        if isinstance(self.curriculum, ReportsProgress):
            out.info["curriculum"] = self.curriculum.snapshot()  # D and levels after this episode
        self.write(record)
        return record

    def write(self, record: Trajectory) -> None:
        """Append a trajectory to the configured JSONL (a faulted one too: nothing is lost)."""
        if self.config.trajectory_path:
            append_trajectory(self.config.trajectory_path, record)

    def close(self) -> None:
        """Make the trajectories written so far durable (fsync), then release the cache connection."""
        if self.config.trajectory_path:
            flush_trajectories()
        if self.cache is not None:
            self.cache.close()


class RuntimeViews:
    """Read access to an env's :class:`Runtime` under the names users know (``env.unwrapped.stats``, ...)."""

    runtime: Runtime

    @property
    def config(self) -> TrusteeConfig:
        """The resolved settings."""
        return self.runtime.config

    @property
    def catalog(self) -> Catalog:
        """The tool pool tasks are drawn from."""
        return self.runtime.catalog

    @property
    def roles(self) -> Roles:
        """The four simulator roles, shared by every episode of the env."""
        return self.runtime.roles

    @property
    def curriculum(self) -> CurriculumRule | None:
        """The curriculum rule (None: fixed difficulty); assignable, e.g. by :class:`CurriculumWrapper`."""
        return self.runtime.curriculum

    @curriculum.setter
    def curriculum(self, rule: CurriculumRule | None) -> None:
        self.runtime.curriculum = rule

    @property
    def stats(self) -> dict[str, Any]:
        """Episodes, sim faults, per-role usage (latency, queueing, cache hits), task-gate counts, and the
        structured-output mode per endpoint URL (``response_formats``: it never changes without a warning)."""
        self.runtime.stats["response_formats"] = response_formats()
        return self.runtime.stats
