"""``benchmarks/bench_env.py --sections steady_1s`` measures what it says: every client really keeps slots busy
and the server's own count is what the figures are made of (sizes only, never speed)."""

from __future__ import annotations

from types import ModuleType

from script_modules import ROOT, load_script


def _bench_env() -> ModuleType:
    return load_script(ROOT / "benchmarks" / "bench_env.py")


def test_steady_section_counts_the_server_answers_of_every_client() -> None:
    bench = _bench_env()
    result = bench.bench_steady(8, latency=0.2, window=1.0, warmup=0.5, repeat=1)
    assert result["slots"] == 8 and len(result["runs"]) == 1
    for who in ("trustee", "bare_sdk_httpx", "bare_sdk_aiohttp"):
        figures = result[who]
        # 8 slots at 0.2 s per call answer at most 40 calls/s (plus a rounding margin); each client sent some.
        assert 0 < figures["calls_per_s"] <= 8 / 0.2 * 1.1, (who, figures)
        assert 0 < figures["fraction_of_ideal"] <= 1.1, (who, figures)
        assert figures["cpu_ms_per_call"] > 0, (who, figures)


def test_episode_chains_keep_each_episode_in_order() -> None:
    bench = _bench_env()
    sent = [
        ("task_generator", {"model": "m-0", "n": 0}),
        ("task_generator", {"model": "m-1", "n": 1}),
        ("user", {"model": "m-0", "n": 2}),
        ("judge", {"model": "m-0", "n": 3}),
    ]
    chains = bench.episode_chains(sent)
    assert [[body["n"] for _, body in chain] for chain in chains] == [[0, 2, 3], [1]]
