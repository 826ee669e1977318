"""Trustee: Gymnasium environments for tool-calling LLM agents, fully simulated by a local LM.

``import trustee_env`` registers ``Trustee-v0``; ``gym.make("trustee_env:Trustee-v0")`` also
works without the import. Nothing else happens at import time.
"""

from gymnasium.envs.registration import register

from trustee_env import log as _log  # noqa: F401  (the quiet-by-default logger, TRUSTEE_LOG_LEVEL)
from trustee_env.catalog import Catalog
from trustee_env.config import EndpointConfig, TrusteeConfig
from trustee_env.errors import (
    CatalogError,
    ConfigError,
    EpisodeStateError,
    LLMConnectionError,
    LLMError,
    LLMStatusError,
    LLMTimeoutError,
    OutputTruncatedError,
    ReplayMissError,
    ServerError,
    SimulatorOutputError,
    TemplateError,
    TrusteeError,
)
from trustee_env.schemas import Aspects, Role, Task, ToolCall, ToolSpec

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Aspects",
    "BandCurriculum",
    "Catalog",
    "CatalogError",
    "ChatAction",
    "ChatObservation",
    "ConfigError",
    "Criterion",
    "Curriculum",
    "CurriculumRule",
    "CurriculumWrapper",
    "EndpointConfig",
    "EpisodeStateError",
    "LLMConnectionError",
    "LLMError",
    "LLMStatusError",
    "LLMTimeoutError",
    "Observation",
    "OutputTruncatedError",
    "PaperCurriculum",
    "ReplayMissError",
    "Role",
    "ServerError",
    "ShardedVectorEnv",
    "SimulatorOutputError",
    "StepInfo",
    "Task",
    "TemplateError",
    "ToolCall",
    "ToolSpec",
    "Trajectory",
    "TrusteeConfig",
    "TrusteeError",
    "TrusteeToolEnv",
    "TrusteeVectorEnv",
    "Verdict",
    "__version__",
    "make_curriculum",
    "read_trajectories",
    "register_criterion",
]


_LAZY = {
    "TrusteeToolEnv": "trustee_env.env",
    "TrusteeVectorEnv": "trustee_env.vector",
    "ShardedVectorEnv": "trustee_env.sharded",
    "CurriculumWrapper": "trustee_env.wrappers",
    "Curriculum": "trustee_env.curriculum",
    "CurriculumRule": "trustee_env.curriculum",
    "PaperCurriculum": "trustee_env.curriculum",
    "BandCurriculum": "trustee_env.curriculum",
    "make_curriculum": "trustee_env.curriculum",
    "Verdict": "trustee_env.roles.judge",
    "Criterion": "trustee_env.checks",
    "register_criterion": "trustee_env.checks",
    "Trajectory": "trustee_env.trajectory",
    "read_trajectories": "trustee_env.trajectory",
    "Action": "trustee_env.spaces",
    "ChatAction": "trustee_env.spaces",
    "ChatObservation": "trustee_env.spaces",
    "Observation": "trustee_env.spaces",
    "StepInfo": "trustee_env.spaces",
}


def __getattr__(name: str):  # lazy, so importing the package stays light
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trustee_env' has no attribute {name!r}")


def __dir__() -> list[str]:  # so tab completion and dir() show the lazy names too
    return sorted(set(globals()) | set(__all__))


register(
    id="Trustee-v0",
    entry_point="trustee_env.env:TrusteeToolEnv",
    vector_entry_point="trustee_env.sharded:make_vector_env",  # TrusteeVectorEnv, or ShardedVectorEnv (processes=P)
    max_episode_steps=None,  # the episode owns its budget: a TimeLimit would skip the judge
)
