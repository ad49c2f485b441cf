"""The scheduling queue: which group the scheduler tries next.

The unit is a group key (``group:ns/name`` for a PodGroup, ``pod:ns/name`` for a bare
pod — a group of one). Like kube-scheduler's PriorityQueue it has three parts:

- **active**: a heap ordered by QueueSort — higher priority first, then earlier
  creation, then key (so the order is total and deterministic);
- **backoff**: groups that failed recently wait ``initial_backoff * 2**(attempts-1)``
  (capped at ``max_backoff``) before they are tried again;
- **unschedulable**: groups that found no place wait there until the cluster changes
  (:meth:`move_all_to_active`: a node was added or changed, a pod left) or until
  ``unschedulable_timeout`` passes, then go through backoff to active.

A key lives in at most one part; a key being scheduled is *in flight*, and a cluster
change seen while it was in flight sends it to backoff rather than unschedulable, so a
change that happened during the attempt is never missed. Time comes from an injected
:class:`~corral.util.clock.Clock`. The queue holds keys and sort facts only; what a group
contains is the service's business.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from corral.util.clock import Clock

SortKey = tuple[int, float, str]


def default_sort_key(priority: int, created: float, key: str) -> SortKey:
    """QueueSort: priority descending, then creation ascending, then key."""
    return (-priority, created, key)


@dataclass
class _Info:
    key: str
    priority: int
    created: float
    attempts: int = 0
    ready_at: float = 0.0  # monotonic time when backoff ends
    parked_at: float = 0.0  # when it entered the unschedulable part
    where: str = ""  # "active" | "backoff" | "unschedulable" | "flight" | ""
    version: int = 0
    moved_in_flight: bool = False


@dataclass
class QueueStats:
    active: int
    backoff: int
    unschedulable: int
    in_flight: int


@dataclass
class SchedulingQueue:
    clock: Clock
    initial_backoff: float = 1.0
    max_backoff: float = 10.0
    unschedulable_timeout: float = 60.0
    sort_key: Callable[[int, float, str], SortKey] = default_sort_key
    _infos: dict[str, _Info] = field(default_factory=dict)
    _active: list[tuple[SortKey, int, str]] = field(default_factory=list)
    _backoff: list[tuple[float, int, str]] = field(default_factory=list)
    _unschedulable: set[str] = field(default_factory=set)
    _in_flight: set[str] = field(default_factory=set)
    _move_pending: bool = False
    _wake: asyncio.Event | None = None
    _closed: bool = False

    # -- feeding -------------------------------------------------------------------

    def add(self, key: str, priority: int, created: float) -> None:
        """A group is (still) pending; new keys go to active, known keys get their sort facts updated.

        An update to a group parked as unschedulable moves it on (the group changed, so the
        previous answer may not hold), through backoff if its backoff has not ended.
        """
        info = self._infos.get(key)
        if info is None:
            info = _Info(key=key, priority=priority, created=created)
            self._infos[key] = info
            self._push_active(info)
            return
        changed = info.priority != priority or info.created != created
        info.priority, info.created = priority, created
        if info.where == "flight":
            info.moved_in_flight = True
        elif info.where == "unschedulable":
            self._unschedulable.discard(key)
            self._push_after_backoff(info)
        elif (info.where == "active" and changed) or info.where == "":
            self._push_active(info)

    def remove(self, key: str) -> None:
        """The group is gone or fully placed; forget it everywhere (stale heap entries are skipped)."""
        info = self._infos.pop(key, None)
        self._in_flight.discard(key)
        if info is not None:
            self._unschedulable.discard(key)
            info.version += 1

    def __contains__(self, key: str) -> bool:
        return key in self._infos

    # -- outcomes --------------------------------------------------------------------

    def done(self, key: str) -> None:
        """The attempt placed the group: forget its key and attempts."""
        self.remove(key)

    def unschedulable(self, key: str) -> None:
        """The attempt found no place: park until the cluster changes (or backoff if it already did)."""
        info = self._infos.get(key)
        if info is None:
            return
        info.attempts += 1
        info.ready_at = self.clock.monotonic() + self.backoff_for(info.attempts)
        if info.moved_in_flight:
            info.moved_in_flight = False
            self._push_after_backoff(info)
            return
        info.where = "unschedulable"
        info.parked_at = self.clock.monotonic()
        info.version += 1
        self._in_flight.discard(key)
        self._unschedulable.add(key)

    def retry(self, key: str) -> None:
        """The attempt failed for a passing reason (error, bind failure, waiting members): back off."""
        info = self._infos.get(key)
        if info is None:
            return
        info.attempts += 1
        info.ready_at = self.clock.monotonic() + self.backoff_for(info.attempts)
        info.moved_in_flight = False
        self._push_after_backoff(info)

    def park(self, key: str) -> None:
        """Set a group aside without counting an attempt (e.g. it waits for members to be created)."""
        info = self._infos.get(key)
        if info is None:
            return
        info.where = "unschedulable"
        info.parked_at = self.clock.monotonic()
        info.moved_in_flight = False
        info.version += 1
        self._in_flight.discard(key)
        self._unschedulable.add(key)

    def move_all_to_active(self) -> None:
        """The cluster changed in a way that may make parked groups fit: move them on.

        Cheap enough to call on every event: parked groups are moved once, lazily, before
        the next pop; groups in flight are marked so their attempt's outcome cannot park them.
        """
        self._move_pending = bool(self._unschedulable)
        for key in self._in_flight:
            info = self._infos.get(key)
            if info is not None:
                info.moved_in_flight = True
        if self._move_pending and self._wake is not None:
            self._wake.set()

    def _apply_move(self) -> None:
        self._move_pending = False
        for key in list(self._unschedulable):
            info = self._infos[key]
            self._unschedulable.discard(key)
            self._push_after_backoff(info)

    def backoff_for(self, attempts: int) -> float:
        if attempts <= 0:
            return 0.0
        return float(min(self.max_backoff, self.initial_backoff * 2 ** (attempts - 1)))

    # -- taking --------------------------------------------------------------------------

    def pop_nowait(self) -> str | None:
        """The next group to try, or None when nothing is ready."""
        self._flush()
        while self._active:
            _, version, key = heapq.heappop(self._active)
            info = self._infos.get(key)
            if info is None or info.version != version or info.where != "active":
                continue
            info.where = "flight"
            info.version += 1
            info.moved_in_flight = False
            self._in_flight.add(key)
            return key
        return None

    async def pop(self) -> str | None:
        """Wait for the next group; None once :meth:`close` was called."""
        while not self._closed:
            key = self.pop_nowait()
            if key is not None:
                return key
            wait = self._next_deadline()
            event = self._event()
            event.clear()
            waiter = asyncio.ensure_future(event.wait())
            sleeper = asyncio.ensure_future(self.clock.sleep(wait)) if wait is not None else None
            pending = {waiter} if sleeper is None else {waiter, sleeper}
            try:
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pending:
                    task.cancel()
        return None

    def close(self) -> None:
        self._closed = True
        self._event().set()

    def stats(self) -> QueueStats:
        counts = {"active": 0, "backoff": 0, "unschedulable": 0, "flight": 0}
        for info in self._infos.values():
            if info.where in counts:
                counts[info.where] += 1
        return QueueStats(counts["active"], counts["backoff"], counts["unschedulable"], counts["flight"])

    def attempts(self, key: str) -> int:
        info = self._infos.get(key)
        return info.attempts if info else 0

    # -- internals ---------------------------------------------------------------------

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    def _push_active(self, info: _Info) -> None:
        self._in_flight.discard(info.key)
        info.version += 1
        info.where = "active"
        heapq.heappush(self._active, (self.sort_key(info.priority, info.created, info.key), info.version, info.key))
        if self._wake is not None:
            self._wake.set()

    def _push_after_backoff(self, info: _Info) -> None:
        if info.ready_at <= self.clock.monotonic():
            self._push_active(info)
            return
        self._in_flight.discard(info.key)
        info.version += 1
        info.where = "backoff"
        heapq.heappush(self._backoff, (info.ready_at, info.version, info.key))
        if self._wake is not None:
            self._wake.set()

    def _flush(self) -> None:
        if self._move_pending:
            self._apply_move()
        now = self.clock.monotonic()
        while self._backoff and self._backoff[0][0] <= now:
            _, version, key = heapq.heappop(self._backoff)
            info = self._infos.get(key)
            if info is not None and info.version == version and info.where == "backoff":
                self._push_active(info)
        if self._unschedulable:
            for key in [k for k in self._unschedulable if now - self._infos[k].parked_at >= self.unschedulable_timeout]:
                self._unschedulable.discard(key)
                self._push_after_backoff(self._infos[key])

    def _next_deadline(self) -> float | None:
        now = self.clock.monotonic()
        deadlines: list[float] = []
        while self._backoff:
            ready_at, version, key = self._backoff[0]
            info = self._infos.get(key)
            if info is None or info.version != version or info.where != "backoff":
                heapq.heappop(self._backoff)
                continue
            deadlines.append(ready_at)
            break
        if self._unschedulable:
            deadlines.append(min(self._infos[k].parked_at for k in self._unschedulable) + self.unschedulable_timeout)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)
