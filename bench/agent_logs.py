"""Container log reads stay bounded: ``kubectl logs --tail=1`` of a 1 GiB log.

Writes a real 1 GiB container log (64-byte lines, 4 MiB writes) with its index in a temp
dir, then reads it the way the agent's ``/containerLogs`` endpoint does
(:func:`corral.agent.logs.stream`):

- ``tail1_ms`` / ``tail1_peak_kib``: ``tailLines=1`` — time and peak Python allocation
  (tracemalloc); ``rss_delta_mib``: the process's resident-set growth over the reads;
- ``limit_1mib_ms``: ``limitBytes=1048576`` from the start;
- ``tail1000_ts_ms``: ``tailLines=1000&timestamps=true``;
- ``rotate_10mib_ms``: one copytruncate rotation of a 10 MiB log (kubelet's default
  ``containerLogMaxSize``), the agent's cost per rotation.

Prints one JSON line. ``BENCH_LOG_MIB`` (default 1024) sets the log size.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from corral.agent import logs

MiB = 1024 * 1024


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _write(path: Path, mib: int) -> None:
    block = (b"x" * 63 + b"\n") * (4 * MiB // 64)
    with open(path, "wb") as handle:
        for _ in range(mib // 4):
            handle.write(block)
        handle.write(b"the last line\n")


async def _timed(path: Path, **query: Any) -> tuple[float, int, int]:
    params: dict[str, Any] = {"follow": False, "timestamps": False, "tail_lines": None, "since_seconds": None,
                              "still_running": lambda: False, **query}
    tracemalloc.start()
    started = time.perf_counter()
    size = 0
    async for chunk in logs.stream(path, **params):
        size += len(chunk)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed * 1000, peak, size


async def main() -> None:
    mib = int(os.environ.get("BENCH_LOG_MIB", "1024"))
    directory = Path(tempfile.mkdtemp(prefix="corral-bench-logs-"))
    try:
        path = directory / "0.log"
        started = time.perf_counter()
        _write(path, mib)
        write_s = time.perf_counter() - started
        logs.LogIndexer(path).poll()
        rss_before = _rss_mib()
        tail_ms, tail_peak, tail_size = await _timed(path, tail_lines=1)
        limit_ms, _, limit_size = await _timed(path, limit_bytes=MiB)
        ts_ms, ts_peak, _ = await _timed(path, tail_lines=1000, timestamps=True)
        rss_delta = _rss_mib() - rss_before
        small = directory / "1.log"
        _write(small, 10)
        started = time.perf_counter()
        logs.LogIndexer(small, max_size=10 * MiB).rotate()
        rotate_ms = (time.perf_counter() - started) * 1000
        assert tail_size == len(b"the last line\n") and limit_size == MiB
        print(json.dumps({"bench": "agent_logs", "log_mib": mib, "write_s": round(write_s, 2),
                          "tail1_ms": round(tail_ms, 2), "tail1_peak_kib": round(tail_peak / 1024, 1),
                          "limit_1mib_ms": round(limit_ms, 2), "tail1000_ts_ms": round(ts_ms, 2),
                          "tail1000_ts_peak_kib": round(ts_peak / 1024, 1),
                          "rss_delta_mib": round(rss_delta, 1), "rotate_10mib_ms": round(rotate_ms, 1)}))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
