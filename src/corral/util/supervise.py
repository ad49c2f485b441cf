"""Supervised background tasks: a loop that crashes is logged, restarted with backoff, and reported.

Every long-running asyncio task of a component (a scheduling loop, a status writer, a
sync loop) runs under a :class:`Supervisor` instead of a bare ``asyncio.create_task``:

- a task that raises is logged once per crash **with its traceback**, then started again
  after an exponential backoff (``initial_backoff`` doubling up to ``max_backoff``), so one
  bug or one object a loop cannot handle never stops a component for good;
- a task that returns normally is finished (it is not restarted); cancelling it (``stop``)
  is not a crash;
- :meth:`Supervisor.check` is a health check: ``None`` while every task is healthy, else
  one line saying which task crashed, how often and why. A task counts as failing from its
  crash until it has run ``healthy_after`` seconds since its last restart without crashing
  again, so a crash-looping task stays reported and a recovered one stops being reported.
  The API server's ``/readyz`` shows these lines (``[-]scheduler failed: ...``).

The supervisor keeps no global state: each component owns one, and the composition
point (``corral up``) registers its :meth:`check` with the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from corral.util.clock import Clock, SystemClock

log = logging.getLogger(__name__)

HealthCheck = Callable[[], str | None]
"""A readiness check: ``None`` when healthy, else why not (one line)."""


@dataclass
class TaskState:
    """What the supervisor knows about one task."""

    name: str
    crashes: int = 0
    last_error: str = ""
    crashed_at: float | None = None  # clock.monotonic() of the last crash
    started_at: float = 0.0  # clock.monotonic() of the last (re)start
    running: bool = False


def describe(error: BaseException) -> str:
    """``Type: message`` on one line (what /readyz and the logs show)."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended, whatever it raised on the way out."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


class Supervisor:
    """Runs named coroutines, restarting those that crash (see the module docstring)."""

    def __init__(self, name: str, *, clock: Clock | None = None, initial_backoff: float = 0.5,
                 max_backoff: float = 30.0, healthy_after: float = 30.0) -> None:
        self.name = name
        self.clock = clock or SystemClock()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.healthy_after = healthy_after
        self.states: dict[str, TaskState] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``run()`` as a supervised task called ``name`` (unique within this supervisor)."""
        if name in self._tasks and not self._tasks[name].done():
            raise ValueError(f"{self.name}: a task named {name!r} is already running")
        state = self.states.setdefault(name, TaskState(name))
        task = asyncio.create_task(self._supervise(state, run), name=f"{self.name}/{name}")
        self._tasks[name] = task
        return task

    async def _supervise(self, state: TaskState, run: Callable[[], Awaitable[None]]) -> None:
        backoff = self.initial_backoff
        while True:
            state.started_at = self.clock.monotonic()
            state.running = True
            try:
                await run()
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as error:
                state.running = False
                now = self.clock.monotonic()
                if state.crashed_at is not None and now - state.started_at >= self.healthy_after:
                    backoff = self.initial_backoff  # it had recovered: a fresh crash starts the backoff again
                state.crashes += 1
                state.crashed_at = now
                state.last_error = describe(error)
                log.error("%s: task %s crashed (%d so far); restarting in %.2fs", self.name, state.name,
                          state.crashes, backoff, exc_info=error)
                await self.clock.sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)
                continue
            state.running = False
            state.crashed_at = None  # finished on its own: nothing left to report
            return

    def failing(self) -> list[TaskState]:
        """Tasks that crashed and have not yet run ``healthy_after`` seconds since."""
        now = self.clock.monotonic()
        return [state for state in self.states.values()
                if state.crashed_at is not None
                and (not state.running or now - state.started_at < self.healthy_after)]

    def check(self) -> str | None:
        """The health check: ``None`` when no task is failing, else which and why."""
        failing = self.failing()
        if not failing:
            return None
        return "; ".join(f"task {s.name} crashed {s.crashes} time(s), last: {s.last_error}"
                         + ("" if s.running else " (restarting)") for s in failing)

    async def stop(self) -> None:
        """Cancel every task and wait for them to end."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await cancel_all(tasks)
        for state in self.states.values():  # stopped on purpose: nothing is failing
            state.running = False
            state.crashed_at = None
