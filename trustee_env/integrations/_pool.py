"""Trustee envs shared per worker process by adapters whose trainer builds one object per trajectory."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from trustee_env.env import TrusteeToolEnv

__all__ = ["EnvPool"]


class EnvPool:
    """Idle :class:`~trustee_env.env.TrusteeToolEnv` objects, one pool per distinct ``env_kwargs``.

    verl builds an agent loop per trajectory and SkyRL an env per trajectory; an env holds one
    episode at a time, so reusing idle ones reuses their simulator clients and cache connections
    instead of opening new ones for every trajectory.
    """

    _pools: ClassVar[dict[str, list[TrusteeToolEnv]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def acquire(cls, env_kwargs: Mapping[str, Any]) -> tuple[str, TrusteeToolEnv]:
        """An idle env for these keywords (a new one if none is idle), and the key to release it under."""
        key = json.dumps(dict(env_kwargs), sort_keys=True, default=str)
        with cls._lock:
            idle = cls._pools.setdefault(key, [])
            if idle:
                return key, idle.pop()
        return key, TrusteeToolEnv(**env_kwargs)

    @classmethod
    def release(cls, key: str, env: TrusteeToolEnv) -> None:
        """Hand an env back once its episode is over."""
        with cls._lock:
            cls._pools.setdefault(key, []).append(env)
