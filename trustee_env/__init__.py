"""Trustee: Gymnasium environments for tool-calling LLM agents, fully simulated by a local LM.

``import trustee_env`` registers ``Trustee-v0``; ``gym.make("trustee_env:Trustee-v0")`` also
works without the import. Nothing else happens at import time.
"""

from gymnasium.envs.registration import register

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
from trustee_env.schemas import Aspects, Task, ToolCall, ToolSpec

__version__ = "0.1.0"

__all__ = [
    "Aspects",
    "BandCurriculum",
    "Catalog",
    "CatalogError",
    "ConfigError",
    "CurriculumWrapper",
    "EndpointConfig",
    "EpisodeStateError",
    "LLMConnectionError",
    "LLMError",
    "LLMStatusError",
    "LLMTimeoutError",
    "OutputTruncatedError",
    "PaperCurriculum",
    "ReplayMissError",
    "ServerError",
    "SimulatorOutputError",
    "Task",
    "TemplateError",
    "ToolCall",
    "ToolSpec",
    "TrusteeConfig",
    "TrusteeError",
    "TrusteeToolEnv",
    "TrusteeVectorEnv",
    "__version__",
    "make_curriculum",
]


_LAZY = {
    "TrusteeToolEnv": "trustee_env.env",
    "TrusteeVectorEnv": "trustee_env.vector",
    "CurriculumWrapper": "trustee_env.wrappers",
    "PaperCurriculum": "trustee_env.curriculum",
    "BandCurriculum": "trustee_env.curriculum",
    "make_curriculum": "trustee_env.curriculum",
}


def __getattr__(name: str):  # lazy, so importing the package stays light
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trustee_env' has no attribute {name!r}")


register(
    id="Trustee-v0",
    entry_point="trustee_env.env:TrusteeToolEnv",
    vector_entry_point="trustee_env.vector:TrusteeVectorEnv",
    max_episode_steps=None,  # the episode owns its budget: a TimeLimit would skip the judge
)
