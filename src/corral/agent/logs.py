"""Container log files: indexing, rotation, and reading them the way ``kubectl logs`` asks.

A container run writes to ``<pod dir>/<container>/<restartCount>.log`` (the process's
stdout and stderr, appended by the kernel through an ``O_APPEND`` descriptor, so logs keep
flowing while the agent restarts). Next to it, ``<restartCount>.log.idx`` records when
the agent saw the file grow: lines of ``<size> <unix time>``. A line's timestamp is the
first moment the agent saw the file reach the line's end — accurate to the indexing
period (1 s by default, ``log_index_period``), and, for output written while the agent
was down, the moment it came back. ``timestamps`` and ``sinceSeconds`` use these times.

**Rotation** (kubelet's ``containerLogMaxSize``/``containerLogMaxFiles``, 10 MiB and 5 by
default). The process owns its descriptor, so the file cannot be renamed under it:
when the indexer sees the file at ``max_size`` or more, it copies it to
``<restartCount>.log.<n>`` (``n`` = 1, 2, … in order; its index moves along to
``….log.<n>.idx``) and truncates the original to zero — *copytruncate*; the writer's
next append lands at offset 0. Bytes written between the end of the copy and the
truncation (microseconds) are lost, as with logrotate's copytruncate. At most
``max_files - 1`` rotated files are kept; the oldest go. A file can exceed ``max_size``
by what the container writes within one indexing period.

**Reading** never loads a file: a position is a :class:`Cursor` (the file's generation —
how many rotations came before it — and an offset). ``tailLines`` scans backwards from
the end in 64 KiB blocks, across rotated files if needed; ``sinceSeconds`` bisects the
index; both then stream forwards in 1 MiB blocks. ``limitBytes`` cuts the output (the
timestamps included, as the kubelet counts it). Between two blocks the reader checks
the generation again, so a rotation in the middle of a read or a ``follow`` continues
in the rotated copy and then in the new file, without a gap or a repeat.

``previous`` reads the run before the current one (``restartCount - 1``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import shutil
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from corral.util.podlogs import newline_before

READ_BLOCK = 1024 * 1024


def log_path(container_dir: Path, restart_count: int) -> Path:
    return container_dir / f"{restart_count}.log"


def index_path(path: Path) -> Path:
    return path.with_name(path.name + ".idx")


def rotated_files(path: Path) -> list[tuple[int, Path]]:
    """``(n, path.n)`` of the rotated copies of ``path``, oldest (lowest ``n``) first."""
    prefix = path.name + "."
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    found = [(int(name[len(prefix):]), path.parent / name) for name in names
             if name.startswith(prefix) and name[len(prefix):].isdigit()]
    return sorted(found)


def generation(path: Path) -> int:
    """How many times ``path`` has been rotated."""
    rotated = rotated_files(path)
    return rotated[-1][0] if rotated else 0


def generation_file(path: Path, gen: int, current: int) -> Path:
    """The file holding generation ``gen``: the live file, or the copy the next rotation made."""
    return path if gen >= current else path.with_name(f"{path.name}.{gen + 1}")


class LogIndexer:
    """Appends ``size time`` records to a log's index when it grows, and rotates it."""

    def __init__(self, path: Path, max_size: int | None = None, max_files: int = 5) -> None:
        self.path = path
        self.index_path = index_path(path)
        self.max_size = max_size
        self.max_files = max_files
        self._size = 0
        try:
            records = self.index_path.read_text().split()
            if records:
                self._size = int(records[-2])
        except (OSError, ValueError, IndexError):
            self._size = 0

    def poll(self, now: float | None = None) -> bool:
        """Record the current size if it grew (True when it did); rotate when it is too big."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return False
        moment = now if now is not None else time.time()
        grew = size > self._size
        if grew:
            self._size = size
            with open(self.index_path, "a") as index:
                index.write(f"{size} {moment:.6f}\n")
        if self.max_size is not None and size >= self.max_size:
            self.rotate(moment)
        return grew

    def rotate(self, now: float | None = None) -> Path:
        """Copy the log to its next rotated name and truncate it (see the module docstring)."""
        moment = now if now is not None else time.time()
        rotated = rotated_files(self.path)
        target = self.path.with_name(f"{self.path.name}.{(rotated[-1][0] if rotated else 0) + 1}")
        with open(self.path, "r+b") as source, open(target, "wb") as copy:
            shutil.copyfileobj(source, copy, READ_BLOCK)
            os.ftruncate(source.fileno(), 0)  # at once: what is written in between is lost
        size = target.stat().st_size
        with open(self.index_path, "a") as index:
            index.write(f"{size} {moment:.6f}\n")  # the copy's index covers all of it
        os.replace(self.index_path, index_path(target))
        self._size = 0
        rotated.append((0, target))
        for _, old in rotated[:max(0, len(rotated) - max(self.max_files - 1, 0))]:
            for stale in (old, index_path(old)):
                with contextlib.suppress(OSError):
                    stale.unlink()
        return target


def _load_index(path: Path) -> tuple[list[int], list[float]]:
    sizes: list[int] = []
    times: list[float] = []
    try:
        text = index_path(path).read_text()
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


@dataclass(order=True)
class Cursor:
    """A position in a log: the file of rotation generation ``generation``, byte ``offset``."""

    generation: int
    offset: int


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def tail_cursor(path: Path, lines: int) -> Cursor:
    """Where the last ``lines`` complete lines begin (then comes any unfinished line)."""
    current = generation(path)
    rotated = rotated_files(path)
    oldest = rotated[0][0] - 1 if rotated else current
    needed = lines + 1  # the newline that ends the line before them
    for gen in range(current, oldest - 1, -1):
        file = generation_file(path, gen, current)
        found, needed = newline_before(file, _file_size(file), needed)
        if found >= 0:
            return Cursor(gen, found)
    return Cursor(oldest, 0)


def since_cursor(path: Path, cutoff: float) -> Cursor:
    """Where the first line the agent saw completed at or after ``cutoff`` begins."""
    current = generation(path)
    for gen in [n - 1 for n, _ in rotated_files(path)] + [current]:
        file = generation_file(path, gen, current)
        sizes, times = _load_index(file)
        first = bisect.bisect_left(times, cutoff)
        if first == len(times) and gen != current:
            continue  # a rotated file is indexed to its end: all of it is older
        boundary = sizes[first - 1] if first > 0 else 0
        found, _ = newline_before(file, boundary, 1)
        return Cursor(gen, max(found, 0))
    return Cursor(current, 0)


def start_cursor(path: Path, *, tail_lines: int | None, since_seconds: float | None,
                 now: float | None = None) -> Cursor:
    rotated = rotated_files(path)
    cursor = Cursor(rotated[0][0] - 1 if rotated else 0, 0)
    if tail_lines is not None:
        cursor = max(cursor, tail_cursor(path, tail_lines))
    if since_seconds is not None:
        cursor = max(cursor, since_cursor(path, (now if now is not None else time.time()) - since_seconds))
    return cursor


def read_chunks(path: Path, cursor: Cursor, *, complete_lines: bool) -> Iterator[tuple[bytes, Path, int]]:
    """``(data, file, offset)`` blocks from ``cursor`` on (advancing it), across rotations; with
    ``complete_lines`` the live file is read only up to its last newline."""
    while True:
        current = generation(path)
        cursor.generation = min(max(cursor.generation, 0), current)
        file = generation_file(path, cursor.generation, current)
        try:
            with open(file, "rb") as handle:
                handle.seek(cursor.offset)
                data = handle.read(READ_BLOCK)
        except OSError:
            data = b""
        if cursor.generation < current:  # a rotated copy: final, read it all, then the next
            if data:
                yield data, file, cursor.offset
                cursor.offset += len(data)
            else:
                cursor.generation, cursor.offset = cursor.generation + 1, 0
            continue
        if complete_lines and len(data) < READ_BLOCK:  # (a longer line is given as it comes)
            data = data[:data.rfind(b"\n") + 1]
        if not data:
            return
        yield data, file, cursor.offset
        cursor.offset += len(data)


def _split_lines(data: bytes) -> list[bytes]:
    """Pieces ending in ``\n`` (and an unfinished last one); a ``\r`` does not end a line."""
    pieces = [line + b"\n" for line in data.split(b"\n")]
    pieces[-1] = pieces[-1][:-1]
    return pieces if pieces[-1] else pieces[:-1]


class _Stamper:
    """Prefixes each line with the time the agent saw it completed (``timestamps=true``)."""

    def __init__(self) -> None:
        self._indexes: dict[Path, tuple[list[int], list[float]]] = {}
        self._line_start = True

    def __call__(self, data: bytes, file: Path, offset: int) -> bytes:
        out = []
        position = offset
        for piece in _split_lines(data):
            position += len(piece)
            if self._line_start:
                out.append(self._stamp(file, position))
            out.append(piece)
            self._line_start = piece.endswith(b"\n")
        return b"".join(out)

    def _stamp(self, file: Path, end: int) -> bytes:
        sizes, times = self._indexes.get(file, ([], []))
        if not sizes or sizes[-1] < end:  # the live file's index grows: reload it
            sizes, times = self._indexes[file] = _load_index(file)
        position = bisect.bisect_left(sizes, end)
        moment = times[position] if position < len(times) else time.time()
        return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ ").encode()


async def stream(path: Path, *, follow: bool, timestamps: bool, tail_lines: int | None,
                 since_seconds: float | None, still_running: Callable[[], bool],
                 limit_bytes: int | None = None, poll_interval: float = 0.2) -> AsyncIterator[bytes]:
    """The log as chunks; with ``follow`` it keeps going until the run ends."""
    chunks = _stream(path, follow=follow, timestamps=timestamps, tail_lines=tail_lines,
                     since_seconds=since_seconds, still_running=still_running, poll_interval=poll_interval)
    if limit_bytes is None:
        async for chunk in chunks:
            yield chunk
        return
    left = limit_bytes
    try:
        async for chunk in chunks:
            yield chunk[:left]
            left -= len(chunk)
            if left <= 0:
                return
    finally:
        await chunks.aclose()


async def _stream(path: Path, *, follow: bool, timestamps: bool, tail_lines: int | None,
                  since_seconds: float | None, still_running: Callable[[], bool],
                  poll_interval: float) -> AsyncGenerator[bytes, None]:
    cursor = start_cursor(path, tail_lines=tail_lines, since_seconds=since_seconds)
    stamper = _Stamper() if timestamps else None

    def out(data: bytes, file: Path, offset: int) -> bytes:
        return stamper(data, file, offset) if stamper is not None else data

    for data, file, offset in read_chunks(path, cursor, complete_lines=follow):
        yield out(data, file, offset)
    if not follow:
        return
    while True:
        running = still_running()
        more = False
        for data, file, offset in read_chunks(path, cursor, complete_lines=True):
            more = True
            yield out(data, file, offset)
        if not running and not more:
            for data, file, offset in read_chunks(path, cursor, complete_lines=False):
                yield out(data, file, offset)  # the unfinished last line
            return
        await asyncio.sleep(poll_interval)
