"""How long does appending one finished trajectory hold the caller (the event loop)?

Compares ``append_trajectory`` (the line written at once, ``fsync`` on the writer thread) with the
same write followed by an ``fsync`` on the caller (what it did before), for ``--lines`` records of
the size of a real episode, on the folder given (default: a temporary one). Prints JSON: per-append
median and p99 in ms for both, and how long ``flush_trajectories`` then waited.

Usage: ``python benchmarks/bench_trajectory_write.py [--lines 300] [--dir /path/on/the/disk]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from trustee_env.trajectory import Trajectory, append_trajectory, flush_trajectories


def _sync_append(path: Path, line: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    record = Trajectory(seed=1, messages=[{"role": "user", "content": "x" * 4000}], transcript=["y" * 2000])
    line = (record.to_json_line() + "\n").encode()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        threaded, synced = [], []
        for index in range(args.lines):
            start = time.perf_counter()
            append_trajectory(Path(tmp) / "threaded.jsonl", record)
            threaded.append(time.perf_counter() - start)
            start = time.perf_counter()
            _sync_append(Path(tmp) / "synced.jsonl", line)
            synced.append(time.perf_counter() - start)
            if index % 50 == 0:
                time.sleep(0.01)
        start = time.perf_counter()
        flush_trajectories(timeout=60)
        flushed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "lines": args.lines,
                "line_bytes": len(line),
                "append_trajectory (fsync on the writer thread)": _stats(threaded),
                "write + fsync on the caller (before)": _stats(synced),
                "flush_trajectories_wait_ms": round(flushed * 1000, 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
