"""Clocks, injected wherever time matters.

Components take a :class:`Clock` instead of calling :mod:`time` so that tests and
the simulator can drive them on a virtual clock. ``SystemClock`` is the real one;
``corral.testing.FakeClock`` is the manual one used by tests.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Wall time for timestamps, monotonic time for durations, and sleeping."""

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic scale, for measuring durations."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for ``seconds`` on this clock."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 with second precision and a ``Z`` suffix, as Kubernetes writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp as Kubernetes writes it (``Z`` or an offset, optional fraction)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
