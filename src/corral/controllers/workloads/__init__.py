"""The standard workload controllers (ReplicaSet, Deployment, Job) as one ``corral up`` component.

They share one informer factory (one pod watch for all three) and report their workers on
``/readyz`` through :meth:`WorkloadsComponent.health_checks`.
"""

from __future__ import annotations

from pathlib import Path

from corral.client import ApiClient, InformerFactory
from corral.controllers.deployment.controller import deployment_controller
from corral.controllers.job.controller import job_controller
from corral.controllers.replicaset.controller import replicaset_controller
from corral.controllers.runtime import Manager
from corral.util.clock import Clock
from corral.util.supervise import HealthCheck


def workload_manager(client: ApiClient, *, clock: Clock | None = None, resync_seconds: float = 30.0) -> Manager:
    """A :class:`Manager` running the three controllers over one informer factory."""
    factory = InformerFactory(client)
    manager = Manager(factory)
    manager.add(replicaset_controller(client, factory, clock=clock, resync_seconds=resync_seconds))
    manager.add(deployment_controller(client, factory, clock=clock, resync_seconds=resync_seconds))
    manager.add(job_controller(client, factory, clock=clock, resync_seconds=resync_seconds))
    return manager


class WorkloadsComponent:
    """The controllers as a ``corral up`` component, with their own client from the kubeconfig."""

    def __init__(self, kubeconfig: Path, *, clock: Clock | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.clock = clock
        self.client: ApiClient | None = None
        self.manager: Manager | None = None

    async def start(self) -> None:
        self.client = ApiClient.from_kubeconfig(self.kubeconfig, user_agent="workload-controllers")
        self.manager = workload_manager(self.client, clock=self.clock)
        await self.manager.start()

    def health_checks(self) -> dict[str, HealthCheck]:
        return self.manager.health_checks() if self.manager is not None else {}

    async def stop(self) -> None:
        if self.manager is not None:
            await self.manager.stop()
        if self.client is not None:
            await self.client.close()
