"""The Deployment reconciler: read the deployment and its namespace's ReplicaSets, ask :mod:`plan`, apply.

Order of writes: adopt/release sets, create the new set, rescale sets (a merge patch each),
record the revision on the deployment, delete sets beyond the history limit, then the
status. Every step is idempotent, so a crash between two only leaves the next reconcile
less to do.
"""

from __future__ import annotations

import logging

from corral.client import ApiClient, EventRecorder, InformerFactory, split_key
from corral.controllers.deployment.plan import REVISION, plan
from corral.controllers.podutil import apply, claimant_keys
from corral.controllers.runtime import Controller, Result
from corral.util.clock import Clock, SystemClock

log = logging.getLogger(__name__)

COMPONENT = "deployment-controller"


class DeploymentReconciler:
    def __init__(self, client: ApiClient, *, clock: Clock | None = None, recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.clock = clock or SystemClock()
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self.clock)

    async def reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        namespace = namespace or "default"
        deployment = await self.client.get_or_none("apps/v1", "deployments", name, namespace)
        if deployment is None:
            return None
        sets = list((await self.client.list("apps/v1", "replicasets", namespace)).get("items") or [])
        by_name = {rs["metadata"]["name"]: rs for rs in sets}
        todo = plan(deployment, sets, self.clock.now())
        await apply.claim(self.client, "apps/v1", "replicasets", deployment, sets, adopt=todo.adopt, release=todo.release)
        if todo.create is not None:
            created = await apply.create(self.client, todo.create)
            if created is not None:
                await self.recorder.record(deployment, "Normal", "ScalingReplicaSet",
                                           f"Scaled up replica set {created['metadata']['name']} from 0 to "
                                           f"{created['spec']['replicas']}")
        for rs in todo.update:
            old = by_name.get(rs["metadata"]["name"]) or {}
            # a merge patch of what the plan changes (replicas, annotations): the set's controller
            # writing its status meanwhile must not make this fail
            await self.client.patch("apps/v1", "replicasets", rs["metadata"]["name"],
                                    {"metadata": {"annotations": apply.merge_difference(
                                        (old.get("metadata") or {}).get("annotations") or {},
                                        rs["metadata"].get("annotations") or {})},
                                     "spec": {"replicas": rs["spec"]["replicas"]}},
                                    namespace=namespace)
            before, after = int((old.get("spec") or {}).get("replicas") or 0), int(rs["spec"]["replicas"])
            if before != after:
                direction = "up" if after > before else "down"
                await self.recorder.record(deployment, "Normal", "ScalingReplicaSet",
                                           f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {after}")
        annotations = deployment["metadata"].get("annotations") or {}
        if todo.revision is not None and annotations.get(REVISION) != todo.revision:
            deployment = await self.client.patch(
                "apps/v1", "deployments", name,
                {"metadata": {"annotations": {REVISION: todo.revision},
                              "resourceVersion": deployment["metadata"]["resourceVersion"]}},
                namespace=namespace)
        for rs_name in todo.delete:
            await self.client.delete_if_exists("apps/v1", "replicasets", rs_name, namespace)
        if todo.status != (deployment.get("status") or {}):
            await apply.write_status(self.client, "apps/v1", "deployments", deployment, todo.status)
        return Result(requeue_after=todo.requeue_after) if todo.requeue_after is not None else None


def deployment_controller(client: ApiClient, factory: InformerFactory, *, clock: Clock | None = None,
                          workers: int = 2, resync_seconds: float = 30.0) -> Controller:
    controller = Controller(COMPONENT, DeploymentReconciler(client, clock=clock), workers=workers,
                            resync_seconds=resync_seconds)
    deployments = factory.informer("apps/v1", "deployments")
    controller.watch(deployments)
    controller.watch(factory.informer("apps/v1", "replicasets"),
                     lambda rs: claimant_keys(rs, "Deployment", deployments.list()))
    return controller
