"""Container logs stay bounded: tails read from the end, limitBytes, rotation under a live writer.

A real 256 MiB log (the 1 GiB figure is measured by ``bench/agent_logs.py``) answers
``tailLines=1`` in well under half a second with about a megabyte allocated; a container
writing continuously under a 64 KiB ``containerLogMaxSize`` never has more than
``containerLogMaxFiles`` files, and ``follow`` sees every line across the rotations.
"""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.agent import logs
from corral.agent.worker import PodWorker, RuntimeConfig
from corral.util.clock import SystemClock

from .helpers import make_pod, py, wait_for

MiB = 1024 * 1024


async def _collect(path: Path, **query: Any) -> bytes:
    params: dict[str, Any] = {"follow": False, "timestamps": False, "tail_lines": None, "since_seconds": None,
                              "still_running": lambda: False, **query}
    return b"".join([chunk async for chunk in logs.stream(path, **params)])


def _write_big_log(path: Path, size: int) -> None:
    """``size`` bytes of real 64-byte lines (``line 0000000000 xxx…`` first), in 4 MiB writes."""
    block = (b"x" * 63 + b"\n") * (4 * MiB // 64)
    with open(path, "wb") as handle:
        handle.write(b"line 0000000000 " + block[16:])
        for _ in range(size // (4 * MiB) - 1):
            handle.write(block)
        handle.write(b"last complete line\n")


async def test_tail_and_limit_of_a_256_mib_log_are_fast_and_small(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    _write_big_log(path, 256 * MiB)
    indexer = logs.LogIndexer(path)
    indexer.poll(now=time.time() - 100)  # indexed long ago
    with open(path, "ab") as handle:
        handle.write(b"latest line\nunfinished")
    indexer.poll(now=time.time())
    tracemalloc.start()
    try:
        started = time.perf_counter()
        tail = await _collect(path, tail_lines=1)
        tail_seconds = time.perf_counter() - started
        _, tail_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        started = time.perf_counter()
        head = await _collect(path, limit_bytes=1000)
        limit_seconds = time.perf_counter() - started
        _, limit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        stamped = await _collect(path, tail_lines=2, timestamps=True)
        since = await _collect(path, since_seconds=50)
        _, since_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tail == b"latest line\nunfinished"
    assert tail_seconds < 0.5, f"tailLines=1 of 256 MiB took {tail_seconds:.2f} s"
    assert tail_peak < 2 * MiB, f"tailLines=1 allocated {tail_peak / MiB:.1f} MiB"
    assert len(head) == 1000 and head.startswith(b"line 0000000000 ")
    assert limit_seconds < 0.5 and limit_peak < 4 * MiB
    assert stamped.splitlines()[0].endswith(b"Z last complete line")
    assert stamped.splitlines()[1].endswith(b"Z latest line")
    assert since == b"latest line\nunfinished"
    assert since_peak < 4 * MiB, f"sinceSeconds allocated {since_peak / MiB:.1f} MiB"


async def test_reading_spans_rotated_files_in_order(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    indexer = logs.LogIndexer(path, max_size=10, max_files=3)
    written = []
    for n in range(20):
        with open(path, "ab") as handle:
            handle.write(b"%d\n" % n)
        written.append(b"%d\n" % n)
        indexer.poll(now=1000.0 + n)
    kept = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".idx"))
    assert kept == ["0.log", "0.log.3", "0.log.4"]  # at most max_files, the oldest gone
    everything = await _collect(path)
    assert everything == b"".join(written)[-len(everything):]  # the newest, in order, no gap
    assert await _collect(path, tail_lines=4) == b"".join(written[-4:])
    assert await _collect(path, tail_lines=2, limit_bytes=3) == b"".join(written[-2:])[:3]


async def test_rotation_bounds_a_live_writer_and_follow_sees_every_line(tmp_path: Path) -> None:
    max_size, max_files = 64 * 1024, 3
    config = RuntimeConfig(data_dir=tmp_path, node_name="node-a", log_index_period=0.05, log_max_size=max_size,
                           log_max_files=max_files, host_env=dict(os.environ))
    program = ("import sys, time\n"
               "end = time.monotonic() + 3\nn = 0\n"
               "while time.monotonic() < end:\n"
               "    sys.stdout.write('line %08d %s\\n' % (n, 'y' * 80)); sys.stdout.flush(); n += 1\n"
               "    time.sleep(0.0005)\n"
               "print('done', n, flush=True)\n")
    worker = PodWorker(make_pod("chatty", [py("main", program)]), "127.9.0.9", config, clock=SystemClock(),
                       on_change=lambda: None)
    worker.start()
    try:
        await wait_for(lambda: worker.container_running("main"), 10, what="the writer")
        path = worker.log_file("main")
        assert path is not None
        followed: list[bytes] = []

        async def follow() -> None:
            async for chunk in logs.stream(path, follow=True, timestamps=False, tail_lines=None,
                                           since_seconds=None, poll_interval=0.02,
                                           still_running=lambda: worker.container_running("main")):
                followed.append(chunk)

        follower = asyncio.create_task(follow())
        most_files, biggest = 0, 0
        while not worker.finished.is_set():
            files = [p for p in path.parent.iterdir() if p.name.startswith("0.log") and not p.name.endswith(".idx")]
            most_files = max(most_files, len(files))
            biggest = max([biggest] + [p.stat().st_size for p in files if p.exists() and p != path])
            await asyncio.sleep(0.01)
        await asyncio.wait_for(follower, 10)
    finally:
        await worker.terminate(grace=0)
    assert logs.generation(path) >= 3, "the log was not rotated while the container wrote"
    assert most_files <= max_files
    assert biggest <= 2 * max_size, f"a rotated file reached {biggest} bytes"
    text = b"".join(followed).decode().splitlines()
    assert text[-1].startswith("done ")
    total = int(text[-1].split()[1])
    numbers = [int(line.split()[1]) for line in text[:-1]]
    assert numbers == sorted(set(numbers)), "follow repeated or reordered lines across a rotation"
    assert numbers[-1] == total - 1 and len(numbers) >= total - 5 * logs.generation(path), \
        f"follow saw {len(numbers)} of {total} lines"


def _expected_tail(content: bytes, lines: int) -> bytes:
    cut = content.rfind(b"\n") + 1
    complete, unfinished = [line + b"\n" for line in content[:cut].split(b"\n")[:-1]], content[cut:]
    return b"".join(complete[max(0, len(complete) - lines):] if lines else []) + unfinished


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")).flatmap(
           lambda text: st.sampled_from([text, text + b"\n"])), max_size=40),
       max_size=st.integers(min_value=4, max_value=40), max_files=st.integers(min_value=2, max_value=4),
       tail=st.integers(min_value=0, max_value=12), limit=st.integers(min_value=1, max_value=200))
