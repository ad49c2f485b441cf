"""The ReplicaSet reconciler: read the set and its namespace's pods, ask :mod:`plan`, apply.

Pods are read fresh from the API on each reconcile (not from the informer's cache), so a pod
this controller has just created is always counted and never made twice; informers only
enqueue keys (the set's changes and those of the pods it controls).
"""

from __future__ import annotations

import logging

from corral.client import ApiClient, EventRecorder, InformerFactory, split_key
from corral.controllers.podutil import apply, claimant_keys
from corral.controllers.replicaset.plan import plan, with_create_failure
from corral.controllers.runtime import Controller, Result
from corral.util.clock import Clock, SystemClock

log = logging.getLogger(__name__)

COMPONENT = "replicaset-controller"


class ReplicaSetReconciler:
    def __init__(self, client: ApiClient, *, clock: Clock | None = None, recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.clock = clock or SystemClock()
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self.clock)

    async def reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        namespace = namespace or "default"
        rs = await self.client.get_or_none("apps/v1", "replicasets", name, namespace)
        if rs is None:
            return None
        pods = list((await self.client.list("v1", "pods", namespace)).get("items") or [])
        todo = plan(rs, pods, self.clock.now())
        await apply.claim(self.client, "v1", "pods", rs, pods, adopt=todo.adopt, release=todo.release)
        _, failure = await apply.create_pods(self.client, self.recorder, rs, todo.create)
        for pod_name in todo.delete:
            await self.client.delete_if_exists("v1", "pods", pod_name, namespace)
            await self.recorder.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod_name}")
        if todo.create or any(c.get("type") == "ReplicaFailure" for c in todo.status.get("conditions") or []):
            todo.status = with_create_failure(todo.status, failure, self.clock.now())
        if todo.status != (rs.get("status") or {}):
            await apply.write_status(self.client, "apps/v1", "replicasets", rs, todo.status)
        if failure is not None:
            return Result(requeue_after=apply.FAILED_CREATE_RETRY)
        return Result(requeue_after=todo.requeue_after) if todo.requeue_after is not None else None


def replicaset_controller(client: ApiClient, factory: InformerFactory, *, clock: Clock | None = None,
                          workers: int = 2, resync_seconds: float = 30.0) -> Controller:
    controller = Controller(COMPONENT, ReplicaSetReconciler(client, clock=clock), workers=workers,
                            resync_seconds=resync_seconds)
    sets = factory.informer("apps/v1", "replicasets")
    controller.watch(sets)
    controller.watch(factory.informer("v1", "pods"), lambda pod: claimant_keys(pod, "ReplicaSet", sets.list()))
    return controller
