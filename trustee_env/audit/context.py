"""What every audit section shares: the configured roles, one usage ledger, and fault counts per role."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from trustee_env.catalog import Catalog
from trustee_env.config import TrusteeConfig
from trustee_env.episode import Roles
from trustee_env.errors import LLMError
from trustee_env.llm.cache import ResponseCache
from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.schemas import Role

__all__ = ["AuditContext"]

T = TypeVar("T")


@dataclass
class AuditContext:
    """The configured simulators under audit, and what their calls cost and how often they failed.

    A probe call goes through :meth:`guard`: a simulator failure after its retries (an ``LLMError``) is
    counted against its role as a sim fault and the probe is skipped, exactly as an episode would be.
    """

    config: TrusteeConfig
    roles: Roles
    catalog: Catalog
    cache: ResponseCache | None = None
    usage: Usage = field(default_factory=Usage)
    faults: Counter[str] = field(default_factory=Counter)
    fault_reasons: Counter[str] = field(default_factory=Counter)

    async def guard(self, role: Role, call: Awaitable[T]) -> T | None:
        """The call's value, or None after counting its failure as a sim fault of ``role``."""
        try:
            return await call
        except LLMError as err:
            self.faults[role.value] += 1
            self.fault_reasons[f"{role.value}: {err.reason}"] += 1
            return None

    def client(self, role: Role, **overrides: Any) -> LLMClient:
        """A client for ``role`` on its configured endpoint, with sampling overrides (e.g. a temperature)."""
        endpoint = self.config.endpoint(role)
        if overrides:
            endpoint = endpoint.model_copy(update=overrides)
        return LLMClient(role.value, endpoint, cache=self.cache, prompt_dir=self.config.prompt_dir)

    def fault_table(self) -> dict[str, dict[str, Any]]:
        """Per role: LM calls, sim faults, their rate, repairs (answers that needed a re-ask)."""
        table: dict[str, dict[str, Any]] = {}
        for role in (Role.TASK_GENERATOR, Role.USER, Role.TOOL, Role.JUDGE):
            entry = self.usage.roles.get(role.value)
            calls = entry.calls if entry else 0
            faults = self.faults.get(role.value, 0)
            table[role.value] = {
                "calls": calls,
                "sim_faults": faults,
                "sim_fault_rate": round(faults / calls, 4) if calls else None,
                "repairs": entry.repairs if entry else 0,
                "cache_hits": entry.cache_hits if entry else 0,
            }
        return table