def test_reads_agree_with_the_kept_files_whatever_the_rotations(
        tmp_path_factory: pytest.TempPathFactory, writes: list[bytes], max_size: int, max_files: int, tail: int,
        limit: int) -> None:
    path = tmp_path_factory.mktemp("log") / "0.log"
    path.touch()
    indexer = logs.LogIndexer(path, max_size=max_size, max_files=max_files)
    for data in writes:
        with open(path, "ab") as handle:
            handle.write(data)
        indexer.poll()
    kept = [file for _, file in logs.rotated_files(path)] + [path]
    assert len(kept) <= max_files
    content = b"".join(file.read_bytes() for file in kept)
    assert asyncio.run(_collect(path)) == content
    assert asyncio.run(_collect(path, tail_lines=tail)) == _expected_tail(content, tail)
    assert asyncio.run(_collect(path, limit_bytes=limit)) == content[:limit]
    assert asyncio.run(_collect(path, tail_lines=tail, limit_bytes=limit)) == _expected_tail(content, tail)[:limit]


async def test_a_carriage_return_does_not_start_a_timestamped_line(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(b"progress 10%\rprogress 100%\ndone")
    logs.LogIndexer(path).poll(now=0.0)
    assert await _collect(path, timestamps=True) == (b"1970-01-01T00:00:00.000000Z progress 10%\rprogress 100%\n"
                                                     b"1970-01-01T00:00:00.000000Z done")
