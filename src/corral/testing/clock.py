"""A manual clock for tests: time moves only when the test says so."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class FakeClock:
    """Implements :class:`corral.util.clock.Clock`; ``advance`` moves time and wakes sleepers."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._elapsed + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and release every sleeper whose deadline has passed."""
        self._elapsed += seconds
        due = [entry for entry in self._sleepers if entry[0] <= self._elapsed]
        self._sleepers = [entry for entry in self._sleepers if entry[0] > self._elapsed]
        for _, future in due:
            if not future.done():
                future.set_result(None)
