"""The scheduler with queues: one ``corral up`` component (``start()``/``stop()``).

It composes the live :class:`~corral.scheduler.service.SchedulerService` with
:class:`~.live.QueueAdmission` at its admission seam and the :class:`~.service.QueueManager`
(Queue informer, release, eviction, status, metrics), sharing the scheduler's pod and
node informers. Without any Queue objects it behaves exactly like the plain scheduler
(work that names no queue is not limited).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from corral.client import ApiClient
from corral.scheduler.quota.cycle import Policy
from corral.scheduler.quota.live import QueueAdmission
from corral.scheduler.quota.service import QueueManager
from corral.scheduler.service import SchedulerConfig, SchedulerService
from corral.util.clock import Clock, SystemClock
from corral.util.supervise import HealthCheck


class QueuedScheduler:
    """SchedulerService + QueueAdmission + QueueManager."""

    def __init__(self, client: ApiClient, *, config: SchedulerConfig | None = None, clock: Clock | None = None,
                 scheduler_name: str = "corral", policy: Policy | None = None, status_interval: float = 1.0) -> None:
        self.clock = clock or SystemClock()
        self._release_pending = False
        self.admission = QueueAdmission(self.clock, self._node_labels, policy=policy, notify=self._releases_soon)
        self.service = SchedulerService(client, config=config, clock=self.clock, admission=self.admission,
                                        scheduler_name=scheduler_name)
        self.queues = QueueManager(client, self.admission, pods=self.service.pods, clock=self.clock,
                                   interval=status_interval, on_change=self._requeue)

    def _node_labels(self, name: str) -> Mapping[str, str] | None:
        node = self.service.nodes.get(name)
        if node is None:
            return None
        labels = (node.get("metadata") or {}).get("labels")
        return labels if isinstance(labels, dict) else {}

    def _requeue(self) -> None:
        self.service.scheduler.requeue()
        self._releases_soon()

    def _releases_soon(self) -> None:
        """Admission may have held groups to hand back: do it once this turn of the loop is
        over (every release in one batch of watch events is handled by one pass)."""
        if self._release_pending:
            return
        self._release_pending = True
        try:
            asyncio.get_running_loop().call_soon(self._release_held)
        except RuntimeError:  # no loop (a synchronous test): at once
            self._release_held()

    def _release_held(self) -> None:
        self._release_pending = False
        keys = self.admission.take_releases()
        if keys:
            self.service.scheduler.release_held(keys)
        self.service._poke()

    def health_checks(self) -> dict[str, HealthCheck]:
        """The scheduler's and the queue manager's loops (``/readyz``)."""
        return {**self.service.health_checks(), **self.queues.health_checks()}

    async def start(self) -> None:
        await self.queues.start_queues()
        await self.service.start()
        await self.queues.start()

    async def stop(self) -> None:
        await self.queues.stop()
        await self.service.stop()
