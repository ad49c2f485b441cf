"""Write the latest value per key, one write at a time per key.

Why: two decisions about the same object, written by two concurrent tasks, can reach the
server in either order — a pod's ``PodScheduled`` condition then shows the *older*
decision (say ``WaitingForMembers``, written for the first members of a gang) after the
newer one (``Unschedulable``, written for the whole gang). :class:`LatestWriter` keeps,
per key, only the value most recently asked for and at most one write in flight; when a
write ends and a newer value is waiting, it writes that one next. So the last value the
server gets for a key is always the last one :meth:`LatestWriter.submit`-ted, and stale
intermediate values are skipped rather than queued.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LatestWriter(Generic[K, V]):
    """Serialize ``write(key, value)`` per key; the latest submitted value wins.

    ``spawn`` starts a coroutine as a task the owner tracks (and cancels on stop).
    """

    def __init__(self, write: Callable[[K, V], Awaitable[None]], spawn: Callable[[Awaitable[None]], None]) -> None:
        self._write = write
        self._spawn = spawn
        self._wanted: dict[K, V] = {}
        self._writing: set[K] = set()

    def submit(self, key: K, value: V) -> None:
        self._wanted[key] = value
        if key not in self._writing:
            self._writing.add(key)
            self._spawn(self._drain(key))

    def forget(self, key: K) -> None:
        """Drop a value not yet written (the object is gone)."""
        self._wanted.pop(key, None)

    @property
    def busy(self) -> int:
        """Keys with a write in flight or waiting."""
        return len(self._writing)

    async def _drain(self, key: K) -> None:
        try:
            while key in self._wanted:
                value = self._wanted.pop(key)
                await self._write(key, value)
        finally:  # ``write`` handles the errors it expects; after any other, the next submit writes again
            self._writing.discard(key)
