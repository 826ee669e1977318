"""Re-scoring recorded trajectories with another judge (model, prompt, strictness or reward mode).

A JSONL record holds everything the judge needs: the task, the transcript the simulators saw, every
call with its result, and how the episode ended. The deterministic checks are recomputed from the
calls, so a new judge is capped exactly as the original one was.

Example:
    >>> from trustee_env.rescore import rescore
    >>> from trustee_env.trajectory import read_trajectories
    >>> for record in read_trajectories("runs/train.jsonl"):  # doctest: +SKIP
    ...     verdict = rescore(record, base_url="http://127.0.0.1:8000/v1", judge={"model": "Qwen/Qwen3-32B"})
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from trustee_env._portal import portal
from trustee_env.checks import run_checks
from trustee_env.config import TrusteeConfig, make_config
from trustee_env.errors import ConfigError
from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.roles.judge import Judge, Verdict
from trustee_env.schemas import Role, derive_seed
from trustee_env.trajectory import Trajectory

__all__ = ["arescore", "rescore"]


async def arescore(
    record: Trajectory | dict[str, Any],
    *,
    config: TrusteeConfig | None = None,
    usage: Usage | None = None,
    **kwargs: Any,
) -> Verdict:
    """Judge a recorded trajectory again; ``kwargs`` configure the judge (``judge={...}``, ``reward_mode``...)."""
    if not isinstance(record, Trajectory):
        try:
            record = Trajectory.model_validate(record)
        except ValidationError as err:
            raise ConfigError(
                f"not a trajectory record: {err.errors()[0]['msg']} at {err.errors()[0]['loc']}"
            ) from None
    if record.task is None or record.sim_fault is not None:
        raise ConfigError("this trajectory ended in a simulator fault before judging; there is nothing to re-score")
    cfg = make_config(config, **kwargs)
    checks = run_checks(
        record.task, record.calls, record.parse_errors, user_gave_up=record.termination == "user_gave_up"
    )
    judge = Judge(LLMClient(Role.JUDGE.value, cfg.endpoint(Role.JUDGE)), mode=cfg.reward_mode)
    truncated = record.termination not in ("user_satisfied", "user_gave_up")
    seed = derive_seed(record.seed, record.member, Role.JUDGE.value, "rescore")
    return await judge.score(
        record.task, list(record.transcript), checks, truncated=truncated, seed=seed, usage=usage or Usage()
    )


def rescore(record: Trajectory | dict[str, Any], *, config: TrusteeConfig | None = None, **kwargs: Any) -> Verdict:
    """Synchronous :func:`arescore` (works inside a running event loop too)."""
    return portal().run(lambda: arescore(record, config=config, **kwargs))
