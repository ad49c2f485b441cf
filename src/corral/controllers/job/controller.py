"""The Job reconciler: read the job and its pods, ask :mod:`plan`, apply.

Pods are read fresh from the API (by the job's selector), so a pod just created is always
counted. Writes: create pods, delete pods, status, events, then — ``ttlSecondsAfterFinished``
— the job itself (foreground, so its pods go first, as Kubernetes' TTL controller does).
"""

from __future__ import annotations

import logging

from corral.client import ApiClient, EventRecorder, InformerFactory, split_key
from corral.controllers.job.plan import plan
from corral.controllers.podutil import apply
from corral.controllers.runtime import Controller, Result
from corral.util.clock import Clock, SystemClock

log = logging.getLogger(__name__)

COMPONENT = "job-controller"


def _selector_text(selector: object) -> str | None:
    if not isinstance(selector, dict) or selector.get("matchExpressions") or not selector.get("matchLabels"):
        return None  # expressions: list the namespace and let the plan match
    return ",".join(f"{k}={v}" for k, v in sorted(selector["matchLabels"].items()))


class JobReconciler:
    def __init__(self, client: ApiClient, *, clock: Clock | None = None, recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.clock = clock or SystemClock()
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self.clock)

    async def reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        namespace = namespace or "default"
        job = await self.client.get_or_none("batch/v1", "jobs", name, namespace)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return None
        selector = _selector_text((job.get("spec") or {}).get("selector"))
        pods = list((await self.client.list("v1", "pods", namespace, label_selector=selector)).get("items") or [])
        todo = plan(job, pods, self.clock.now())
        made, failure = await apply.create_pods(self.client, self.recorder, job, todo.create)
        if failure is not None:  # the pods it could not create are not active
            todo.status["active"] = max(int(todo.status.get("active") or 0) - (len(todo.create) - made), 0)
            todo.requeue_after = apply.FAILED_CREATE_RETRY
        for pod_name in todo.delete:
            await self.client.delete_if_exists("v1", "pods", pod_name, namespace)
            await self.recorder.record(job, "Normal", "SuccessfulDelete", f"Deleted pod: {pod_name}")
        if todo.status != (job.get("status") or {}):
            job = await apply.write_status(self.client, "batch/v1", "jobs", job, todo.status)
        for event_type, reason, message in todo.events:
            await self.recorder.record(job, event_type, reason, message)  # type: ignore[arg-type]
        if todo.delete_job:
            await self.client.delete_if_exists("batch/v1", "jobs", name, namespace, propagation_policy="Foreground")
        return Result(requeue_after=todo.requeue_after) if todo.requeue_after is not None else None


def job_controller(client: ApiClient, factory: InformerFactory, *, clock: Clock | None = None,
                   workers: int = 2, resync_seconds: float = 30.0) -> Controller:
    controller = Controller(COMPONENT, JobReconciler(client, clock=clock), workers=workers, resync_seconds=resync_seconds)
    controller.watch(factory.informer("batch/v1", "jobs"))
    controller.watch_owned(factory.informer("v1", "pods"), "Job")
    return controller
