"""The live scheduler service: informers in, bindings out.

``SchedulerService`` is the I/O shell around the :class:`~corral.scheduler.cycle.Scheduler`
brain. It runs as a component of ``corral up`` (``async start()``/``async stop()``) or
alone (``corral scheduler --kubeconfig``), always through the API:

- **Informers** on nodes, pods, PodGroups and PriorityClasses feed the brain's handlers;
  the snapshot follows their events incrementally and is never re-listed in steady state.
- **The loop** takes one decision at a time and yields to the event loop between
  cycles, so watch events and bind responses are handled while the queue drains.
- **Binding** (the Bind extension point, :class:`Binder`; default ``pods/binding`` with
  annotation ``corral.dev/gpu-devices`` in the same request) runs concurrently, bounded
  by ``bind_concurrency``. A gang is reserved whole, then its members are bound; a bind
  that fails for a passing reason (conflict, 5xx, timeout) is retried with the
  reservation kept, so the gang completes on the devices reserved for it; a member that
  cannot be bound (it was deleted or bound elsewhere) is unreserved and the group goes
  back to the queue (:meth:`~corral.scheduler.cycle.Scheduler.bind_failed`).
- **Status**: pending pods get ``PodScheduled=False`` with reason ``Unschedulable`` and
  kube-scheduler's message (``0/5000 nodes are available: ...``), written only when it
  changes; PodGroups get ``status.phase``, member counts and a ``Scheduled`` condition.
- **Preemption**: victims are deleted gracefully with an Event (``Preempted``) on each;
  the preemptors get ``status.nominatedNodeName`` and an Event (``Preempting``); they are
  bound when the victims are gone.
- **Admission** (quota) is the :class:`~corral.scheduler.admission.Admission` passed in;
  the default admits everything.
- **Objects it cannot handle**: a pod (or PodGroup) the brain cannot parse is quarantined
  (:mod:`.cycle`): its pods get ``PodScheduled=False`` with reason ``InvalidPod`` (or
  ``InvalidPodGroup``) and a Warning Event with the same reason naming the field and value;
  the loop carries on with the other pods. Its loops run under a
  :class:`~corral.util.supervise.Supervisor`: one that crashes anyway is logged, restarted
  with backoff and reported by :meth:`SchedulerService.health_checks` (``/readyz``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from corral.api.registry import Obj
from corral.client import ApiClient, ApiError, EventRecorder, Informer
from corral.scheduler.admission import Admission, AllowAll
from corral.scheduler.cycle import (
    BindDecision,
    Binding,
    Decision,
    PreemptDecision,
    Scheduler,
    UnschedulableDecision,
    pod_key,
)
from corral.scheduler.fastbind import HttpBinder
from corral.scheduler.framework.profile import ConfigError, Profile, profiles_from_config
from corral.scheduler.framework.runtime import Framework
from corral.scheduler.pods import GPU_DEVICES_ANNOTATION, SCHEDULER_NAME, group_name, meta, min_member, status
from corral.scheduler.queue import SchedulingQueue
from corral.scheduler.sampling import SampledFramework
from corral.util.clock import Clock, SystemClock, format_timestamp
from corral.util.latest import LatestWriter
from corral.util.supervise import HealthCheck, Supervisor, cancel_all

log = logging.getLogger(__name__)

PODGROUP_API = "corral.dev/v1alpha1"
GROUP_INDEX = "schedlive-pod-group"


def _group_of(pod: Obj) -> list[str]:
    """Index of pods by ``namespace/podgroup`` (none for bare pods)."""
    group = group_name(pod)
    return [f"{meta(pod).get('namespace') or 'default'}/{group}"] if group else []


class Binder(Protocol):
    """The Bind extension point: write one binding; raise ``ApiError`` on failure."""

    async def bind(self, binding: Binding) -> None: ...


class ApiBinder:
    """``POST pods/binding`` with the device assignment in the same request."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def bind(self, binding: Binding) -> None:
        annotations = {GPU_DEVICES_ANNOTATION: binding.devices} if binding.devices else None
        uid = meta(binding.pod).get("uid")
        await self.client.bind(binding.namespace, binding.name, binding.node, annotations, uid=uid)


