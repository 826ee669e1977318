"""The embedded llama-cpp-python server keeps prompt states for prefix reuse (roles take turns)."""

from __future__ import annotations

import importlib.util

import pytest

from trustee_env.serve.local import ServerSpec, build_command

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs the local extra")


def _flag(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_prompt_cache_is_on_by_default_without_all_position_logits() -> None:
    cmd = build_command(ServerSpec(engine="llama-cpp-python"))
    assert _flag(cmd, "--cache") == "true" and _flag(cmd, "--cache_type") == "ram"
    assert int(_flag(cmd, "--cache_size") or 0) == ServerSpec().prompt_cache_mb * 2**20 > 0
    assert _flag(cmd, "--logits_all") == "false"  # else every saved state copies all prompt logits


def test_prompt_cache_can_be_turned_off() -> None:
    cmd = build_command(ServerSpec(engine="llama-cpp-python", prompt_cache_mb=0))
    assert "--cache" not in cmd and "--logits_all" not in cmd
