"""The live scheduler's brain: cluster state in, decisions out, no I/O.

:class:`Scheduler` is fed the informers' events (nodes, pods, PodGroups, PriorityClasses)
and answers :meth:`Scheduler.schedule_next` with one :class:`Decision` at a time. The
service (:mod:`corral.scheduler.service`) does the I/O: it writes bindings, status,
deletions and Events, and reports bind outcomes back. Because the brain is synchronous
and pure of I/O, the property tests and the simulator drive the very same code.

State and invariants:

- **The snapshot** (schedcore's :class:`~corral.scheduler.cache.snapshot.Snapshot`) holds
  every pod that holds resources: bound pods seen in the informer, and pods *assumed* by
  this scheduler (reserved, binding in flight). Node changes are batched and applied
  before the next cycle in one rebuild (a watch burst of 5,000 nodes costs one build);
  pod changes are applied incrementally (assume/forget). Nothing is ever re-listed.
- **Pending groups**: pods that are ours (``schedulerName`` empty or ``corral``), unbound
  and not terminating, keyed by group (:func:`~corral.scheduler.pods.group_key`). A bare
  pod is a group of one; a PodGroup waits until ``minMember`` pods exist (pending plus
  already bound).
- **One decision per group**: all pending members are placed by
  :func:`~corral.scheduler.framework.runtime.schedule_group` (assumed whole), admitted by
  the :class:`~corral.scheduler.admission.Admission` seam, then bound; or none are.
- **Preemption**: when a group fits nowhere for reasons eviction can fix, the cheapest
  lower-priority victims are chosen (:mod:`corral.scheduler.preemption`); victims leave
  the snapshot at once and the preemptor is reserved in their place (a *nomination*), so
  nothing else takes the room and nothing is preempted twice. The preemptor is bound
  when every victim is gone.
- **Quarantine**: a pending pod is parsed once, when its event arrives (status-only
  changes are not parsed again). A pod the scheduler cannot parse, or a PodGroup with a
  malformed spec, never enters the queue: it is *quarantined*, and reported once through
  :meth:`Scheduler.take_reports` (``PodScheduled=False``, reason ``InvalidPod`` /
  ``InvalidPodGroup``, with the field and value). An update to the object parses it again,
  so a fixed object is scheduled. A cycle that raises anyway (a bug, or a case no parse
  foresaw) is caught: that group is reported ``InvalidPod`` and retried with backoff, the
  scheduler carries on with the others.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from corral.api.registry import Obj
from corral.scheduler.admission import Admission, AllowAll, GroupInfo
from corral.scheduler.cache.snapshot import NodeSpec, Snapshot, node_spec_from_obj
from corral.scheduler.framework.cycle_state import CycleState
from corral.scheduler.framework.interfaces import Diagnosis
from corral.scheduler.framework.runtime import Framework, schedule_group
from corral.scheduler.framework.status import Code
from corral.scheduler.framework.types import (
    DeviceAssignment,
    Placement,
    PodRequest,
    PodSpecError,
    parse_gpu_devices,
    pod_request_from_obj,
)
from corral.scheduler.pods import (
    SCHEDULER_NAME,
    class_value,
    creation_seconds,
    group_key,
    group_priority,
    holds_resources,
    is_pending,
    labels,
    meta,
    min_member,
    pod_priority,
    podgroup_problem,
    spec,
    split_group_key,
)
from corral.scheduler.preemption import PreemptionPlan, VictimUnit, plan_preemption
from corral.scheduler.queue import SchedulingQueue
from corral.util.clock import Clock
from corral.util.supervise import describe

log = logging.getLogger(__name__)

QUEUE_LABEL = "corral.dev/queue"


def _status_only_change(old: Obj, new: Obj) -> bool:
    """Whether a pod update changed only its status (and resourceVersion/managedFields)."""
    if old.get("spec") != new.get("spec"):
        return False
    before, after = meta(old), meta(new)
    return all(before.get(k) == after.get(k) for k in ("labels", "annotations", "deletionTimestamp", "uid"))


def pod_key(pod: Obj) -> str:
    md = meta(pod)
    return f"{md.get('namespace') or 'default'}/{md.get('name')}"


# -- decisions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """One pod to bind: where, and with which devices (``corral.dev/gpu-devices``)."""

    pod: Obj
    key: str
    node: str
    devices: str

    @property
    def namespace(self) -> str:
        return self.key.partition("/")[0]

    @property
    def name(self) -> str:
        return self.key.partition("/")[2]


@dataclass(frozen=True)
class BindDecision:
    group: str
    bindings: tuple[Binding, ...]
    podgroup: Obj | None = None
    nominated: bool = False


@dataclass(frozen=True)
class UnschedulableDecision:
    """The group waits: its pods get ``PodScheduled=False`` with ``reason`` and ``message``."""

    group: str
    pods: tuple[Obj, ...]
    reason: str
    message: str
    podgroup: Obj | None = None
    diagnosis: Diagnosis | None = None


@dataclass(frozen=True)
class PreemptDecision:
    """Evict ``victims`` gracefully; the preemptors are reserved on ``nominated`` nodes."""

    group: str
    preemptors: tuple[Binding, ...]
    victims: tuple[Obj, ...]
    priority: int
    message: str
    podgroup: Obj | None = None


Decision = BindDecision | UnschedulableDecision | PreemptDecision


@dataclass(frozen=True)
class Expiry:
    """A wait that ran out (:meth:`Scheduler.expire`): ``kind`` is ``ScheduleTimeout`` (a
    PodGroup not placed within its ``scheduleTimeoutSeconds``) or ``NominationExpired`` (a
    preemptor whose victims did not go within ``nomination_timeout``). ``released`` holds the
    preemptors whose reserved room was given back (their ``nominatedNodeName`` is stale)."""

    kind: str
    group: str
    message: str
    podgroup: Obj | None = None
    released: tuple[Binding, ...] = ()


# -- bookkeeping ----------------------------------------------------------------------------


@dataclass
class _Held:
    """A pod that holds resources: bound (seen in the informer) or assumed by us."""

    req: PodRequest
    node: str
    devices: tuple[DeviceAssignment, ...]
    group: str
    priority: int
    obj: Obj
    assumed: bool = False
    nominated: bool = False


@dataclass
class _Nomination:
    group: str
    bindings: tuple[Binding, ...]
    victims: set[str]
    podgroup: Obj | None
    since: float = 0.0  # clock.monotonic() when the victims were chosen


@dataclass
class SchedulerStats:
    cycles: int = 0
    scheduled_groups: int = 0
    scheduled_pods: int = 0
    unschedulable: int = 0
    preemptions: int = 0
    bind_failures: int = 0
    snapshot_rebuilds: int = 0


@dataclass
class Scheduler:
    """See the module docstring. Feed events, call :meth:`schedule_next`, report bind outcomes."""

    framework: Framework
    clock: Clock
    scheduler_name: str = SCHEDULER_NAME
    admission: Admission = field(default_factory=AllowAll)
    preemption: bool = True
    seed: int = 0
    queue: SchedulingQueue | None = None
    stats: SchedulerStats = field(default_factory=SchedulerStats)
    nomination_timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.queue is None:
            self.queue = SchedulingQueue(clock=self.clock)
        self.rng = np.random.default_rng(self.seed)
        self.snapshot = Snapshot([])
        self._node_specs: dict[str, NodeSpec] = {}
        self._node_dirty = False
        self._held: dict[str, _Held] = {}
        self._group_held: dict[str, set[str]] = {}
        self._held_priorities: Counter[int] = Counter()
        self._pending: dict[str, dict[str, Obj]] = {}
        self._podgroups: dict[str, Obj] = {}
        self._classes: dict[str, Obj] = {}
        self._evicting: dict[str, str] = {}  # victim pod key -> preemptor group
        self._victim_objs: dict[str, Obj] = {}  # victim pod key -> last seen object
        self._timed_out: set[str] = set()  # groups whose scheduleTimeoutSeconds has been reported
        self._waiting_since: dict[str, float] = {}  # group -> earliest pending member's creation (this wait)
        self._nominations: dict[str, _Nomination] = {}
        self._ready: list[str] = []  # nominated groups whose victims are gone
        self._requests: dict[str, PodRequest] = {}  # pending pod key -> its request, parsed on arrival
        self._invalid: dict[str, str] = {}  # quarantined pod key -> what is wrong with it
        self._invalid_seen: dict[str, Obj] = {}  # quarantined pod key -> the object last parsed
        self._invalid_groups: dict[str, tuple[Obj, str]] = {}  # ns/name -> quarantined PodGroup, what is wrong
        self._failed_cycles: dict[str, str] = {}  # group key -> why its last cycle raised (logged once)
        self._reports: list[UnschedulableDecision] = []  # quarantines to report (take_reports)

    @property
    def q(self) -> SchedulingQueue:
        assert self.queue is not None
        return self.queue

    # -- nodes -------------------------------------------------------------------------------

    def node_upsert(self, node: Obj) -> None:
        try:
            node_spec = node_spec_from_obj(node)
        except Exception as error:  # a node we cannot read is left out, not fatal
            log.warning("ignoring node %s: %s", meta(node).get("name"), describe(error))
            return
        if self._node_specs.get(node_spec.name) != node_spec:
            self._node_specs[node_spec.name] = node_spec
            self._node_dirty = True
            self.q.move_all_to_active()

    def node_delete(self, node: Obj) -> None:
        name = str(meta(node).get("name"))
        if self._node_specs.pop(name, None) is not None:
            self._node_dirty = True

    def sync_nodes(self) -> None:
        """Apply batched node changes: one rebuild of the snapshot, every held pod re-assumed."""
        if not self._node_dirty:
            return
        self._node_dirty = False
        self.stats.snapshot_rebuilds += 1
        names = sorted(self._node_specs)
        snapshot = Snapshot([self._node_specs[n] for n in names])
        for key, held in self._held.items():
            self._assume_into(snapshot, key, held)
        self.snapshot = snapshot

    @staticmethod
    def _assume_into(snapshot: Snapshot, key: str, held: _Held) -> None:
        node = snapshot.index.get(held.node)
        if node is None:
            return
        try:
            snapshot.assume(held.req, node, held.devices)
        except ValueError:
            # over-committed by someone else (another scheduler): count cpu/memory, not devices
            snapshot.assume(held.req, node, ())

    # -- priority classes and pod groups ------------------------------------------------------

    def priority_class_upsert(self, obj: Obj) -> None:
        name = str(meta(obj).get("name"))
        if class_value(obj) is None:
            log.warning("ignoring PriorityClass %s: value %r is not a 32-bit integer", name, obj.get("value"))
            self._classes.pop(name, None)
            return
        self._classes[name] = obj

    def priority_class_delete(self, obj: Obj) -> None:
        self._classes.pop(str(meta(obj).get("name")), None)

    def podgroup_upsert(self, obj: Obj) -> None:
        md = meta(obj)
        ns, name = md.get("namespace") or "default", md.get("name")
        key = f"group:{ns}/{name}"
        problem = podgroup_problem(obj)
        if problem is not None:
            # quarantined: its pods wait (reason InvalidPodGroup) until the PodGroup is fixed
            self._podgroups.pop(f"{ns}/{name}", None)
            if self._invalid_groups.get(f"{ns}/{name}", (None, ""))[1] != problem:
                log.warning("PodGroup %s/%s is invalid: %s", ns, name, problem)
                pods = tuple(self._pending.get(key, {}).values())
                self._reports.append(UnschedulableDecision(key, pods, "InvalidPodGroup",
                                                           f"PodGroup {ns}/{name}: {problem}", obj))
            self._invalid_groups[f"{ns}/{name}"] = (obj, problem)
        else:
            self._invalid_groups.pop(f"{ns}/{name}", None)
            self._podgroups[f"{ns}/{name}"] = obj
        if key in self._pending:
            self._enqueue(key)

    def podgroup_delete(self, obj: Obj) -> None:
        md = meta(obj)
        self._podgroups.pop(f"{md.get('namespace') or 'default'}/{md.get('name')}", None)
        self._invalid_groups.pop(f"{md.get('namespace') or 'default'}/{md.get('name')}", None)

    def podgroup(self, group: str) -> Obj | None:
        kind, ns, name = split_group_key(group)
        return self._podgroups.get(f"{ns}/{name}") if kind == "group" else None

    # -- pods -----------------------------------------------------------------------------------

    def pod_upsert(self, pod: Obj) -> None:
        """A pod was added or changed (an informer event); never raises: a pod that cannot be
        handled is quarantined (see the module docstring)."""
        try:
            self._pod_upsert(pod)
        except Exception as error:
            key = pod_key(pod)
            self._drop_pending(key, pod)
            problem = f"the scheduler could not handle this pod: {describe(error)}"
            if is_pending(pod, self.scheduler_name):
                self._quarantine(key, pod, problem, error)
            elif self._invalid.get(key) != problem:  # bound elsewhere or finished: nothing to report on it
                self._invalid[key] = problem
                log.warning("pod %s: %s", key, problem, exc_info=error)

    def _quarantine(self, key: str, pod: Obj, problem: str, error: BaseException | None = None) -> None:
        """Keep a pod out of the queue and report why, once per distinct problem."""
        self._requests.pop(key, None)
        if self._invalid.get(key) == problem:
            return
        self._invalid[key] = problem
        log.warning("pod %s is not scheduled: %s", key, problem, exc_info=error)
        self._reports.append(UnschedulableDecision(group_key(pod), (pod,), "InvalidPod", problem))

    def take_reports(self) -> list[UnschedulableDecision]:
        """Quarantines since the last call (the service writes their condition and Event)."""
        reports, self._reports = self._reports, []
        return reports

    def invalid(self) -> Mapping[str, str]:
        """Quarantined pods: key -> what is wrong (introspection, tests)."""
        return dict(self._invalid)

    def _pod_upsert(self, pod: Obj) -> None:
        key = pod_key(pod)
        if key in self._evicting:
            if not holds_resources(pod):
                self._victim_gone(key)
            else:
                self._victim_objs[key] = pod
            return
        held = self._held.get(key)
        if holds_resources(pod):
            self._drop_pending(key, pod)
            node = str(spec(pod).get("nodeName"))
            if held is not None and held.node == node:
                held.assumed = False
                held.obj = pod
                return
            if held is not None:
                self._release(key)
            self._hold_bound(key, pod, node)
            return
        if held is not None:
            if held.assumed:
                # our binding is in flight (or the pod is a nominated preemptor): the binder
                # reports the outcome, and a deletion cancels a nomination (pod_delete)
                held.obj = pod
                return
            self._release(key)  # it was bound and has finished
            self.q.move_all_to_active()
            return
        if is_pending(pod, self.scheduler_name):
            gkey = group_key(pod)
            members = self._pending.get(gkey)
            previous = members.get(key) if members is not None else None
            if members is not None and previous is not None and _status_only_change(previous, pod):
                members[key] = pod
                return  # e.g. our own PodScheduled condition: nothing that could make it fit (as kube-scheduler)
            if key in self._invalid and self._invalid_seen.get(key) is not None \
                    and _status_only_change(self._invalid_seen[key], pod):
                return  # still the same invalid pod (e.g. our own InvalidPod condition)
            try:
                request = pod_request_from_obj(pod)
            except PodSpecError as error:  # parsed once, here: a pod that cannot be parsed is never queued
                self._drop_pending(key, pod)
                self._invalid_seen[key] = pod
                self._quarantine(key, pod, str(error))
                return
            self._invalid.pop(key, None)
            self._invalid_seen.pop(key, None)
            self._requests[key] = request
            self._pending.setdefault(gkey, {})[key] = pod
            self._enqueue(gkey)
        else:
            self._drop_pending(key, pod)
            self._forget_invalid(key)

    def pod_delete(self, pod: Obj) -> None:
        key = pod_key(pod)
        self._drop_pending(key, pod)
        self._forget_invalid(key)
        if key in self._evicting:
            self._victim_gone(key)
            return
        held = self._held.get(key)
        if held is None:
            return
        if held.nominated:
            self._cancel_nomination(held.group)
        elif not held.assumed:
            self._release(key)
            self.q.move_all_to_active()

    def _cancel_nomination(self, group: str) -> None:
        """A nominated preemptor went away: give its reservation back, send the rest to the queue."""
        nomination = self._nominations.pop(group, None)
        if nomination is None:
            return
        for binding in nomination.bindings:
            self._release(binding.key)
        for victim, owner in list(self._evicting.items()):
            if owner == group:
                self._evicting[victim] = ""
        self.admission.forget(group)
        self._enqueue(group)
        self.q.move_all_to_active()

    def _hold_bound(self, key: str, pod: Obj, node: str) -> None:
        try:
            req = pod_request_from_obj(pod)
            devices = parse_gpu_devices((meta(pod).get("annotations") or {}).get("corral.dev/gpu-devices", ""))
        except PodSpecError as error:
            log.warning("bound pod %s: %s; counting it without devices", key, error)
            req = PodRequest(key=key)
            devices = ()
        priority = pod_priority(pod, self._classes)
        if not devices and req.wants_gpu:
            index = self.snapshot.index.get(node)
            if index is not None and not self._node_dirty:
                devices = self.snapshot.default_devices(req, index)
        held = _Held(dataclasses.replace(req, priority=priority), node, tuple(devices), group_key(pod), priority, pod)
        self._add_held(key, held)

    def _add_held(self, key: str, held: _Held) -> None:
        self._held[key] = held
        self._held_priorities[held.priority] += 1
        self._group_held.setdefault(held.group, set()).add(key)
        if not self._node_dirty:
            self._assume_into(self.snapshot, key, held)

    def _release(self, key: str) -> _Held | None:
        held = self._held.pop(key, None)
        if held is None:
            return None
        self._held_priorities[held.priority] -= 1
        if not self._held_priorities[held.priority]:
            del self._held_priorities[held.priority]
        members = self._group_held.get(held.group)
        if members is not None:
            members.discard(key)
            if not members:
                del self._group_held[held.group]
        self.snapshot.forget(key)
        return held

    def _forget_invalid(self, key: str) -> None:
        self._invalid.pop(key, None)
        self._invalid_seen.pop(key, None)

    def _drop_pending(self, key: str, pod: Obj) -> None:
        self._requests.pop(key, None)
        gkey = group_key(pod)
        members = self._pending.get(gkey)
        if members is not None and members.pop(key, None) is not None and not members:
            del self._pending[gkey]
            self._timed_out.discard(gkey)
            self._waiting_since.pop(gkey, None)
            if gkey not in self._nominations:
                self.q.remove(gkey)

    def _enqueue(self, gkey: str) -> None:
        if gkey in self._nominations:
            return
        members = self._pending.get(gkey)
        if not members:
            return
        pods = list(members.values())
        self.q.add(gkey, group_priority(self.podgroup(gkey), pods, self._classes),
                   min(creation_seconds(p) for p in pods))

    def _victim_gone(self, key: str) -> None:
        self._victim_objs.pop(key, None)
        group = self._evicting.pop(key, None)
        nomination = self._nominations.get(group) if group else None
        if nomination is not None:
            nomination.victims.discard(key)
            if not nomination.victims:
                self._ready.append(nomination.group)

    # -- feedback from the binder ----------------------------------------------------------------

    def bind_succeeded(self, key: str) -> None:
        held = self._held.get(key)
        if held is not None:
            held.nominated = False

    def bind_failed(self, group: str, keys: Sequence[str], *, gone: Sequence[str] = ()) -> None:
        """Unreserve members whose binding failed and send the group back to the queue.

        ``gone`` are members that no longer exist (or were bound by someone else): they are
        dropped; the others wait in the queue again with backoff. Members already bound
        stay bound and count towards ``minMember`` when the rest is placed again.
        """
        self.stats.bind_failures += len(keys)
        self.admission.forget(group)
        for key in keys:
            held = self._release(key)
            if held is None or key in gone:
                continue
            obj = held.obj
            if is_pending(obj, self.scheduler_name):
                self._pending.setdefault(group, {})[key] = obj
        members = self._pending.get(group)
        if members:
            pods = list(members.values())
            self.q.add(group, group_priority(self.podgroup(group), pods, self._classes),
                       min(creation_seconds(p) for p in pods))
            self.q.retry(group)

    # -- the cycle -----------------------------------------------------------------------------

    def schedule_next(self) -> Decision | None:
        """The next decision: a nominated group whose victims are gone, else the queue's next group."""
        self.sync_nodes()
        while self._ready:
            group = self._ready.pop(0)
            nomination = self._nominations.pop(group, None)
            if nomination is None:
                continue
            for binding in nomination.bindings:
                self._drop_pending(binding.key, binding.pod)
            return BindDecision(group, nomination.bindings, nomination.podgroup, nominated=True)
        while True:
            key = self.q.pop_nowait()
            if key is None:
                return None
            decision = self.schedule_group(key)
            if decision is not None:
                return decision

    def has_ready(self) -> bool:
        """Whether a nominated group's victims are gone (its binding is due next)."""
        return bool(self._ready)

    def pending_groups(self) -> int:
        return len(self._pending)

    def requeue(self) -> None:
        """Retry every parked group (e.g. a quota changed)."""
        self.q.move_all_to_active()

    def release_held(self, keys: Sequence[str]) -> None:
        """Put groups that admission held (``AdmissionResult.hold``) back in the queue."""
        for key in keys:
            if key not in self.q:
                self._enqueue(key)

    def group_info(self, key: str, pods: Sequence[Obj], reqs: Sequence[PodRequest], priority: int) -> GroupInfo:
        _, ns, name = split_group_key(key)
        podgroup = self.podgroup(key)
        queue = (spec(podgroup).get("queue") if podgroup is not None else None) or next(
            (labels(p).get(QUEUE_LABEL) for p in pods if labels(p).get(QUEUE_LABEL)),
            None,
        )
        return GroupInfo(key, ns, name, priority, queue, tuple(reqs), tuple(pods), podgroup)

    def schedule_group(self, key: str) -> Decision | None:
        """One scheduling cycle for group ``key`` (popped from the queue); never raises.

        A cycle that raises (a bug, or a pod no parse foresaw) takes nothing with it: the
        group's tentative placements are forgotten, it goes back to the queue with backoff,
        and its pods are reported ``InvalidPod`` with the error (logged once per error).
        """
        try:
            decision = self._schedule_group(key)
        except Exception as error:
            return self._cycle_failed(key, error)
        self._failed_cycles.pop(key, None)
        return decision

    def _cycle_failed(self, key: str, error: Exception) -> Decision | None:
        problem = f"the scheduler could not handle this group: {describe(error)}"
        if self._failed_cycles.get(key) != problem:
            self._failed_cycles[key] = problem
            log.error("scheduling %s failed; it is retried with backoff", key, exc_info=error)
        members = self._pending.get(key) or {}
        for pod_name in members:
            if pod_name not in self._held:
                self.snapshot.forget(pod_name)
        try:
            self.admission.forget(key)
        except Exception:
            log.exception("admission could not forget %s", key)
        if key in self.q:
            self.q.unschedulable(key)
        if not members:
            return None
        return UnschedulableDecision(key, tuple(members.values()), "InvalidPod", problem, self.podgroup(key))

    def _schedule_group(self, key: str) -> Decision | None:
        self.stats.cycles += 1
        self.sync_nodes()
        members = self._pending.get(key)
        if not members:
            self.q.remove(key)
            return None
        pods = sorted(members.values(), key=lambda p: (creation_seconds(p), str(meta(p).get("name"))))
        kind, ns, name = split_group_key(key)
        podgroup = self.podgroup(key)
        if kind == "group":
            invalid = self._invalid_groups.get(f"{ns}/{name}")
            if invalid is not None:
                self.q.park(key)
                return UnschedulableDecision(key, tuple(pods), "InvalidPodGroup",
                                             f"PodGroup {ns}/{name}: {invalid[1]}", invalid[0])
            if podgroup is None:
                self.q.park(key)
                return UnschedulableDecision(key, tuple(pods), "PodGroupNotFound",
                                             f"waiting for PodGroup {ns}/{name} to exist")
            need = min_member(podgroup)
            have = len(pods) + len(self._group_held.get(key, ()))
            if have < need:
                self.q.park(key)
                return UnschedulableDecision(
                    key, tuple(pods), "WaitingForMembers",
                    f"PodGroup {ns}/{name} has {have}/{need} pods; waiting for {need - have} more before placing it",
                    podgroup,
                )
        priority = group_priority(podgroup, pods, self._classes)
        precheck = getattr(self.admission, "precheck", None)
        if precheck is not None:
            # Quota that rules the group out whatever its placement: spend no placement on it
            # (nor the parsing of its requests: precheck's GroupInfo has pods=()).
            early = precheck(self.group_info(key, pods, (), priority))
            if early is not None and not early.allowed:
                if early.hold:
                    self.q.remove(key)  # out of the queue until admission calls release_held()
                else:
                    self.q.unschedulable(key)
                return UnschedulableDecision(key, tuple(pods), early.reason or "NotAdmitted",
                                             early.message or "not admitted", podgroup)
        try:
            reqs = [dataclasses.replace(self._requests.get(pod_key(p)) or pod_request_from_obj(p), priority=priority)
                    for p in pods]
        except PodSpecError as error:
            self.q.park(key)
            return UnschedulableDecision(key, tuple(pods), "InvalidPod", str(error), podgroup)
        result = schedule_group(self.snapshot, reqs, self.framework, state=CycleState(self.rng), assume=True)
        if result.ok:
            info = self.group_info(key, pods, reqs, priority)
            verdict = self.admission.admit(info, result.placements)
            if not verdict.allowed:
                for placement in result.placements:
                    self.snapshot.forget(placement.pod)
                self.q.unschedulable(key)
                return UnschedulableDecision(key, tuple(pods), verdict.reason or "NotAdmitted",
                                             verdict.message or "not admitted", podgroup)
            bindings = self._commit(key, pods, reqs, result.placements, priority, nominated=False)
            self.q.done(key)
            self.stats.scheduled_groups += 1
            self.stats.scheduled_pods += len(bindings)
            return BindDecision(key, bindings, podgroup)
        diagnosis = result.failure
        assert diagnosis is not None
        if self.preemption and diagnosis.status.code is not Code.UNRESOLVABLE:
            preempt = self._try_preempt(key, pods, reqs, priority=priority, diagnosis=diagnosis, podgroup=podgroup)
            if preempt is not None:
                return preempt
        self.q.unschedulable(key)
        self.stats.unschedulable += 1
        message = diagnosis.message()
        if kind == "group":
            index = next((i for i, r in enumerate(reqs) if r.key == diagnosis.pod), 0)
            message = (f"PodGroup {ns}/{name}: {index} of {len(reqs)} pods fit, then pod "
                       f"{diagnosis.pod.partition('/')[2]} did not: {message}")
        return UnschedulableDecision(key, tuple(pods), "Unschedulable", message, podgroup, diagnosis)

    def _commit(
        self, key: str, pods: Sequence[Obj], reqs: Sequence[PodRequest], placements: Sequence[Placement],
        priority: int, *, nominated: bool,
    ) -> tuple[Binding, ...]:
        """Record the assumed placements (already in the snapshot) and drop the pods from pending."""
        bindings = []
        for pod, req, placement in zip(pods, reqs, placements, strict=True):
            pkey = req.key
            held = _Held(req, placement.node, placement.devices, key, priority, pod, assumed=True, nominated=nominated)
            self._held[pkey] = held
            self._held_priorities[priority] += 1
            self._group_held.setdefault(key, set()).add(pkey)
            if not nominated:
                self._drop_pending(pkey, pod)
            bindings.append(Binding(pod, pkey, placement.node, placement.gpu_devices))
        return tuple(bindings)

    # -- preemption ----------------------------------------------------------------------------

    def has_lower_priority_than(self, priority: int) -> bool:
        """Whether any pod holding resources has a priority below ``priority`` (O(distinct priorities))."""
        return any(p < priority for p in self._held_priorities)

    def victim_units(self, below: int | None = None) -> tuple[dict[str, VictimUnit], dict[str, str]]:
        """Evictable units from held pods: gangs whole, bare pods alone; nominated preemptors excluded.

        With ``below``, only units that hold a pod of lower priority are built (the others
        can never be victims of a preemptor at that priority).
        """
        wanted: set[str] | None = None
        if below is not None:
            wanted = {h.group for h in self._held.values() if h.priority < below}
        groups: dict[str, list[str]] = {}
        prio: dict[str, int] = {}
        for key, held in self._held.items():
            if held.nominated or (wanted is not None and held.group not in wanted):
                continue
            if meta(held.obj).get("deletionTimestamp"):
                continue  # already going: evicting it again frees nothing more
            unit = held.group if held.group.startswith("group:") else f"pod:{key}"
            groups.setdefault(unit, []).append(key)
            prio[unit] = max(prio.get(unit, held.priority), held.priority)
        units = {u: VictimUnit(u, prio[u], tuple(sorted(keys))) for u, keys in groups.items()}
        unit_of = {k: u for u, keys in groups.items() for k in keys}
        return units, unit_of

    def _try_preempt(
        self, key: str, pods: Sequence[Obj], reqs: Sequence[PodRequest], *, priority: int,
        diagnosis: Diagnosis, podgroup: Obj | None,
    ) -> PreemptDecision | None:
        if not self.has_lower_priority_than(priority):
            return None
        units, unit_of = self.victim_units(below=priority)
        plan: PreemptionPlan | None = plan_preemption(
            self.snapshot, self.framework, reqs, priority, units=units, unit_of_pod=unit_of, diagnosis=diagnosis,
            new_state=lambda: CycleState(self.rng),
        )
        if plan is None:
            return None
        victims: list[Obj] = []
        for victim_key in plan.victim_pods:
            held = self._release(victim_key)
            if held is not None:
                victims.append(held.obj)
                self._evicting[victim_key] = key
                self._victim_objs[victim_key] = held.obj
        result = schedule_group(self.snapshot, reqs, self.framework, state=CycleState(self.rng), assume=True)
        if not result.ok:  # cannot happen: the plan was checked on this very snapshot
            log.error("preemption plan for %s did not hold; restoring victims", key)
            for victim in victims:
                self._evicting.pop(pod_key(victim), None)
                self.pod_upsert(victim)
            return None
        bindings = self._commit(key, pods, reqs, result.placements, priority, nominated=True)
        still = {pod_key(v) for v in victims}
        self._nominations[key] = _Nomination(key, bindings, still, podgroup, self.clock.monotonic())
        self.q.remove(key)
        self.stats.preemptions += 1
        nodes = sorted({b.node for b in bindings})
        message = (f"preempting {len(victims)} lower-priority pod(s) on {', '.join(nodes)} "
                   f"(victim priority at most {plan.cost[0]})")
        if not still:
            self._ready.append(key)
        return PreemptDecision(key, bindings, tuple(victims), priority, message, podgroup)

    # -- waits that run out ------------------------------------------------------------------------

    def expire(self) -> list[Expiry]:
        """Nominations older than ``nomination_timeout`` whose victims are still there, and
        PodGroups pending longer than their ``scheduleTimeoutSeconds`` (once per wait).

        An expired nomination is given up: the preemptor's reservation is released, the
        victims that are still present count again (they hold their node until they are
        gone; being terminating already, they are not chosen as victims again), and the
        group goes back to the queue to be evaluated afresh. A timed-out PodGroup keeps
        waiting (and keeps its place in the queue), but loses any nomination it holds, and
        is reported so its status and an Event say so. Called periodically by the service.
        """
        out: list[Expiry] = []
        now = self.clock.monotonic()
        for group, nomination in list(self._nominations.items()):
            if nomination.victims and now - nomination.since >= self.nomination_timeout:
                released = self._give_up_nomination(group)
                waiting = ", ".join(sorted(nomination.victims))
                out.append(Expiry("NominationExpired", group,
                                  f"victims {waiting} did not go within {self.nomination_timeout:.0f}s; "
                                  "the reserved room is released and the placement is evaluated again",
                                  nomination.podgroup, released))
        wall = self.clock.now().timestamp()
        for pg_key, podgroup in self._podgroups.items():
            timeout = spec(podgroup).get("scheduleTimeoutSeconds")
            group = f"group:{pg_key}"
            members = self._pending.get(group)
            if not timeout or not members or group in self._timed_out:
                continue
            since = self._waiting_since.get(group)
            if since is None:  # parsed once per wait, not on every check
                since = self._waiting_since[group] = min(creation_seconds(p) for p in members.values())
            if since <= 0 or wall - since < float(timeout):
                continue
            self._timed_out.add(group)
            released = self._give_up_nomination(group) if group in self._nominations else ()
            out.append(Expiry("ScheduleTimeout", group,
                              f"PodGroup {pg_key} was not placed within scheduleTimeoutSeconds={int(timeout)}"
                              + ("; its nomination is released" if released else ""),
                              podgroup, released))
        return out

    def _give_up_nomination(self, group: str) -> tuple[Binding, ...]:
        nomination = self._nominations.pop(group, None)
        if nomination is None:
            return ()
        for binding in nomination.bindings:
            self._release(binding.key)
        for victim, owner in list(self._evicting.items()):
            if owner != group:
                continue
            del self._evicting[victim]
            obj = self._victim_objs.pop(victim, None)
            if obj is not None and holds_resources(obj) and victim not in self._held:
                self._hold_bound(victim, obj, str(spec(obj).get("nodeName")))
        if group in self._ready:
            self._ready.remove(group)
        self.admission.forget(group)
        self._enqueue(group)
        return nomination.bindings

    # -- introspection (tests, explain) ---------------------------------------------------------

    def held(self) -> Mapping[str, tuple[str, str, bool]]:
        """Pod key → (node, gpu-devices, assumed) for every pod holding resources."""
        return {k: (h.node, ",".join(d.format() for d in h.devices), h.assumed) for k, h in self._held.items()}

    def nominations(self) -> Mapping[str, set[str]]:
        return {k: set(n.victims) for k, n in self._nominations.items()}
