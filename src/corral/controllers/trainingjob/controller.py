"""The TrainingJob reconciler: read the snapshot, ask :mod:`policy`, apply the plan.

Each reconcile reads the job, its pods and its PodGroup fresh from the API (a handful of
small requests), so a decision never rests on a cache that has not yet seen the
controller's own writes — which matters here, since "a worker pod is missing" means
"a worker was lost" and must not be confused with "the cache is behind". Informers only
enqueue keys: the job's own changes, and changes of the pods and PodGroups it owns.

The plan is applied in an order that keeps every crash point safe:

1. create the PodGroup, then the pods (``AlreadyExists`` is fine: the previous try made them);
2. write the status (``createdAttempt`` only after the pods exist; a new ``attempt`` before
   the old pods are deleted, so their disappearance is never taken for a second failure);
3. delete pods gracefully (SIGTERM and the grace period: the workers checkpoint), then the
   PodGroup, then — for ``ttlSecondsAfterFinished`` — the job;
4. record the events.

When a job is deleted its pods and PodGroup are deleted too (they carry owner references,
and the controller also removes them itself, so this works without a garbage collector).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from corral.api.registry import Obj
from corral.client import ApiClient, ApiError, EventRecorder, InformerFactory, split_key
from corral.controllers.runtime import Controller, Result
from corral.controllers.trainingjob.policy import (
    API_VERSION,
    JOB_LABEL,
    Config,
    decide,
    disrupted_pods,
    needs_capacity_check,
    pods_of,
    preempted_from_events,
    spare_workers,
    summary,
)
from corral.util.clock import Clock, SystemClock
from corral.util.supervise import HealthCheck

log = logging.getLogger(__name__)

PLURAL = "trainingjobs"
PODGROUPS = "podgroups"
COMPONENT = "trainingjob-controller"


class TrainingJobReconciler:
    """Level-triggered: every call brings one job one step closer to what :func:`policy.decide` wants."""

    def __init__(self, client: ApiClient, *, config: Config, clock: Clock | None = None,
                 recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.config = config
        self.clock = clock or SystemClock()
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self.clock)

    async def reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        namespace = namespace or "default"
        job = await self.client.get_or_none(API_VERSION, PLURAL, name, namespace)
        if job is None or (job.get("metadata") or {}).get("deletionTimestamp"):
            await self._clean_up_after(name, namespace, job)
            return None
        listed = await self.client.list("v1", "pods", namespace, label_selector=f"{JOB_LABEL}={name}")
        pods = pods_of(job, list(listed.get("items") or []))
        podgroup = await self.client.get_or_none(API_VERSION, PODGROUPS, name, namespace)
        if podgroup is not None and not _owned_by(podgroup, job):
            podgroup = None if not _owned_by_any_trainingjob(podgroup) else podgroup
        preempted: set[str] = set()
        suspects = disrupted_pods(job, pods)
        if suspects:
            # The scheduler records a Preempted event on each victim before deleting it.
            events = await self.client.list("v1", "events", namespace)
            preempted = preempted_from_events(job, suspects, list(events.get("items") or []))
        spare = 0
        if needs_capacity_check(job):
            spare = await self._spare_workers(job)
        plan = decide(job, pods, podgroup, self.clock.now(), self.config, preempted=preempted, spare_workers=spare)

        if plan.create_podgroup is not None:
            await self._create(plan.create_podgroup)
        for pod in plan.create_pods:
            await self._create(pod)
        if plan.status != (job.get("status") or {}):
            job = dict(job)
            job["status"] = plan.status
            await self.client.update_status(job)
            log.info("trainingjob %s/%s: %s", namespace, name, summary(plan.status))
        for pod_name in plan.delete_pods:
            await self.client.delete_if_exists("v1", "pods", pod_name, namespace)
        for pod_name in plan.force_delete_pods:
            await self.client.delete_if_exists("v1", "pods", pod_name, namespace, grace_period_seconds=0)
        if plan.delete_podgroup and podgroup is not None:
            await self.client.delete_if_exists(API_VERSION, PODGROUPS, name, namespace)
        for event in plan.events:
            await self.recorder.record(job, event.type, event.reason, event.message)
        if plan.delete_job:
            await self.client.delete_if_exists(API_VERSION, PLURAL, name, namespace,
                                               propagation_policy="Background")
        return Result(requeue_after=plan.requeue_after) if plan.requeue_after is not None else None

    async def _spare_workers(self, job: Obj) -> int:
        """Room for more workers of an elastic job (nodes' allocatable minus bound pods' requests)."""
        spec = job.get("spec") or {}
        missing = int(spec.get("maxReplicas") or 0) - int((job.get("status") or {}).get("worldSize") or 0)
        if missing <= 0:
            return 0
        nodes, _ = await self.client.list_all("v1", "nodes")
        pods, _ = await self.client.list_all("v1", "pods")
        return spare_workers(spec.get("template") or {}, nodes, pods, missing)

    async def _create(self, obj: Obj) -> None:
        try:
            await self.client.create(obj)
        except ApiError as error:
            if error.code != 409:  # AlreadyExists: an earlier try got there first
                raise

    async def _clean_up_after(self, name: str, namespace: str, job: Obj | None) -> None:
        """The job is gone (or going): remove what it owned, without waiting for a garbage collector."""
        listed = await self.client.list("v1", "pods", namespace, label_selector=f"{JOB_LABEL}={name}")
        live_uid = (job or {}).get("metadata", {}).get("uid") if job is not None else None
        for pod in listed.get("items") or []:
            if _owned_by_any_trainingjob(pod) and (live_uid is None or _owned_by_uid(pod, live_uid)) and not (
                pod.get("metadata") or {}
            ).get("deletionTimestamp"):
                await self.client.delete_if_exists("v1", "pods", pod["metadata"]["name"], namespace)
        podgroup = await self.client.get_or_none(API_VERSION, PODGROUPS, name, namespace)
        if podgroup is not None and _owned_by_any_trainingjob(podgroup):
            await self.client.delete_if_exists(API_VERSION, PODGROUPS, name, namespace)


def _owned_by_uid(obj: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def _owned_by(obj: Obj, job: Obj) -> bool:
    return _owned_by_uid(obj, str(job["metadata"].get("uid") or ""))


def _owned_by_any_trainingjob(obj: Obj) -> bool:
    return any(ref.get("kind") == "TrainingJob" for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


class TrainingJobController:
    """The component ``corral up`` starts: informers feeding one :class:`Controller`.

    ``start()``/``stop()`` as every component; ``data_dir`` is where default checkpoint
    directories live (``<data_dir>/checkpoints/<namespace>/<job>-<uid>``).
    """

    def __init__(self, client: ApiClient, *, data_dir: str, clock: Clock | None = None, workers: int = 2,
                 factory: InformerFactory | None = None, resync_seconds: float = 30.0, **config: Any) -> None:
        self.client = client
        self.factory = factory or InformerFactory(client)
        self._own_factory = factory is None
        self.reconciler = TrainingJobReconciler(client, config=Config(data_dir=data_dir, **config), clock=clock)
        self.controller = Controller(COMPONENT, self.reconciler, workers=workers, resync_seconds=resync_seconds)
        self.controller.watch(self.factory.informer(API_VERSION, PLURAL))
        self.controller.watch_owned(self.factory.informer("v1", "pods", label_selector=JOB_LABEL), "TrainingJob")
        self.controller.watch_owned(self.factory.informer(API_VERSION, PODGROUPS), "TrainingJob")

    async def start(self) -> None:
        if self._own_factory:
            await self.factory.start()
            await self.factory.wait_synced(60)
        await self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        if self._own_factory:
            await self.factory.stop()


class TrainingJobComponent:
    """The controller as a ``corral up`` component, with its own client from the kubeconfig."""

    def __init__(self, kubeconfig: Path, *, data_dir: Path, clock: Clock | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.data_dir = data_dir
        self.clock = clock
        self.client: ApiClient | None = None
        self.controller: TrainingJobController | None = None

    async def start(self) -> None:
        self.client = ApiClient.from_kubeconfig(self.kubeconfig, user_agent=COMPONENT)
        self.controller = TrainingJobController(self.client, data_dir=str(self.data_dir), clock=self.clock)
        await self.controller.start()

    def health_checks(self) -> dict[str, HealthCheck]:
        """Its controller's workers, on the API server's ``/readyz``."""
        return self.controller.controller.health_checks() if self.controller is not None else {}

    async def stop(self) -> None:
        if self.controller is not None:
            await self.controller.stop()
        if self.client is not None:
            await self.client.close()
