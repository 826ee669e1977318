"""Configuration: one endpoint per role plus the environment's options.

Values come from keyword arguments first, then ``TRUSTEE_*`` environment variables, then
defaults. Env-wide endpoint settings (``TRUSTEE_BASE_URL``, ``TRUSTEE_MODEL``, ...) apply to
every role; per-role overrides use ``TRUSTEE_<ROLE>_<FIELD>``, for example
``TRUSTEE_JUDGE_MODEL=Qwen/Qwen3-8B`` or ``TRUSTEE_TOOL_BASE_URL=http://10.0.0.2:8000/v1``.

Example:
    >>> from trustee_env.config import TrusteeConfig
    >>> cfg = TrusteeConfig(base_url="http://127.0.0.1:8000/v1", judge={"model": "big"})
    >>> cfg.endpoint("judge").model
    'big'
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from trustee_env.errors import ConfigError
from trustee_env.schemas import Role

__all__ = ["DEFAULT_CONCURRENCY", "ROLE_DEFAULTS", "EndpointConfig", "RoleOverride", "TrusteeConfig", "make_config"]

ResponseFormat = Literal["auto", "json_schema", "json_object"]
CacheMode = Literal["off", "read_write", "replay_only"]
ToolFormat = Literal["native", "hermes", "llama3", "mistral", "pythonic"]

# vLLM batches 256 sequences by default and the paper keeps 128 rollouts in flight: a lower client-side
# default would cap training throughput below what the server can take.
DEFAULT_CONCURRENCY = 256


class EndpointConfig(BaseModel):
    """Everything needed to call one OpenAI-compatible endpoint for one role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str | list[str] | None = Field(
        default=None, description="OpenAI-compatible base URL ending in /v1 (a list spreads load over several)."
    )
    model: str | None = Field(default=None, description="Model name; None asks the server's /v1/models.")
    api_key: str = Field(
        default="EMPTY", repr=False, description="API key sent as a bearer token (local servers ignore it)."
    )
    timeout: float = Field(default=120.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(default=3, ge=0, description="Retries on 429/5xx/timeouts/connection errors.")
    max_repairs: int = Field(default=2, ge=0, description="Re-asks after an answer fails its schema.")
    concurrency: int = Field(
        default=DEFAULT_CONCURRENCY,
        ge=1,
        description="Requests in flight to this endpoint, per process (more wait, with a log line and a count).",
    )
    temperature: float = Field(default=0.7, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling cut-off.")
    # Sent with every request so llama.cpp and vLLM sample alike (their server defaults differ); None: not sent,
    # for endpoints that reject fields outside OpenAI's API. See docs/vllm.md.
    top_k: int | None = Field(default=40, ge=0, description="Top-k cut-off (0 = off); not an OpenAI field.")
    min_p: float | None = Field(default=0.05, ge=0, le=1, description="Min-p cut-off; not an OpenAI field.")
    repetition_penalty: float | None = Field(
        default=1.0,
        gt=0,
        description="Sent as repetition_penalty (vLLM) and repeat_penalty (llama.cpp, whose Python server "
        "defaults to 1.1); 1.0 = off, which suits JSON answers.",
    )
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2, description="OpenAI frequency penalty.")
    presence_penalty: float = Field(default=0.0, ge=-2, le=2, description="OpenAI presence penalty.")
    max_tokens: int = Field(default=512, ge=1, description="Most tokens one answer may have.")
    response_format: ResponseFormat = Field(
        default="auto",
        description="'json_schema' (OpenAI, vLLM, llama-server), 'json_object' with schema (llama-cpp-python), "
        "or 'auto' (try json_schema, fall back once).",
    )
    chat_template_kwargs: dict[str, Any] | None = Field(
        default=None, description="Sent as extra_body (e.g. {'enable_thinking': False} for Qwen3 on vLLM)."
    )


class RoleOverride(BaseModel):
    """Per-role settings; unset fields fall back to the env-wide ones."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | list[str] | None = None
    model: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    timeout: float | None = None
    max_retries: int | None = None
    max_repairs: int | None = None
    concurrency: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    max_tokens: int | None = None
    response_format: ResponseFormat | None = None
    chat_template_kwargs: dict[str, Any] | None = None


# Role-specific defaults: the judge is deterministic, the task generator needs room (and a repetition penalty).
ROLE_DEFAULTS: dict[Role, dict[str, Any]] = {
    # Its long free-text fields run away to max_tokens without a repetition penalty on SmolLM2 (3 of 9 answers
    # against 0 of 6 with 1.1; docs/vllm.md, "Sampling").
    Role.TASK_GENERATOR: {"max_tokens": 1024, "temperature": 0.8, "repetition_penalty": 1.1},
    Role.USER: {"max_tokens": 200, "temperature": 0.7},
    Role.TOOL: {"max_tokens": 512, "temperature": 0.3},
    Role.JUDGE: {"max_tokens": 400, "temperature": 0.0},
    Role.POLICY: {"max_tokens": 300, "temperature": 0.7},
}
_ENDPOINT_FIELDS = tuple(RoleOverride.model_fields)


class _MemoEnvSource(PydanticBaseSettingsSource):
    """pydantic-settings' environment source, evaluated once per distinct set of ``TRUSTEE_*`` variables.

    Evaluating it walks every field's annotation (~2 ms): most of what building an env cost.
    """

    _memo: ClassVar[dict[tuple[tuple[str, str], ...], dict[str, Any]]] = {}

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        key = tuple(sorted((k, v) for k, v in os.environ.items() if k[:8].upper() == "TRUSTEE_"))
        values = self._memo.get(key)
        if values is None:
            if len(self._memo) > 64:
                self._memo.clear()
            values = self._memo[key] = self.inner()
        return copy.deepcopy(values)


class TrusteeConfig(BaseSettings):
    """All settings of a Trustee environment.

    Every field can be passed as a keyword argument to ``gym.make("Trustee-v0", ...)`` or set
    as ``TRUSTEE_<FIELD>``; role overrides (``task_generator``, ``user``, ``tool``, ``judge``,
    ``policy``) also read ``TRUSTEE_<ROLE>_<FIELD>``.
    """

    model_config = SettingsConfigDict(env_prefix="TRUSTEE_", extra="forbid", validate_default=True)

    # Env-wide endpoint defaults.
    base_url: str | list[str] | None = Field(
        default=None, description="Endpoint for every role; None starts (or reuses) the embedded local server."
    )
    model: str | None = None
    api_key: str = Field(
        default="EMPTY", repr=False, description="API key sent as a bearer token (local servers ignore it)."
    )
    timeout: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    max_repairs: int = Field(default=2, ge=0)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1)
    response_format: ResponseFormat = "auto"
    chat_template_kwargs: dict[str, Any] | None = None

    task_generator: RoleOverride = Field(default_factory=RoleOverride)
    user: RoleOverride = Field(default_factory=RoleOverride)
    tool: RoleOverride = Field(default_factory=RoleOverride)
    judge: RoleOverride = Field(default_factory=RoleOverride)
    policy: RoleOverride = Field(default_factory=RoleOverride)

    # Episode options.
    difficulty: float = Field(default=30.0, ge=1, le=100, description="Difficulty D in [1, 100].")
    aspects: dict[str, Any] | None = Field(default=None, description="Pinned difficulty aspects (see Aspects).")
    tool_format: ToolFormat = Field(
        default="native", description="How the policy writes tool calls; non-native formats add instructions."
    )
    reward_mode: Literal["ternary", "graded", "checks"] = Field(
        default="ternary",
        description="'ternary': judge verdict in {-1, 0, 1} capped by the checks; 'graded': weighted criteria "
        "scores under the same caps; 'checks': the deterministic checks alone, no judge call (fast and "
        "reproducible, for training on a CPU).",
    )
    max_steps: int | None = Field(default=None, ge=1, description="Policy messages per episode; None derives it.")
    max_tool_calls: int | None = Field(default=None, ge=1, description="Tool calls per episode; None derives it.")
    max_message_chars: int = Field(
        default=200_000,
        ge=1,
        description="Longest agent message read (content plus native tool-call arguments); a longer one is not "
        "parsed, and the agent is told the cap.",
    )
    max_calls_per_step: int = Field(
        default=64, ge=1, description="Tool calls read from one agent message; the rest are answered 'not run'."
    )
    catalog: str | None = Field(default=None, description="Path to a tool catalog; None uses the bundled one.")
    ungrounded_arguments: Literal["ground", "reject", "relax"] = Field(
        default="ground",
        description="An expected exact/normalized argument the user could not know: add it to the user's facts "
        "('ground'), send the task back for repair ('reject'), or relax its matcher to 'any' ('relax').",
    )
    task_require_records: bool = Field(
        default=True,
        description="Task gate: an expected call to a read-only tool must name records (ids, numbers, codes) that "
        "exist in the task's initial world state.",
    )
    task_dedup_window: int = Field(
        default=0,
        ge=0,
        description="Task gate: regenerate a task that nearly duplicates one of the last N accepted (0 = off; "
        "on, a seed's task depends on earlier tasks, so it replays only from the cache). The rate is always measured.",
    )
    user_goal_gate: bool = Field(
        default=True,
        description="Bound the simulated user's stop decision by deterministic progress: it cannot give up once "
        "every expected call succeeded, nor be satisfied while one is missing. Off: the user LM decides alone.",
    )
    task_attempts: int = Field(default=3, ge=1, description="Fresh task generations before a task sim_fault.")
    prompt_dir: str | None = Field(
        default=None,
        description="Folder of prompt templates searched before the bundled ones (override e.g. judge.j2 only).",
    )

    # Record/replay and trajectories.
    cache_path: str | None = Field(default=None, description="sqlite file of the record/replay cache.")
    cache_mode: CacheMode = Field(
        default="off", description="'read_write' records and serves; 'replay_only' serves and fails on a miss."
    )
    trajectory_path: str | None = Field(default=None, description="JSONL file; every finished episode is appended.")
    raise_on_sim_fault: bool = Field(
        default=False, description="Raise the LLMError instead of labelling the episode with info['sim_fault']."
    )

    # Embedded server (used only when base_url is None).
    server_engine: Literal["auto", "llama-server", "llama-cpp-python", "vllm"] = Field(
        default="auto",
        description="Engine of the embedded server; 'auto': llama-server on PATH, else llama-cpp-python.",
    )
    server_parallel: int = Field(default=1, ge=1, description="Slots of the embedded server.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then ``TRUSTEE_*`` variables (no .env or secrets files are configured)."""
        return init_settings, _MemoEnvSource(settings_cls, env_settings)

    @model_validator(mode="before")
    @classmethod
    def _role_env_overrides(cls, data: Any) -> Any:
        """Read TRUSTEE_<ROLE>_<FIELD> for role fields not given as keyword arguments."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for role in Role:
            given = data.get(role.value)
            given = dict(given) if isinstance(given, dict) else (given.model_dump(exclude_none=True) if given else {})
            for field in _ENDPOINT_FIELDS:
                env_value = os.environ.get(f"TRUSTEE_{role.value.upper()}_{field.upper()}")
                if env_value is not None and field not in given:
                    given[field] = env_value
            data[role.value] = given
        return data

    @field_validator("prompt_dir")
    @classmethod
    def _prompt_dir_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError(f"prompt_dir {value!r} is not a directory")
        return None if value is None else str(Path(value).resolve())  # templates load relative to no cwd

    @model_validator(mode="after")
    def _cache_needs_a_path(self) -> TrusteeConfig:
        if self.cache_mode != "off" and not self.cache_path:
            raise ValueError(f"cache_mode={self.cache_mode!r} needs cache_path (a sqlite file to read and write)")
        return self

    def endpoint(self, role: Role | str) -> EndpointConfig:
        """The resolved endpoint of one role: role override > env-wide setting > role default."""
        role = Role(role)
        override: RoleOverride = getattr(self, role.value)
        values: dict[str, Any] = {}
        for field in _ENDPOINT_FIELDS:
            role_value = getattr(override, field)
            if role_value is not None:
                values[field] = role_value
            elif field in ROLE_DEFAULTS[role]:
                values[field] = ROLE_DEFAULTS[role][field]
            elif field in type(self).model_fields:
                values[field] = getattr(self, field)
        return EndpointConfig(**values)


def make_config(config: TrusteeConfig | None = None, **kwargs: Any) -> TrusteeConfig:
    """Build a config from keyword arguments, turning validation errors into one clear ConfigError."""
    if config is not None:
        if not kwargs:
            return config
        merged = config.model_dump(exclude_unset=True)
        merged.update(kwargs)
        kwargs = merged
    try:
        return TrusteeConfig(**kwargs)
    except ValidationError as err:
        lines = []
        for error in err.errors():
            loc = ".".join(str(part) for part in error["loc"]) or "config"
            if error["type"] == "extra_forbidden":
                top_level = len(error["loc"]) == 1
                own = list(TrusteeConfig.model_fields) if top_level else list(_ENDPOINT_FIELDS)
                close = difflib.get_close_matches(str(error["loc"][-1]), own + list(_ENDPOINT_FIELDS), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                if close and close[0] not in own:  # e.g. temperature: a per-role setting only
                    hint = (
                        f" {close[0]!r} is a per-role setting: pass it inside a role, e.g. judge={{{close[0]!r}: ...}}."
                    )
                lines.append(f"unknown option {loc!r}.{hint}")
            else:
                got = error.get("input")
                # A model-level error's input is every setting given, API keys included: never echo it.
                secret = isinstance(got, dict) or (error["loc"] and error["loc"][-1] == "api_key")
                lines.append(f"{loc}: {error['msg']}" + ("" if secret else f" (got {got!r})"))
        raise ConfigError("invalid Trustee configuration: " + "; ".join(lines)) from None