@dataclass
class SchedulerConfig:
    """``corral up --scheduler-config FILE`` / ``corral scheduler --config FILE``.

    The file is a SchedulerConfiguration (schedcore's profile format, see
    :mod:`corral.scheduler.framework.profile`) plus the live service's knobs::

        apiVersion: corral.dev/v1alpha1
        kind: SchedulerConfiguration
        profiles: [...]                  # plugins and weights; default profile when absent
        bindConcurrency: 64              # bindings in flight at once
        bindRetries: 3                   # retries of a failing binding, reservation kept
        preemption: true
        podInitialBackoffSeconds: 1
        podMaxBackoffSeconds: 10
        unschedulableRetrySeconds: 60    # parked groups are retried at least this often
        recordScheduledEvents: true      # a "Scheduled" Event per bound pod
        seed: 0                          # the cycle RNG's seed (reproducible decisions)
        percentageOfNodesToScore: 10     # score this share of feasible nodes (default: adaptive,
                                         # as kube-scheduler: 50% - nodes/125, at least 5% and 100 nodes)
        nominationTimeoutSeconds: 300    # a preemptor whose victims are not gone by then gives its
                                         # reserved room back and is evaluated again
    """

    profile: Profile = field(default_factory=Profile.default)
    bind_concurrency: int = 64
    bind_retries: int = 3
    preemption: bool = True
    initial_backoff: float = 1.0
    max_backoff: float = 10.0
    unschedulable_retry: float = 60.0
    record_scheduled_events: bool = True
    seed: int = 0
    percentage_of_nodes_to_score: float | None = None
    nomination_timeout: float = 300.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], scheduler_name: str = SCHEDULER_NAME) -> SchedulerConfig:
        profiles = profiles_from_config(data)
        profile = profiles.get(scheduler_name) or (next(iter(profiles.values())) if profiles else Profile.default())
        known = {"apiVersion", "kind", "profiles", "bindConcurrency", "bindRetries", "preemption",
                 "podInitialBackoffSeconds", "podMaxBackoffSeconds", "unschedulableRetrySeconds",
                 "recordScheduledEvents", "seed", "percentageOfNodesToScore", "nominationTimeoutSeconds"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown field in SchedulerConfiguration (known: {', '.join(sorted(known))})")

        def number(name: str, default: float, minimum: float) -> float:
            value = data.get(name, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
                raise ConfigError(f"{name}: must be a number >= {minimum}, not {value!r}")
            return float(value)

        def flag(name: str, default: bool) -> bool:
            value = data.get(name, default)
            if not isinstance(value, bool):
                raise ConfigError(f"{name}: must be true or false, not {value!r}")
            return value

        return cls(
            profile=profile,
            bind_concurrency=int(number("bindConcurrency", 64, 1)),
            bind_retries=int(number("bindRetries", 3, 0)),
            preemption=flag("preemption", True),
            initial_backoff=number("podInitialBackoffSeconds", 1.0, 0),
            max_backoff=number("podMaxBackoffSeconds", 10.0, 0),
            unschedulable_retry=number("unschedulableRetrySeconds", 60.0, 1),
            record_scheduled_events=flag("recordScheduledEvents", True),
            seed=int(number("seed", 0, 0)),
            percentage_of_nodes_to_score=(number("percentageOfNodesToScore", 100, 1)
                                          if "percentageOfNodesToScore" in data else None),
            nomination_timeout=number("nominationTimeoutSeconds", 300.0, 1),
        )

    @classmethod
    def load(cls, path: str | Path, scheduler_name: str = SCHEDULER_NAME) -> SchedulerConfig:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as error:
            raise ConfigError(f"{path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        try:
            return cls.from_dict(data, scheduler_name)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None


def default_framework(profile: Profile, percentage_of_nodes_to_score: float | None = None) -> Framework:
    """The profile's plugins, scoring a sample of the feasible nodes on big clusters (see :mod:`.sampling`)."""
    from corral.scheduler.plugins import default_registry

    return SampledFramework(profile, default_registry(), percentage=percentage_of_nodes_to_score)


INVALID_REASONS = ("InvalidPod", "InvalidPodGroup")
"""Reasons of pods the scheduler quarantined (:mod:`.cycle`): a Warning Event with the same reason says why."""


def _transient(error: ApiError) -> bool:
    return error.code in (409, 429) or error.code >= 500


class SchedulerService:
    """corral's scheduler as a service (see the module docstring)."""

    def __init__(
        self,
        client: ApiClient,
        *,
        config: SchedulerConfig | None = None,
        clock: Clock | None = None,
        admission: Admission | None = None,
        binder: Binder | None = None,
        scheduler_name: str = SCHEDULER_NAME,
        event_backlog: int = 5000,
        event_workers: int = 4,
        scheduled_event_backlog: int = 1000,
    ) -> None:
        self._n_event_workers = event_workers
        self.client = client
        self.config = config or SchedulerConfig()
        self.clock = clock or SystemClock()
        self._own_binder: HttpBinder | None = None
        if binder is None:
            try:
                self._own_binder = HttpBinder.for_client(client)
            except ValueError:
                binder = ApiBinder(client)
        self.binder: Binder = binder or self._own_binder or ApiBinder(client)
        queue = SchedulingQueue(clock=self.clock, initial_backoff=self.config.initial_backoff,
                                max_backoff=self.config.max_backoff,
                                unschedulable_timeout=self.config.unschedulable_retry)
        self.scheduler = Scheduler(
            framework=default_framework(self.config.profile, self.config.percentage_of_nodes_to_score), clock=self.clock, scheduler_name=scheduler_name,
            admission=admission or AllowAll(), preemption=self.config.preemption, seed=self.config.seed, queue=queue,
            nomination_timeout=self.config.nomination_timeout,
        )
        self.events = EventRecorder(client, "corral-scheduler", clock=self.clock)
        self.nodes = Informer(client, "v1", "nodes")
        self.pods = Informer(client, "v1", "pods")
        self.podgroups = Informer(client, PODGROUP_API, "podgroups")
        self.classes = Informer(client, "scheduling.k8s.io/v1", "priorityclasses")
        self._bind_slots = asyncio.Semaphore(self.config.bind_concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()
        # the loop, the status writer and the Event writers: restarted if they crash, on /readyz
        self.supervisor = Supervisor("scheduler", clock=self.clock)
        self._messages: dict[str, str] = {}
        self._condition_writer: LatestWriter[str, tuple[Obj, Obj]] = LatestWriter(self._write_pod_scheduled, self._spawn)
        self._dirty_groups: set[str] = set()
        self._group_messages: dict[str, tuple[str, str]] = {}
        self._timeouts: dict[str, str] = {}  # namespace/podgroup -> why its scheduleTimeoutSeconds ran out
        self._wake = asyncio.Event()
        # Events explain, never drive: they go out from a bounded backlog at a bounded rate of
        # concurrency (like kube-scheduler's event broadcaster), so a burst of bindings is
        # not slowed down by as many Event writes; when the backlog is full they are dropped.
        # "Scheduled" Events (one per bound pod, the bulk of them) are also deferred: they are
        # written only while the scheduler is idle (nothing to place, no binding in flight),
        # from a backlog of ``scheduled_event_backlog``; past that they are dropped and counted.
        self._event_backlog: asyncio.Queue[tuple[Obj, str, str, str]] = asyncio.Queue(maxsize=event_backlog)
        self._deferred_events: collections.deque[tuple[Obj, str, str, str]] = collections.deque()
        self._deferred_limit = scheduled_event_backlog
        self.events_dropped = 0
        self.events_written = 0
        self._binds_in_flight = 0
        self._loop_idle = False
        self.bound = 0
        self.first_bind_at: float | None = None
        self.last_bind_at: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.scheduler
        self.classes.add_handler(s.priority_class_upsert, lambda _o, n: s.priority_class_upsert(n),
                                 s.priority_class_delete)
        self.podgroups.add_handler(self._on_podgroup, lambda _o, n: self._on_podgroup(n), s.podgroup_delete)
        self.nodes.add_handler(self._on_node, lambda _o, n: self._on_node(n), self._on_node_delete)
        self.pods.add_indexer(GROUP_INDEX, _group_of)
        self.pods.add_handler(self._on_pod, lambda _o, n: self._on_pod(n), self._on_pod_delete)
        for informer in (self.classes, self.podgroups, self.nodes):
            await informer.start()
        for informer in (self.classes, self.podgroups, self.nodes):
            await informer.wait_synced()
        await self.pods.start()
        await self.pods.wait_synced()
        for i in range(self._n_event_workers):
            self.supervisor.spawn(f"events-{i}", self._event_worker)
        self.supervisor.spawn("events-deferred", self._deferred_event_worker)
        self.supervisor.spawn("loop", self._loop)
        self.supervisor.spawn("podgroup-status", self._status_loop)

    def health_checks(self) -> dict[str, HealthCheck]:
        """``/readyz`` fails while one of the scheduler's loops is crash-looping."""
        return {"scheduler": self.supervisor.check}

    async def stop(self) -> None:
        self.scheduler.q.close()
        self._wake.set()
        await self.supervisor.stop()
        await cancel_all(self._tasks)
        self._tasks.clear()
        for informer in (self.pods, self.nodes, self.podgroups, self.classes):
            await informer.stop()
        if self._own_binder is not None:
            await self._own_binder.close()

    def record_event(self, obj: Obj, event_type: str, reason: str, message: str, *, deferred: bool = False) -> None:
        """Queue an Event (dropped, and counted, when the backlog is full); ``deferred`` ones
        wait until the scheduler is idle."""
        if deferred:
            if len(self._deferred_events) >= self._deferred_limit:
                self.events_dropped += 1
            else:
                self._deferred_events.append((obj, event_type, reason, message))
            return
        try:
            self._event_backlog.put_nowait((obj, event_type, reason, message))
        except asyncio.QueueFull:
            self.events_dropped += 1

    @property
    def idle(self) -> bool:
        """Nothing to place and no binding in flight."""
        return self._loop_idle and not self._binds_in_flight

    async def _event_worker(self) -> None:
        while True:
            obj, event_type, reason, message = await self._event_backlog.get()
            await self._write_event(obj, event_type, reason, message)

    async def _write_event(self, obj: Obj, event_type: str, reason: str, message: str) -> None:
        await self.events.record(obj, "Warning" if event_type == "Warning" else "Normal", reason, message)
        self.events_written += 1

    async def _deferred_event_worker(self) -> None:
        """Hand deferred Events to the writers while the scheduler is idle, a few at a time so
        that writing stops soon after work arrives."""
        while True:
            if not self._deferred_events or not self.idle:
                await self.clock.sleep(0.1)
                continue
            if self._event_backlog.qsize() >= 2 * max(1, self._n_event_workers):
                await asyncio.sleep(0.005)
                continue
            self._event_backlog.put_nowait(self._deferred_events.popleft())

    # -- informer handlers (they only update the brain and wake the loop) ----------------------

    def _poke(self) -> None:
        self._wake.set()

    def _on_node(self, node: Obj) -> None:
        self.scheduler.node_upsert(node)
        self._poke()

    def _on_node_delete(self, node: Obj) -> None:
        self.scheduler.node_delete(node)
        self._poke()

    def _report_quarantines(self) -> None:
        """Objects the brain quarantined (it cannot parse them): condition and Event, once each."""
        for decision in self.scheduler.take_reports():
            self._spawn(self._report_unschedulable(decision))

    def _on_pod(self, pod: Obj) -> None:
        self.scheduler.pod_upsert(pod)
        self._report_quarantines()
        group = group_name(pod)
        if group:
            self._dirty_groups.add(f"{meta(pod).get('namespace') or 'default'}/{group}")
        # Work the event creates reaches the loop through the queue (which wakes its waiter);
        # only nominations made ready need a poke. Waking the loop for every pod event (three
        # per bound pod) cost more than the rest of the event's handling.
        if self.scheduler.has_ready():
            self._poke()

    def _on_pod_delete(self, pod: Obj) -> None:
        self.scheduler.pod_delete(pod)
        self._messages.pop(pod_key(pod), None)
        self._condition_writer.forget(pod_key(pod))
        group = group_name(pod)
        if group:
            self._dirty_groups.add(f"{meta(pod).get('namespace') or 'default'}/{group}")
        if self.scheduler.has_ready():
            self._poke()

    def _on_podgroup(self, obj: Obj) -> None:
        self.scheduler.podgroup_upsert(obj)
        self._report_quarantines()
        self._dirty_groups.add(f"{meta(obj).get('namespace') or 'default'}/{meta(obj).get('name')}")
        self._poke()

    # -- the loop ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        queue = self.scheduler.q
        while True:
            decision = self.scheduler.schedule_next()
            if decision is None:
                self._loop_idle = True
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                popper = asyncio.ensure_future(queue.pop())
                done, pending = await asyncio.wait({waiter, popper}, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                if popper in done:
                    key = popper.result()
                    if key is None:
                        return
                    decision = self.scheduler.schedule_group(key)
                    if decision is not None:
                        self._execute(decision)
                continue
            self._execute(decision)
            await asyncio.sleep(0)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduler task failed", exc_info=task.exception())

    def _execute(self, decision: Decision) -> None:
        self._loop_idle = False
        if isinstance(decision, BindDecision):
            self._binds_in_flight += 1
            self._spawn(self._bind_group(decision))
        elif isinstance(decision, UnschedulableDecision):
            self._spawn(self._report_unschedulable(decision))
        elif isinstance(decision, PreemptDecision):
            self._spawn(self._preempt(decision))

    # -- binding -----------------------------------------------------------------------------

    async def _bind_one(self, binding: Binding) -> str:
        """``"ok"``, ``"gone"`` (pod deleted or bound elsewhere) or ``"failed"``."""
        for attempt in range(self.config.bind_retries + 1):
            try:
                async with self._bind_slots:
                    await self.binder.bind(binding)
                return "ok"
            except ApiError as error:
                if error.not_found:
                    return "gone"
                if error.conflict and await self._bound_elsewhere(binding):
                    return "gone"
                if not _transient(error) or attempt == self.config.bind_retries:
                    log.warning("binding %s to %s failed: %s", binding.key, binding.node, error)
                    return "failed"
            except (TimeoutError, OSError) as error:
                if attempt == self.config.bind_retries:
                    log.warning("binding %s to %s failed: %s", binding.key, binding.node, error)
                    return "failed"
            await self.clock.sleep(min(2.0, 0.05 * 2**attempt))
        return "failed"

    async def _bound_elsewhere(self, binding: Binding) -> bool:
        try:
            current = await self.client.get("v1", "pods", binding.name, binding.namespace)
        except ApiError as error:
            return error.not_found
        return bool((current.get("spec") or {}).get("nodeName") or (current.get("metadata") or {}).get("deletionTimestamp"))

    async def _bind_group(self, decision: BindDecision) -> None:
        try:
            if len(decision.bindings) == 1:  # a bare pod: no gather, one task less per pod
                outcomes = [await self._bind_one(decision.bindings[0])]
            else:
                outcomes = list(await asyncio.gather(*(self._bind_one(b) for b in decision.bindings)))
        finally:
            self._binds_in_flight -= 1
        failed = [b.key for b, o in zip(decision.bindings, outcomes, strict=True) if o != "ok"]
        gone = [b.key for b, o in zip(decision.bindings, outcomes, strict=True) if o == "gone"]
        now = self.clock.monotonic()
        for binding, outcome in zip(decision.bindings, outcomes, strict=True):
            if outcome == "ok":
                self.scheduler.bind_succeeded(binding.key)
                self._messages.pop(binding.key, None)
                self.bound += 1
                if self.first_bind_at is None:
                    self.first_bind_at = now
                self.last_bind_at = now
        if failed:
            self.scheduler.bind_failed(decision.group, failed, gone=gone)
            self._poke()
        if decision.podgroup is not None:
            md = meta(decision.podgroup)
            self._dirty_groups.add(f"{md.get('namespace') or 'default'}/{md.get('name')}")
        if self.config.record_scheduled_events:
            for binding, outcome in zip(decision.bindings, outcomes, strict=True):
                if outcome == "ok":
                    where = f"{binding.node}" + (f" (GPUs {binding.devices})" if binding.devices else "")
                    self.record_event(binding.pod, "Normal", "Scheduled",
                                      f"Successfully assigned {binding.key} to {where}", deferred=True)

    # -- status ----------------------------------------------------------------------------------

    async def _write_pod_scheduled(self, key: str, wanted: tuple[Obj, Obj]) -> None:
        pod, condition = wanted
        md = meta(pod)
        try:
            await self.client.patch("v1", "pods", str(md.get("name")), {"status": {"conditions": [condition]}},
                                    namespace=md.get("namespace"), subresource="status")
        except ApiError as error:
            if not error.not_found:
                log.warning("cannot write PodScheduled on %s: %s", key, error)
            if self._messages.get(key) == f"{condition['reason']}: {condition['message']}":
                self._messages.pop(key, None)  # not written: the next decision writes it again
            return
        if condition["reason"] == "Unschedulable":
            self.record_event(pod, "Warning", "FailedScheduling", str(condition["message"]))
        elif condition["reason"] in INVALID_REASONS:
            self.record_event(pod, "Warning", str(condition["reason"]), str(condition["message"]))

    async def _report_unschedulable(self, decision: UnschedulableDecision) -> None:
        now = format_timestamp(self.clock.now())
        for pod in decision.pods:
            key = pod_key(pod)
            text = f"{decision.reason}: {decision.message}"
            if self._messages.get(key) == text:
                continue
            self._messages[key] = text
            condition = {"type": "PodScheduled", "status": "False", "reason": decision.reason,
                         "message": decision.message, "lastTransitionTime": now}
            # one write per pod at a time, the latest decision last (see corral.util.latest)
            self._condition_writer.submit(key, (pod, condition))
        if decision.podgroup is not None and decision.reason == "InvalidPodGroup":
            md = meta(decision.podgroup)
            group = f"{md.get('namespace') or 'default'}/{md.get('name')}"
            if self._group_messages.get(group) != (decision.reason, decision.message):
                self.record_event(decision.podgroup, "Warning", decision.reason, decision.message)
        if decision.podgroup is not None:
            md = meta(decision.podgroup)
            self._dirty_groups.add(f"{md.get('namespace') or 'default'}/{md.get('name')}")
            self._group_messages[f"{md.get('namespace') or 'default'}/{md.get('name')}"] = (
                decision.reason, decision.message)

    async def _preempt(self, decision: PreemptDecision) -> None:
        preemptor = decision.preemptors[0].pod
        who = f"{pod_key(preemptor)}" if len(decision.preemptors) == 1 else f"PodGroup {decision.group.partition(':')[2]}"
        for victim in decision.victims:
            node = (victim.get("spec") or {}).get("nodeName")
            await self.events.record(victim, "Warning", "Preempted",
                                     f"Preempted by {who} (priority {decision.priority}) on node {node}")
            md = meta(victim)
            try:
                await self.client.delete("v1", "pods", str(md.get("name")), md.get("namespace"), uid=md.get("uid"))
            except ApiError as error:
                if error.not_found or error.conflict:
                    self.scheduler.pod_delete(victim)
                    self._poke()
                else:
                    log.warning("cannot evict %s: %s", pod_key(victim), error)
        for binding in decision.preemptors:
            with contextlib.suppress(ApiError):
                await self.client.patch("v1", "pods", binding.name, {"status": {"nominatedNodeName": binding.node}},
                                        namespace=binding.namespace, subresource="status")
            await self.events.record(binding.pod, "Normal", "Preempting",
                                     f"{decision.message}; nominated node {binding.node}")

    async def _expire(self) -> None:
        """Act on waits that ran out (:meth:`Scheduler.expire`): Events, PodGroup status, and
        ``nominatedNodeName`` cleared on preemptors whose reservation was given back."""
        expired = self.scheduler.expire()
        if not expired:
            return
        self._poke()
        for item in expired:
            if item.podgroup is not None:
                md = meta(item.podgroup)
                key = f"{md.get('namespace') or 'default'}/{md.get('name')}"
                if item.kind == "ScheduleTimeout":
                    self._timeouts[key] = item.message
                self._dirty_groups.add(key)
                self.record_event(item.podgroup, "Warning", item.kind, item.message)
            for binding in item.released:
                if item.podgroup is None:
                    self.record_event(binding.pod, "Warning", item.kind, item.message)
                with contextlib.suppress(ApiError):
                    await self.client.patch("v1", "pods", binding.name, {"status": {"nominatedNodeName": None}},
                                            namespace=binding.namespace, subresource="status")

    async def _status_loop(self) -> None:
        while True:
            await self.clock.sleep(0.5)
            try:
                await self._expire()
            except Exception:  # never let one bad object stop status and expiry
                log.exception("scheduler expiry")
            dirty, self._dirty_groups = self._dirty_groups, set()
            for key in sorted(dirty):
                try:
                    await self._write_group_status(key)
                except ApiError as error:
                    if not error.not_found:
                        log.warning("podgroup %s status: %s", key, error)
                except Exception:  # one PodGroup it cannot handle must not stop the others' status
                    log.exception("podgroup %s status", key)

    async def _write_group_status(self, key: str) -> None:
        obj = self.podgroups.get(key)
        if obj is None:
            return
        namespace, _, name = key.partition("/")
        members = self.pods.by_index(GROUP_INDEX, key)
        scheduled = sum(1 for p in members if (p.get("spec") or {}).get("nodeName"))
        phases = [status(p).get("phase") for p in members]
        running = phases.count("Running")
        succeeded = phases.count("Succeeded")
        failed = phases.count("Failed")
        need = min_member(obj)
        if members and succeeded == len(members):
            phase = "Succeeded"
        elif failed and failed + succeeded == len(members) and members:
            phase = "Failed"
        elif running >= need:
            phase = "Running"
        elif scheduled >= need:
            phase = "Scheduled"
        elif key in self._timeouts or (key in self._group_messages and self._group_messages[key][0] == "Unschedulable"):
            phase = "Unschedulable"
        else:
            phase = "Pending"
        now = format_timestamp(self.clock.now())
        if scheduled >= need:
            condition = {"type": "Scheduled", "status": "True", "reason": "Scheduled",
                         "message": f"{scheduled}/{len(members)} pods bound", "lastTransitionTime": now}
            self._group_messages.pop(key, None)
            self._timeouts.pop(key, None)
        else:
            reason, message = self._group_messages.get(key, ("Pending", "waiting to be scheduled"))
            if key in self._timeouts:
                # it keeps waiting, but the condition says the timeout ran out, and why it waits
                reason, message = "ScheduleTimeout", f"{self._timeouts[key]}; still waiting: {message}"
            condition = {"type": "Scheduled", "status": "False", "reason": reason, "message": message,
                         "lastTransitionTime": now}
        new_status = {"phase": phase, "scheduled": scheduled, "running": running, "succeeded": succeeded,
                      "failed": failed, "conditions": [condition]}
        old = dict(obj.get("status") or {})
        old_condition = (old.get("conditions") or [{}])[0]
        same = all(old.get(k) == new_status[k] for k in ("phase", "scheduled", "running", "succeeded", "failed")) \
            and old_condition.get("status") == condition["status"] and old_condition.get("message") == condition["message"]
        if same:
            return
        if old_condition.get("status") == condition["status"] and old_condition.get("lastTransitionTime"):
            condition["lastTransitionTime"] = old_condition["lastTransitionTime"]
        await self.client.patch(PODGROUP_API, "podgroups", name, {"status": new_status}, namespace=namespace,
                                subresource="status")
