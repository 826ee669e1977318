"""SkyRL: a ``BaseTextEnv`` that plays one Trustee episode per trajectory.

SkyRL's generator owns the tokens: it renders the chat, samples the policy's turn, calls
``env.step(text)`` (in a thread pool; Trustee's sync API is thread-safe) and appends the returned
observations as masked context. :class:`TrusteeTextEnv` maps that onto a Trustee episode:
``init`` replays the row's task and returns the env's own prompt (system prompt with the tool
list, first user query), ``step`` returns the tool results and the simulated user's reply, and
the judge's reward comes with the last step.

SkyRL never passes ``tools=`` to the chat template, so the tools travel in the system prompt
(``tool_format="hermes"``, the default here). Its ``generator.max_turns`` defaults to 1: set it to
the env's ``max_turns`` (8 by default), or the episode ends after the first policy turn. Register
the env inside your ``@ray.remote`` entrypoint (registration is per process)::

    @ray.remote(num_cpus=1)
    def skyrl_entrypoint(cfg):
        from trustee_env.integrations.skyrl import register_env
        register_env()                     # env_class "trustee"
        BasePPOExp(cfg).run()

Sim faults: the episode ends with reward 0 and ``metadata["sim_fault"]`` naming the role; SkyRL
cannot drop a single sample, so count them and keep the simulator healthy.

Requires the ``skyrl`` extra (``pip install "trustee-env[skyrl]"``, skyrl-gym 0.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

from trustee_env.env import TrusteeToolEnv
from trustee_env.integrations._pool import EnvPool
from trustee_env.integrations.tasks import TaskIndex, row_task, task_prompt, write_parquet

__all__ = ["ENV_CLASS", "TrusteeTextEnv", "dataset_rows", "register_env", "write_dataset"]

ENV_CLASS = "trustee"
"""The ``env_class`` dataset rows use and the id :func:`register_env` registers."""

DEFAULT_MAX_TURNS = 8


def register_env(env_id: str = ENV_CLASS) -> None:
    """Register :class:`TrusteeTextEnv` with ``skyrl_gym`` in this process (call it inside the Ray entrypoint)."""
    import skyrl_gym

    if env_id not in skyrl_gym.envs.registration.registry:
        skyrl_gym.register(id=env_id, entry_point=f"{__name__}:TrusteeTextEnv")


def dataset_rows(tasks: Any, *, env_class: str = ENV_CLASS, data_source: str = "trustee") -> list[dict[str, Any]]:
    """SkyRL dataset rows, one per bank task: ``prompt``, ``env_class``, ``reward_spec`` (unused: the judge
    scores) and ``extra_info`` with the task as a JSON string."""
    return [
        {
            "data_source": data_source,
            "prompt": task_prompt(task),
            "env_class": env_class,
            "reward_spec": {"method": "trustee_judge", "ground_truth": None},
            "extra_info": {"index": index, "task_id": task.task_id, "task": task.model_dump_json()},
        }
        for index, task in enumerate(TaskIndex(tasks).tasks)
    ]


def write_dataset(tasks: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`dataset_rows` as parquet for SkyRL's ``data.train_data`` / ``data.val_data``."""
    return write_parquet(dataset_rows(tasks, **kwargs), path)


def _plain(value: Any) -> Any:
    """OmegaConf containers (SkyRL's env_config) as plain dicts and lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:
        pass
    return value


class TrusteeTextEnv(BaseTextEnv):
    """One Trustee episode as a SkyRL text environment.

    Args:
        env_config: ``environment.skyrl_gym.trustee`` of the SkyRL config: ``env_kwargs`` (keywords for
            :class:`~trustee_env.env.TrusteeToolEnv`; ``TRUSTEE_*`` environment variables work too) and
            ``max_turns`` (policy turns before the episode is finished and judged; default 8).
        extras: the dataset row (its ``extra_info["task"]`` is replayed).
    """

    def __init__(self, env_config: Any = None, extras: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        config = dict(_plain(env_config) or {})
        self.env_kwargs = {"tool_format": "hermes", **dict(config.get("env_kwargs") or {})}
        self.max_turns = int(config.get("max_turns", DEFAULT_MAX_TURNS))
        self.task = row_task(dict(_plain(extras) or {}))
        self.seed = config.get("seed")
        self._key: str | None = None
        self._env: TrusteeToolEnv | None = None
        self._last_info: dict[str, Any] = {}

    def init(self, prompt: Any) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """Start the episode; returns the env's prompt (not the row's short one) and the task id."""
        self._key, self._env = EnvPool.acquire(self.env_kwargs)
        obs, info = self._env.reset(seed=self.seed, options={"task": self.task})
        self.turns = 0
        self._last_info = dict(info)
        return [_message(m) for m in obs["messages"]], {"task_id": info.get("task_id")}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        """Send the policy's turn; returns the environment's replies, and the reward when the episode ends."""
        if self._env is None:
            raise RuntimeError("TrusteeTextEnv.step before init")
        self.turns += 1
        if self._last_info.get("sim_fault") and self.turns == 1:  # the reset itself failed: nothing to play
            self._release()
            return BaseTextEnvStepOutput(
                observations=[], reward=0.0, done=True, metadata={"sim_fault": self._last_info["sim_fault"]["role"]}
            )
        _, reward, terminated, truncated, info = self._env.step(action)
        done = terminated or truncated
        if not done and self.turns >= self.max_turns:
            _, reward, _, _, info = self._env.finish("agent_budget")
            done = True
        self._last_info = dict(info)
        observations = [] if done else [_message(m) for m in self._env.reply_messages()]
        metadata = {
            "task_id": info.get("task_id"),
            "sim_fault": (info.get("sim_fault") or {}).get("role") if info.get("sim_fault") else None,
            "termination": info.get("termination"),
            "tool_calls": info.get("tool_calls"),
        }
        if done:
            self._release()
        return BaseTextEnvStepOutput(observations=observations, reward=float(reward), done=done, metadata=metadata)

    def get_metrics(self) -> dict[str, Any]:
        """Per-episode numbers SkyRL averages: turns, tool calls, sim fault (0/1), parse errors."""
        info = self._last_info
        return {
            "turns": self.turns,
            "tool_calls": info.get("tool_calls", 0),
            "sim_fault": int(info.get("sim_fault") is not None),
            "parse_errors": info.get("parse_errors", 0),
        }

    def close(self) -> None:
        """Hand the Trustee env back to the worker's pool."""
        self._release()

    def _release(self) -> None:
        if self._env is not None and self._key is not None:
            EnvPool.release(self._key, self._env)
        self._env = None


def _message(message: Mapping[str, Any]) -> dict[str, str]:
    """A chat message as SkyRL carries it: role and text (tool results keep the ``tool`` role)."""
    return {"role": str(message.get("role", "user")), "content": str(message.get("content") or "")}
