"""The queue manager: feeds quota admission from the API, evicts victims, writes Queue
status, and exports per-queue metrics.

It runs next to the scheduler (``corral up`` or ``corral scheduler``), sharing the
scheduler's pod informer when given one:

- **Queues**: a Queue informer; every change reconfigures :class:`QueueAdmission` and asks
  the scheduler to retry its parked groups (a quota may have grown).
- **Release**: when every pod of an admitted group has finished or is gone, its quota is
  released at once and parked groups are retried. A periodic :meth:`QueueAdmission.resync`
  rebuilds the booking from the pods (level-triggered: a restart loses nothing).
- **Eviction**: victims nominated by admission are deleted pod by pod with their grace
  period (SIGTERM first: training jobs checkpoint) and an Event ``Preempted`` naming the
  preemptor and the reason.
- **Status** of each Queue (:func:`.status.queue_status`), written when it changes. A
  Queue whose spec admission cannot parse (e.g. stored by an older version) gets
  ``Active=False`` with reason ``InvalidSpec`` and a Warning Event naming the field; it
  admits nothing (its groups wait with reason ``QueueInvalid``) and the other Queues work.
  Fixing the spec brings it back.
- **Metrics** (Prometheus, a registry of its own): ``corral_queue_pending_workloads``,
  ``corral_queue_admitted_workloads``, ``corral_queue_usage``, ``corral_queue_borrowed``
  (per flavor and resource), ``corral_queue_fair_share`` and the
  ``corral_queue_time_to_admission_seconds`` histogram.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from corral.client import ApiClient, ApiError, EventRecorder, Informer
from corral.scheduler.quota.live import QueueAdmission, group_key_of
from corral.scheduler.quota.quota import Admitted, fmt_milli
from corral.scheduler.quota.status import queue_status
from corral.util.clock import Clock, SystemClock, format_timestamp
from corral.util.supervise import HealthCheck, Supervisor, cancel_all

log = logging.getLogger(__name__)

QUEUE_API = "corral.dev/v1alpha1"
GROUP_INDEX = "corral-group"
SCHEDULER_NAME = "corral"


def _terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _pending(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName") and not _terminal(pod)
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
            and spec.get("schedulerName") in (None, "", SCHEDULER_NAME))


class QueueMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pending = Gauge("corral_queue_pending_workloads", "Workloads waiting in the queue", ["queue"],
                             registry=self.registry)
        self.admitted = Gauge("corral_queue_admitted_workloads", "Workloads holding quota", ["queue"],
                              registry=self.registry)
        self.usage = Gauge("corral_queue_usage", "Quota in use", ["queue", "flavor", "resource"],
                           registry=self.registry)
        self.borrowed = Gauge("corral_queue_borrowed", "Quota borrowed from the cohort",
                              ["queue", "flavor", "resource"], registry=self.registry)
        self.share = Gauge("corral_queue_fair_share", "Weighted dominant-resource share", ["queue"],
                           registry=self.registry)
        self.tta = Histogram("corral_queue_time_to_admission_seconds", "Time from creation to admission",
                             ["queue"], registry=self.registry,
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class QueueManager:
    """A ``corral up`` component: ``await start()`` / ``await stop()``."""

    def __init__(self, client: ApiClient, admission: QueueAdmission, *, pods: Informer | None = None,
                 clock: Clock | None = None, interval: float = 1.0, resync_interval: float = 5.0,
                 on_change: Callable[[], None] | None = None) -> None:
        self.client = client
        self.admission = admission
        self.clock = clock or SystemClock()
        self.interval = interval
        self.resync_interval = resync_interval
        self._resynced_at = float("-inf")
        self._pending_groups: dict[str, str | None] = {}  # group key -> queue, while a pod of it waits
        self.on_change = on_change or (lambda: None)
        self.queues = Informer(client, QUEUE_API, "queues")
        self._own_pods = pods is None
        self.pods = pods if pods is not None else Informer(client, "v1", "pods")  # an empty Informer is falsy
        self.events = EventRecorder(client, "corral-queues", clock=self.clock)
        self.metrics = QueueMetrics()
        self.supervisor = Supervisor("queue-manager", clock=self.clock)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reported_invalid: dict[str, str] = {}  # Queue name -> the problem its status and Event report
        self._written: dict[str, dict[str, Any]] = {}
        self._evicted: set[str] = set()
        self._queues_started = False

    async def start_queues(self) -> None:
        """Start the Queue informer and configure admission (before the scheduler starts)."""
        if self._queues_started:
            return
        self._queues_started = True
        self.queues.add_handler(lambda _o: self._queues_changed(), self._queue_updated,
                                lambda _o: self._queues_changed())
        await self.queues.start()
        await self.queues.wait_synced()
        self._queues_changed()

    async def start(self) -> None:
        await self.start_queues()
        self.pods.add_indexer(GROUP_INDEX, lambda pod: [group_key_of(pod)])
        self.pods.add_handler(self._on_pod, lambda _o, new: self._on_pod(new), self._on_pod)
        if self._own_pods:
            await self.pods.start()
        await self.pods.wait_synced()
        self.admission.resync(self.pods.list())
        self.supervisor.spawn("loop", self._loop)

    def health_checks(self) -> dict[str, HealthCheck]:
        """``/readyz`` fails while the queue manager's loop is crash-looping."""
        return {"queue-manager": self.supervisor.check}

    async def stop(self) -> None:
        await self.supervisor.stop()
        await cancel_all(self._tasks)
        await self.queues.stop()
        if self._own_pods:
            await self.pods.stop()

    # -- events ------------------------------------------------------------------------------

    def _queue_updated(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if old.get("spec") != new.get("spec"):  # our own status writes change nothing here
            self._queues_changed()

    def _queues_changed(self) -> None:
        self.admission.set_queues(self.queues.list())
        if self._pending_groups:  # a namespace's default queue may have changed
            self._pending_groups.clear()
            for pod in self.pods.list():
                if _pending(pod):
                    self._on_pod(pod)
        self.on_change()

    def _on_pod(self, pod: dict[str, Any]) -> None:
        key = group_key_of(pod)
        waiting = next((m for m in self.pods.by_index(GROUP_INDEX, key) if _pending(m)), None)
        if waiting is None:
            self._pending_groups.pop(key, None)
        elif key not in self._pending_groups:
            metadata = waiting.get("metadata") or {}
            named = (metadata.get("labels") or {}).get("corral.dev/queue")
            self._pending_groups[key] = self.admission.queue_of(metadata.get("namespace") or "default", named)
        if key not in self.admission.book.admitted:
            if key in self.admission.pending and not any(
                    not _terminal(m) for m in self.pods.by_index(GROUP_INDEX, key)):
                self.admission.drop_pending(key)  # it left while waiting: no one yields to it
            return
        members = self.pods.by_index(GROUP_INDEX, key)
        if all(_terminal(member) for member in members):
            self.admission.release(key)
            self._evicted.discard(key)
            self.on_change()

    # -- the loop ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:
                log.exception("queue manager pass failed")
            await self.clock.sleep(self.interval)

    async def sync(self) -> None:
        """One pass: resync the booking (every ``resync_interval``), evict victims, write
        statuses, update metrics."""
        now = self.clock.monotonic()
        if now - self._resynced_at >= self.resync_interval:
            self._resynced_at = now
            self.admission.resync(self.pods.list())
        else:
            self.admission.tick()
        for victim, preemptor in self.admission.take_evictions():
            self._spawn(self.evict(victim, preemptor))
        for item in list(self.admission.book.admitted.values()):
            config = self.admission.queues.get(item.queue)
            if config is not None and config.stop_policy == "HoldAndDrain" and item.key not in self._evicted:
                self._spawn(self.evict(item, "", reason=f"queue {item.queue} drains (stopPolicy HoldAndDrain)"))
        for queue, seconds in self.admission.take_admissions():
            self.metrics.tta.labels(queue).observe(seconds)
        await self.write_statuses()

    def pending_counts(self) -> dict[str, int]:
        """Waiting groups per queue (kept up to date from the pod events)."""
        counts: dict[str, int] = {}
        for key, queue in self._pending_groups.items():
            if queue is not None and key not in self.admission.book.admitted:
                counts[queue] = counts.get(queue, 0) + 1
        return counts

    async def write_invalid_statuses(self) -> None:
        """Queues admission left out (their spec cannot be parsed): ``Active=False`` with reason
        ``InvalidSpec`` and the problem, and a Warning Event, once per problem."""
        for name, problem in self.admission.invalid.items():
            obj = self.queues.get(name)
            if obj is None or self._reported_invalid.get(name) == problem:
                continue
            condition = {"type": "Active", "status": "False", "reason": "InvalidSpec", "message": problem,
                         "lastTransitionTime": format_timestamp(self.clock.now())}
            try:
                await self.client.patch(QUEUE_API, "queues", name, {"status": {"conditions": [condition]}},
                                        subresource="status")
                await self.events.record(obj, "Warning", "InvalidSpec", f"Queue {name} admits nothing: {problem}")
            except ApiError as error:
                if not error.not_found:
                    log.warning("queue %s status: %s", name, error)
                continue
            self._reported_invalid[name] = problem
            self._written.pop(name, None)  # once fixed, its status is written afresh
        for name in [n for n in self._reported_invalid if n not in self.admission.invalid]:
            del self._reported_invalid[name]

    async def write_statuses(self) -> None:
        await self.write_invalid_statuses()
        book = self.admission.book
        counts = self.pending_counts()
        now = format_timestamp(self.clock.now())
        for name in list(book.queues):
            obj = self.queues.get(name)
            if obj is None:
                continue
            status = queue_status(book, name, pending=counts.get(name, 0), old=obj.get("status"), now=now)
            self._export(name, status)
            comparable = {k: v for k, v in status.items() if k != "conditions"}
            old = {k: v for k, v in (obj.get("status") or {}).items() if k != "conditions"}
            same_condition = [(c.get("type"), c.get("status")) for c in status["conditions"]] == [
                (c.get("type"), c.get("status")) for c in (obj.get("status") or {}).get("conditions") or []]
            if (old == comparable and same_condition) or self._written.get(name) == status:
                continue
            try:
                await self.client.patch(QUEUE_API, "queues", name, {"status": status}, subresource="status")
                self._written[name] = status
            except ApiError as error:
                if not error.not_found:
                    log.warning("queue %s status: %s", name, error)

    def _export(self, name: str, status: Mapping[str, Any]) -> None:
        self.metrics.pending.labels(name).set(status["pending"])
        self.metrics.admitted.labels(name).set(status["admitted"])
        self.metrics.share.labels(name).set(status["fairSharing"]["weightedShare"])
        book = self.admission.book
        for (flavor, resource) in book.queues[name].flavor_resources():
            self.metrics.usage.labels(name, flavor, resource).set(book.used(name, (flavor, resource)) / 1000)
            self.metrics.borrowed.labels(name, flavor, resource).set(book.borrowed(name, (flavor, resource)) / 1000)

    # -- eviction ------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def evict(self, victim: Admitted, preemptor: str, *, reason: str = "") -> None:
        """Delete the victim group's pods gracefully, each with a ``Preempted`` Event."""
        if victim.key in self._evicted:
            return
        self._evicted.add(victim.key)
        usage = ", ".join(f"{fr[0]}/{fr[1]}={fmt_milli(a, fr[1])}" for fr, a in sorted(victim.usage.items()))
        message = (reason or f"Preempted by {preemptor} to reclaim quota of queue {victim.queue}") + f" ({usage})"
        for pod in self.pods.by_index(GROUP_INDEX, victim.key):
            if _terminal(pod):
                continue
            metadata = pod.get("metadata") or {}
            try:
                await self.events.record(pod, "Warning", "Preempted", message)
                await self.client.delete("v1", "pods", str(metadata.get("name")), metadata.get("namespace"))
            except ApiError as error:
                if not error.not_found:
                    log.warning("cannot evict %s/%s: %s", metadata.get("namespace"), metadata.get("name"), error)
        if not self.pods.by_index(GROUP_INDEX, victim.key):
            self.admission.release(victim.key)
            self.on_change()
