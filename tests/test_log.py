"""The ``trustee_env`` logger: quiet by default, TRUSTEE_LOG_LEVEL, rate-limited fault and repair warnings."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import gymnasium as gym
import pytest

from trustee_env import log
from trustee_env.testing import FakeLLMServer, Reply, ScriptedSimulator


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "TRUSTEE_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**clean, **env}
    )


LOGS = "import trustee_env, logging; lg = logging.getLogger('trustee_env'); lg.warning('loud'); lg.info('detail')"


def test_quiet_by_default() -> None:
    proc = _python(LOGS)
    assert proc.returncode == 0 and proc.stderr == ""


def test_trustee_log_level_is_honoured() -> None:
    proc = _python(LOGS, TRUSTEE_LOG_LEVEL="INFO")
    assert proc.stderr.splitlines() == ["WARNING trustee_env: loud", "INFO trustee_env: detail"]
    proc = _python(LOGS, TRUSTEE_LOG_LEVEL="warning")
    assert proc.stderr.splitlines() == ["WARNING trustee_env: loud"]


def test_a_bad_level_does_not_break_the_import() -> None:
    proc = _python(LOGS, TRUSTEE_LOG_LEVEL="LOUDEST")
    assert proc.returncode == 0
    assert "TRUSTEE_LOG_LEVEL: unknown log level 'LOUDEST'" in proc.stderr and "loud" in proc.stderr


def test_configured_restores_the_logger() -> None:
    before = (list(log.logger.handlers), log.logger.level, log.logger.propagate)
    with log.configured("DEBUG"):
        assert log.logger.level == logging.DEBUG and len(log.logger.handlers) == len(before[0]) + 1
    assert (list(log.logger.handlers), log.logger.level, log.logger.propagate) == before


def test_ten_thousand_faults_stay_readable(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = log.RateLimiter(first=5, interval_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="trustee_env"):
        for i in range(10_000):
            now[0] = i * 0.06  # 10,000 faults over 10 minutes
            role = ("tool", "user", "judge")[i % 3]
            limiter.log("sim_fault", f"{role}/invalid_output", logging.WARNING, "sim fault %d", i)
        limiter.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:5] == [f"sim fault {i}" for i in range(5)]
    summaries = [line for line in lines if "more sim_fault messages held back" in line]
    assert 9 <= len(summaries) <= 11 and len(lines) <= 5 + 1 + 11
    held = sum(int(line.split("trustee: ")[1].split()[0]) for line in summaries)
    assert held == 10_000 - 5  # every fault is counted, none lost
    assert "tool/invalid_output" in summaries[0] and "judge/invalid_output" in summaries[0]
    assert limiter.counts() == {"sim_fault": 10_000}


def test_nothing_is_counted_when_nobody_listens() -> None:
    limiter = log.RateLimiter(first=1)
    log.logger.setLevel(logging.ERROR)
    try:
        assert limiter.log("repair", "tool", logging.WARNING, "x") is False
        assert limiter.counts() == {}
    finally:
        log.logger.setLevel(logging.NOTSET)


def test_episodes_log_repairs_and_sim_faults(caplog: pytest.LogCaptureFixture) -> None:
    # the judge answers garbage (a repair round-trip), then a 400 (not retried: a sim fault)
    script = ScriptedSimulator(faults={"judge": [Reply(content="no json here"), Reply(content="bad", status=400)]})
    log.faults.reset()
    with FakeLLMServer(script) as server, caplog.at_level(logging.WARNING, logger="trustee_env"):
        env = gym.make("Trustee-v0", base_url=server.base_url)
        faults = []
        for seed in (0, 1):
            env.reset(seed=seed)
            done = False
            while not done:
                *_, terminated, truncated, info = env.step("Thanks, that is all.")
                done = terminated or truncated
            faults.append(info["sim_fault"])
        env.close()
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("trustee: repairing the judge's answer") for line in lines), lines
    assert any(line.startswith("trustee: sim fault (judge/http_status)") for line in lines), lines
    assert faults[0]["role"] == "judge" and faults[1] is None
