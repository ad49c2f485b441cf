"""A deduplicating, rate-limited work queue with client-go's semantics.

A key is in the queue at most once; a key being processed is not handed to a second
worker — if it is added meanwhile, it is queued again when :meth:`WorkQueue.done` is
called. ``add_rate_limited`` waits an exponentially growing delay per key (reset by
``forget``), which is how reconcilers back off from errors without hot loops.
"""

from __future__ import annotations

import asyncio
from collections import deque


class QueueClosedError(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down and empty."""


class WorkQueue:
    """Keys waiting for a worker, each at most once."""

    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 60.0) -> None:
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._shutting_down = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        """Queue ``key`` unless it is already waiting."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._notify()

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds (an earlier pending timer wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        deadline = loop.time() + delay
        if existing is not None and existing.when() <= deadline:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_at(deadline, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def backoff(self, key: str) -> float:
        """The delay the next ``add_rate_limited(key)`` will wait."""
        return float(min(self._max_delay, self._base_delay * 2 ** self._failures.get(key, 0)))

    def add_rate_limited(self, key: str) -> None:
        delay = self.backoff(key)
        self._failures[key] = self._failures.get(key, 0) + 1
        self.add_after(key, delay)

    def forget(self, key: str) -> None:
        """Reset ``key``'s backoff (after a successful reconcile)."""
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        """The next key to process; call :meth:`done` with it afterwards."""
        while not self._queue:
            if self._shutting_down:
                raise QueueClosedError
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._notify()

    def shutdown(self) -> None:
        """Stop accepting keys; waiting workers get :class:`QueueClosedError` once the queue drains."""
        self._shutting_down = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _notify(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
