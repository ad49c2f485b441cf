"""Container log files and reading them the way ``kubectl logs`` asks.

A container run writes to ``<pod dir>/<container>/<restartCount>.log`` (the
process's stdout and stderr, appended by the kernel). Next to it,
``<restartCount>.log.idx`` records when the agent saw the file grow: lines of
``<size> <unix time>``. A line's timestamp is the first moment the agent saw the
file reach the line's end — accurate to the indexing period (1 s by
default, ``log_index_period``), and, for output written while the agent was down, the moment it came
back. ``timestamps`` and ``sinceSeconds`` use these times.

``previous`` reads the run before the current one (``restartCount - 1``).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


def log_path(container_dir: Path, restart_count: int) -> Path:
    return container_dir / f"{restart_count}.log"


class LogIndexer:
    """Appends ``size time`` records to a log's index when the log grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index_path = path.with_name(path.name + ".idx")
        self._size = 0
        try:
            records = self.index_path.read_text().split()
            if records:
                self._size = int(records[-2])
        except (OSError, ValueError, IndexError):
            self._size = 0

    def poll(self, now: float | None = None) -> bool:
        """Record the current size if it grew; True when it did."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return False
        if size <= self._size:
            return False
        self._size = size
        with open(self.index_path, "a") as index:
            index.write(f"{size} {now if now is not None else time.time():.6f}\n")
        return True


def _load_index(path: Path) -> tuple[list[int], list[float]]:
    sizes: list[int] = []
    times: list[float] = []
    try:
        text = path.with_name(path.name + ".idx").read_text()
    except OSError:
        return sizes, times
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                sizes.append(int(parts[0]))
                times.append(float(parts[1]))
            except ValueError:
                continue
    return sizes, times


@dataclass(frozen=True)
class LogLine:
    data: bytes  # including its trailing newline when it has one
    time: float


def read_lines(path: Path, start: int = 0) -> tuple[list[LogLine], int]:
    """Complete lines from byte ``start``; returns them and the offset after the last one."""
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            data = handle.read()
    except OSError:
        return [], start
    sizes, times = _load_index(path)
    now = time.time()
    lines: list[LogLine] = []
    offset = start
    for chunk in data.splitlines(keepends=True):
        if not chunk.endswith(b"\n"):
            break
        end = offset + len(chunk)
        position = bisect.bisect_left(sizes, end)
        stamp = times[position] if position < len(times) else now
        lines.append(LogLine(chunk, stamp))
        offset = end
    return lines, offset


def read_tail(path: Path) -> bytes:
    """Bytes after the last newline (an unfinished last line)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return b""
    cut = data.rfind(b"\n")
    return data[cut + 1:]


def format_line(line: LogLine, timestamps: bool) -> bytes:
    if not timestamps:
        return line.data
    moment = datetime.fromtimestamp(line.time, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.encode() + b" " + line.data


def select(lines: list[LogLine], *, tail_lines: int | None, since_seconds: float | None,
           now: float | None = None) -> list[LogLine]:
    if since_seconds is not None:
        cutoff = (now if now is not None else time.time()) - since_seconds
        lines = [line for line in lines if line.time >= cutoff]
    if tail_lines is not None:
        lines = lines[-tail_lines:] if tail_lines > 0 else []
    return lines


async def stream(path: Path, *, follow: bool, timestamps: bool, tail_lines: int | None,
                 since_seconds: float | None, still_running: Callable[[], bool],
                 poll_interval: float = 0.2,
                 sleep: Callable[[float], object] | None = None) -> AsyncIterator[bytes]:
    """The log as chunks; with ``follow`` it keeps going until the run ends."""
    import asyncio

    lines, offset = read_lines(path)
    for line in select(lines, tail_lines=tail_lines, since_seconds=since_seconds):
        yield format_line(line, timestamps)
    if not follow:
        tail = read_tail(path)
        if tail:
            yield tail if not timestamps else format_line(LogLine(tail, time.time()), True)
        return
    while True:
        running = still_running()
        more, offset = read_lines(path, offset)
        for line in more:
            yield format_line(line, timestamps)
        if not running and not more:
            tail = read_tail(path)
            if tail:
                yield tail
            return
        await asyncio.sleep(poll_interval)
