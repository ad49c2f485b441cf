"""Quota admission inside the live scheduler's cycle: the ``Admission`` seam's implementation.

The scheduler places a whole group first (every member reserved on a node, devices
chosen), then calls :meth:`QueueAdmission.admit` with the group and its tentative
placements *before* anything is committed. Here the placement decides the flavor: each
pod's node labels select, per resource group, the first flavor of the queue whose
``nodeLabels`` the node carries. The group is admitted when that usage fits the queue's
quota (borrowing if allowed), its queue's ordering lets it go, and no nominated
preemptor holds the room; then its quota is booked in the same step and the scheduler
binds. Denied, the scheduler unreserves every member and nothing of the group is bound:
admission and placement are committed together or not at all.

When quota (not placement) blocks a group, victims are chosen by the queue's preemption
policy (:mod:`.preemption`): the preemptor is *nominated*, the victims are queued for
eviction (the :mod:`.service` deletes their pods with their grace period, so training
jobs checkpoint), and until they are gone their room is reserved for the preemptor:
no one else is admitted into it, and no victim is chosen twice.

Ordering on top of the scheduler's own queue: StrictFIFO denies any group while an
earlier group of its queue waits for quota; BestEffortFIFO lets it pass unless that head
has waited longer than ``Policy.starvation_seconds``; and when a group would borrow
while another queue of the cohort with a lower share after admission waits at its head
for capacity that is free now, it yields (fair share).

Waiting costs nothing per cluster event: a group that :meth:`QueueAdmission.precheck`
finds blocked by quota (no victims either) is *held* — the scheduler takes it out of its
queue (``AdmissionResult.hold``) — and handed back (:meth:`QueueAdmission.take_releases`,
then ``Scheduler.release_held``) only when quota in its cohort is freed: per queue, in
queue order, the first held group (it may preempt or hold the queue) and then those whose
request fits what the queue can use now. A nominated preemptor waiting for its victims
is held likewise and handed back when they are all gone. Any Queue change hands back
everything, and a group held longer than ``hold_timeout`` is handed back too (a safety
net: nothing can be forgotten). ``counts`` tallies decisions by reason and hand-backs by
cause.

State is rebuilt from the API (level-triggered): :meth:`resync` books every group whose
pods are bound and not finished, and releases groups that are gone. Synchronous and
I/O-free: the scheduler calls it once per group per cycle.
"""

from __future__ import annotations

import logging
from bisect import insort
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from corral.scheduler.admission import AdmissionResult
from corral.scheduler.quota.assign import Assignment, Candidates, candidates
from corral.scheduler.quota.cycle import Policy, order_key
from corral.scheduler.quota.preemption import find_victims
from corral.scheduler.quota.quota import (
    FR,
    Admitted,
    Mode,
    QueueConfig,
    QueueSpecError,
    QuotaBook,
    fmt_milli,
    parse_queue,
)
from corral.scheduler.quota.workload import (
    GROUP_LABEL,
    QUEUE_LABEL,
    PodSet,
    Workload,
    namespace_matches,
    pod_requests,
    pod_sets_of,
    timestamp,
)
from corral.util.clock import Clock

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NodeLabels = Callable[[str], Mapping[str, str] | None]


class GroupLike(Protocol):
    """What admission reads of the scheduler's ``GroupInfo``."""

    @property
    def key(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def pod_objs(self) -> tuple[Obj, ...]: ...


class PlacementLike(Protocol):
    @property
    def pod(self) -> str: ...
    @property
    def node(self) -> str: ...


HANDED_TTL = 2.0
"""Seconds a handed-back group's room stays spoken for if the scheduler never decides it."""

SMALLEST_TTL = 0.2
"""Seconds a queue's smallest waiting request is reused by the fair-share check."""

_WAITING = frozenset({"QuotaExceeded", "Preempting", "WaitingForVictims", "QueueOrder", "FairShare"})

Verdict = AdmissionResult
"""The scheduler's ``AdmissionResult``: ``allowed``, ``reason``, ``message``."""


@dataclass
class PendingEntry:
    workload: Workload
    first_seen: float
    last_seen: float
    reason: str
    message: str
    usage: dict[FR, int] = field(default_factory=dict)
    never: bool = False
    """Larger than the queue may ever use: it holds no one back."""


@dataclass
class Nomination:
    preemptor: Workload
    usage: dict[FR, int]
    victims: tuple[str, ...]
    at: float


def group_key_of(pod: Mapping[str, Any]) -> str:
    """``group:ns/name`` for gang members, ``pod:ns/name`` for a bare pod (the scheduler's keys)."""
    metadata = pod.get("metadata") or {}
    namespace = metadata.get("namespace") or "default"
    name = (metadata.get("labels") or {}).get(GROUP_LABEL)
    return f"group:{namespace}/{name}" if name else f"pod:{namespace}/{metadata.get('name')}"


def pod_key(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return f"{metadata.get('namespace') or 'default'}/{metadata.get('name')}"


class QueueAdmission:
    """Quota admission for the live scheduler. See the module docstring."""

    def __init__(self, clock: Clock, node_labels: NodeLabels, *, policy: Policy | None = None,
                 pending_ttl: float = 30.0, fair_wait: float = 30.0, hold_timeout: float = 120.0,
                 head_interval: float = 1.0,
                 notify: Callable[[], None] | None = None) -> None:
        self.clock = clock
        self.hold_timeout = hold_timeout
        self.notify = notify
        """Called (once until :meth:`take_releases`) when held groups may be handed back."""
        self.held: dict[str, dict[str, Workload]] = {}  # queue -> group key -> workload
        self._held_at: dict[str, float] = {}
        self._dirty_cohorts: set[str] = set()
        self._release_all = False
        self._notified = False
        self.head_interval = head_interval
        """A queue's first held group is handed back at least this often (a safety net)."""
        self._head_at: dict[str, float] = {}
        self._held_order: dict[str, list[tuple[tuple[int, float, str], str]]] = {}
        self._admitted_since: list[Workload] = []
        self.counts: Counter[str] = Counter()
        """Decisions by reason and hand-backs by cause (for benchmarks and debugging)."""
        self._handed: dict[str, tuple[Workload, float]] = {}
        """Handed back and not decided yet (for at most ``HANDED_TTL``): their room is spoken for."""
        self._smallest: dict[str, tuple[float, PendingEntry | None]] = {}
        self.node_labels = node_labels
        self.policy = policy or Policy()
        self.pending_ttl = pending_ttl
        self.fair_wait = fair_wait
        self.book = QuotaBook.build([])
        self._unreadable: set[str] = set()  # bound groups resync could not count (logged once)
        self.invalid: dict[str, str] = {}
        """Queues left out because their spec cannot be parsed: name -> what is wrong."""
        self.pending: dict[str, PendingEntry] = {}
        self._by_queue: dict[str, dict[str, PendingEntry]] = {}
        self.nominations: dict[str, Nomination] = {}
        self.evicting: dict[str, str] = {}  # victim group key -> preemptor key
        self._evictions: list[tuple[Admitted, str]] = []
        self._admissions: list[tuple[str, float]] = []  # (queue, seconds waited) for metrics
        self._admitted_pods: dict[str, tuple[str, ...]] = {}
        self._blocked: dict[tuple[str, int, int], list[tuple[int, dict[str, int], str]]] = {}
        self._workloads: dict[str, tuple[tuple[Any, ...], Workload]] = {}
        self._nominations_version = 0
        self._head_cache: dict[str, tuple[float, list[PendingEntry], list[PendingEntry]]] = {}

    # -- queues ------------------------------------------------------------------------------

    def set_queues(self, objs: Iterable[Mapping[str, Any]]) -> None:
        """Replace the queue configuration; admitted usage is kept (of queues that still exist).

        A Queue whose spec cannot be parsed is left out (its groups wait with reason
        ``QueueInvalid``) and listed in :attr:`invalid` with what is wrong; the others work.
        """
        configs = []
        invalid: dict[str, str] = {}
        for obj in objs:
            name = str((obj.get("metadata") or {}).get("name"))
            try:
                configs.append(parse_queue(obj))
            except QueueSpecError as error:
                invalid[name] = str(error)
                if self.invalid.get(name) != invalid[name]:
                    log.warning("Queue %s is invalid and admits nothing: %s", name, error)
        self.invalid = invalid
        self._blocked.clear()
        self._release_all = True
        self._notify()
        old = self.book
        self.book = QuotaBook.build(configs)
        for item in old.admitted.values():
            if item.queue in self.book.queues:
                self.book.add(item)

    @property
    def queues(self) -> dict[str, QueueConfig]:
        return self.book.queues

    def queue_of(self, namespace: str, named: str | None,
                 namespace_labels: Mapping[str, str] | None = None) -> str | None:
        """The group's queue: the one it names, else its namespace's default queue, else None."""
        if named:
            return named
        defaults = sorted(q.name for q in self.queues.values()
                          if q.default and namespace_matches(q, namespace, namespace_labels))
        return defaults[0] if defaults else None

    # -- the seam ----------------------------------------------------------------------------

    def admit(self, group: GroupLike, placements: Sequence[PlacementLike]) -> Verdict:
        now = self.clock.now().timestamp()
        queue = self.queue_of(group.namespace, group.queue or _named_queue(group.pod_objs))
        if queue is None:
            return Verdict(True, "NoQueue", "no queue: not limited by quota")
        config = self.queues.get(queue)
        workload = self._workload(group, queue, now)
        if config is None and queue in self.invalid:
            return self._deny(workload, now, "QueueInvalid", f'queue "{queue}" is invalid: {self.invalid[queue]}')
        if config is None:
            return self._deny(workload, now, "QueueNotFound", f'queue "{queue}" does not exist')
        if config.stop_policy != "None":
            return self._deny(workload, now, "QueueHeld", f'queue "{queue}" is stopped (stopPolicy {config.stop_policy})')
        usage, why = self.usage_of(config, group.pod_objs, placements)
        if usage is None:
            return self._deny(workload, now, "NoFlavor", why)
        ahead = self._ahead(workload, config, now)
        if ahead is not None:
            return self._deny(workload, now, "QueueOrder", ahead, usage)
        nomination = self.nominations.get(workload.key)
        book = self.book if nomination is not None else self._reserved_view(exclude=workload.key)
        fit = book.fits(queue, usage)
        if fit.mode <= Mode.BORROW:
            if fit.mode == Mode.BORROW and workload.key not in self._handed:
                yielded = self._yield_for_fairness(book, workload, usage, now)
                if yielded is not None:
                    return self._deny(workload, now, "FairShare", yielded, usage)
            return self._book(workload, usage, now, group.pod_objs, fit.reason)
        # Quota blocks it. Preempt where the policy allows, or wait.
        if nomination is not None and any(v in self.book.admitted for v in nomination.victims):
            left = [v for v in nomination.victims if v in self.book.admitted]
            return self._deny(workload, now, "WaitingForVictims",
                              f"waiting for {len(left)} preempted workload(s) to end: {', '.join(left[:5])}", usage)
        reserved = nomination.victims if nomination is not None else ()
        victims = self._victims(workload, usage, reserved)
        if victims:
            self.nominations[workload.key] = Nomination(workload, usage, tuple(v.key for v in victims), now)
            self._nominations_version += 1
            for victim in victims:
                self.evicting[victim.key] = workload.key
                self._evictions.append((victim, workload.key))
            return self._deny(workload, now, "Preempting",
                              f"{fit.stable}; preempting {len(victims)} workload(s): "
                              + ", ".join(v.key for v in victims), usage)
        return self._deny(workload, now, "QuotaExceeded", fit.stable, usage, never=fit.mode == Mode.NOFIT)

    def precheck(self, group: GroupLike) -> Verdict | None:
        """Before placement: a denial when quota or queue order rules the group out whatever
        its placement (so the scheduler spends no placement on it), else None.

        Cheap on the retry storms that follow every release: the workload is parsed once per
        version of its pods, and a request at least as large as one already found blocked in
        the same quota state is denied from a cache."""
        now = self.clock.now().timestamp()
        queue = self.queue_of(group.namespace, group.queue or _named_queue(group.pod_objs))
        if queue is None:
            return None
        config = self.queues.get(queue)
        workload = self._workload(group, queue, now)
        if config is None and queue in self.invalid:
            return self._deny(workload, now, "QueueInvalid", f'queue "{queue}" is invalid: {self.invalid[queue]}')
        if config is None:
            return self._deny(workload, now, "QueueNotFound", f'queue "{queue}" does not exist')
        if config.stop_policy != "None":
            return self._deny(workload, now, "QueueHeld", f'queue "{queue}" is stopped (stopPolicy {config.stop_policy})')
        ahead = self._ahead(workload, config, now)
        if ahead is not None:
            return self._deny(workload, now, "QueueOrder", ahead)
        nomination = self.nominations.get(workload.key)
        if nomination is not None:
            left = [v for v in nomination.victims if v in self.book.admitted]
            if not left:
                return None
            verdict = self._deny(workload, now, "WaitingForVictims",
                                 f"waiting for {len(left)} preempted workload(s) to end: {', '.join(left[:5])}")
            return self._hold(workload, now, verdict)
        cache_key = (queue, self.book.version(queue), self._nominations_version)
        total = workload.total()
        for priority, shape, reason in self._blocked.get(cache_key, ()):
            if priority >= workload.priority and all(total.get(r, 0) >= a for r, a in shape.items()):
                return self._hold(workload, now, self._deny(workload, now, "QuotaExceeded", reason))
        book, found, fitting = self._assignments(workload)
        if any(a.mode == Mode.FIT for a in fitting):
            return None
        if fitting:
            # It would borrow: a queue further below its fair share goes first (held until
            # quota moves in the cohort; queues are then handed room in fair-share order).
            usage = dict(fitting[0].usage)
            if workload.key in self._handed:
                return None  # handed back in fair-share order already
            yielded = self._yield_for_fairness(book, workload, usage, now)
            if yielded is None:
                return None
            return self._hold(workload, now, self._deny(workload, now, "FairShare", yielded, usage))
        preemptible = [a for a in found.assignments if a.mode == Mode.PREEMPT]
        for assignment in preemptible:
            if self._victims(workload, dict(assignment.usage)):
                return None  # placement first; admit() nominates the victims
        reason = "; ".join(found.summaries) or f'no flavor of queue "{queue}" can hold it'
        if len(self._blocked) > 64:
            self._blocked.clear()
        self._blocked.setdefault(cache_key, []).append((workload.priority, total, reason))
        return self._hold(workload, now, self._deny(workload, now, "QuotaExceeded", reason,
                                                    dict(preemptible[0].usage) if preemptible else None,
                                                    never=not found.assignments))

    def _victims(self, workload: Workload, usage: dict[FR, int], reserved: Sequence[str] = ()) -> list[Admitted] | None:
        """Victims for ``workload`` on the book as it will be once the other nominated
        preemptors are in (their victims gone, their room taken, and never victims themselves)."""
        view = self._reserved_view(exclude=workload.key)
        protected = set(self.evicting)
        if view is not self.book:
            protected.update(key for key in view.admitted if key.startswith("reserved:"))
        return find_victims(view, workload, usage, evicting=protected, reserved=reserved)

    def _workload(self, group: GroupLike, queue: str, now: float) -> Workload:
        # Parsed again only when what it is made of changes (not on a status write).
        versions = tuple((metadata.get("name"), metadata.get("uid"), metadata.get("creationTimestamp"),
                          metadata.get("annotations"), p.get("spec"))
                         for p in group.pod_objs for metadata in (p.get("metadata") or {},))
        hit = self._workloads.get(group.key)
        if hit is not None and hit[0] == versions and hit[1].queue == queue and hit[1].priority == group.priority:
            return hit[1]
        workload = Workload(key=group.key, queue=queue, priority=group.priority,
                            created=min((timestamp(p) for p in group.pod_objs), default=now),
                            pod_sets=pod_sets_of(group.pod_objs))
        if len(self._workloads) > 100_000:
            self._workloads.clear()
        self._workloads[group.key] = (versions, workload)
        return workload

    def note_pending(self, workload: Workload, reason: str, message: str = "",
                     usage: dict[FR, int] | None = None) -> None:
        """Record that ``workload`` waits (the scheduler's view of a denial; tests use it too)."""
        self._deny(workload, self.clock.now().timestamp(), reason, message, usage)

    def forget(self, group_key: str) -> None:
        """The scheduler undid an allowed reservation (bind failed, group gone): return the quota."""
        self._freed(self.book.remove(group_key))
        self._admitted_pods.pop(group_key, None)

    # -- lifecycle from the API --------------------------------------------------------------

    def release(self, group_key: str) -> None:
        """The group ended (pods finished or deleted): its quota is free."""
        self._freed(self.book.remove(group_key))
        self._admitted_pods.pop(group_key, None)
        self._workloads.pop(group_key, None)
        # A victim that is gone leaves its room to its preemptor, booked at its next try.
        self.evicting.pop(group_key, None)
        self._drop_pending(group_key)

    def resync(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """Level-triggered rebuild from the pod cache.

        Groups with bound, unfinished pods are booked (after a restart, or if admitted by a
        previous scheduler); booked groups with no such pod and no fresh admission are
        released; pending entries not seen for ``pending_ttl`` are dropped.
        """
        now = self.clock.now().timestamp()
        active: dict[str, list[Mapping[str, Any]]] = {}
        for pod in pods:
            spec = pod.get("spec") or {}
            phase = (pod.get("status") or {}).get("phase")
            if spec.get("nodeName") and phase not in ("Succeeded", "Failed"):
                active.setdefault(group_key_of(pod), []).append(pod)
        for key, members in active.items():
            if key in self.book.admitted:
                continue
            try:
                admitted = self._bound_group(key, members, now)
            except Exception as error:  # one group it cannot read must not stop the rebuild
                if key not in self._unreadable:
                    log.warning("cannot count the quota of bound group %s: %s", key, error)
                self._unreadable.add(key)
                continue
            self._unreadable.discard(key)
            if admitted is not None:
                self.book.add(admitted)
                self._drop_pending(key)
        for key, item in list(self.book.admitted.items()):
            if key not in active and now - item.admitted_at > self.pending_ttl:
                self.release(key)
        for key, entry in list(self.pending.items()):
            if not self._fresh(entry, now, self.pending_ttl):
                self._drop_pending(key)
        for key, nomination in list(self.nominations.items()):
            if now - nomination.at > 10 * self.pending_ttl:
                del self.nominations[key]
                self._nominations_version += 1
                self._release_all = True
                self._notify()
        self.tick()

    def _bound_group(self, key: str, members: Sequence[Mapping[str, Any]], now: float) -> Admitted | None:
        """The booking of a group whose pods are bound (None when it is in no known queue)."""
        namespace = (members[0].get("metadata") or {}).get("namespace") or "default"
        queue = self.queue_of(namespace, _named_queue(members))
        config = self.queues.get(queue or "")
        if config is None:
            return None
        usage: dict[FR, int] = {}
        for pod in members:
            labels = self.node_labels(str((pod.get("spec") or {}).get("nodeName"))) or {}
            for fr, amount in self._pod_usage(config, pod, labels)[0].items():
                usage[fr] = usage.get(fr, 0) + amount
        created = min(timestamp(p) for p in members)
        priority = max(int((p.get("spec") or {}).get("priority") or 0) for p in members)
        return Admitted(key, config.name, priority, created, usage, now)

    def tick(self) -> None:
        """Periodic (the queue manager's pass): ask for :meth:`take_releases` when held groups are due."""
        now = self.clock.now().timestamp()
        if self._dirty_cohorts or any(now - at >= self.head_interval for name, at in self._head_at.items()
                                      if self.held.get(name)) \
                or any(now - at > self.hold_timeout for at in islice(self._held_at.values(), 1)):
            self._notify()

    # -- held groups -----------------------------------------------------------------------

    def _hold(self, workload: Workload, now: float, verdict: Verdict) -> Verdict:
        groups = self.held.setdefault(workload.queue, {})
        if groups.get(workload.key) is not workload:
            groups[workload.key] = workload
            insort(self._held_order.setdefault(workload.queue, []), (order_key(workload), workload.key))
        self._held_at.setdefault(workload.key, now)
        self._head_at.setdefault(workload.queue, now)
        return Verdict(False, verdict.reason, verdict.message, hold=True)

    def _unhold(self, key: str) -> None:
        if self._held_at.pop(key, None) is None:
            return
        for groups in self.held.values():
            if groups.pop(key, None) is not None:
                return

    def _held_in_order(self, queue: str) -> Iterator[Workload]:
        """The queue's held groups in queue order (the sorted list is pruned lazily)."""
        groups = self.held.get(queue) or {}
        order = self._held_order.get(queue) or []
        if len(order) > 2 * len(groups) + 16:
            order = sorted({(order_key(w), k) for k, w in groups.items()})
            self._held_order[queue] = order
        seen: set[str] = set()
        for sort_key, key in order:
            workload = groups.get(key)
            if workload is not None and key not in seen and order_key(workload) == sort_key:
                seen.add(key)
                yield workload

    def _notify(self) -> None:
        if not self._notified and self.notify is not None:
            self._notified = True
            self.notify()

    def _freed(self, item: Admitted | None) -> None:
        if item is None:
            return
        config = self.queues.get(item.queue)
        self._dirty_cohorts.add(config.cohort_key if config is not None else item.queue)
        self._notify()

    def take_releases(self) -> list[str]:
        """Held groups to hand back to the scheduler now (see the module docstring)."""
        self._notified = False
        now = self.clock.now().timestamp()
        out: list[str] = []
        admitted, self._admitted_since = self._admitted_since, []
        if self._release_all:
            self._release_all = False
            self._dirty_cohorts.clear()
            out = list(self._held_at)
            self.counts["handback:all"] += len(out)
        else:
            out = []
            for key, at in self._held_at.items():  # in the order they were held: oldest first
                if now - at <= self.hold_timeout:
                    break
                out.append(key)
            self.counts["handback:timeout"] += len(out)
            dirty, self._dirty_cohorts = self._dirty_cohorts, set()
            for name, at in self._head_at.items():  # safety net for the heads
                if now - at >= self.head_interval and self.held.get(name):
                    dirty.add(self.queues[name].cohort_key if name in self.queues else name)
            book: QuotaBook | None = None
            for cohort in dirty:
                names = [name for name in self.book.cohorts.get(cohort, [cohort]) if self.held.get(name)]
                if not names:
                    continue
                if book is None:
                    book = self._reserved_view(exclude="")
                out.extend(self._fitting(book, names, now, admitted))
            for key, nomination in self.nominations.items():
                if key in self._held_at and not any(v in self.book.admitted for v in nomination.victims):
                    out.append(key)
                    self.counts["handback:preemptor"] += 1
        out = list(dict.fromkeys(out))
        for key in [k for k, (_, at) in self._handed.items() if now - at > HANDED_TTL]:
            del self._handed[key]
        for key in out:
            workload = next((groups[key] for groups in self.held.values() if key in groups), None)
            if workload is not None:
                self._handed[key] = (workload, now)
            self._unhold(key)
        return out

    def _assignments(self, workload: Workload) -> tuple[QuotaBook, Candidates, list[Assignment]]:
        """The book as the precheck sees it (other preemptors' room reserved), the workload's
        flavor assignments on it, and those that fit without preemption (maybe borrowing)."""
        book = self._reserved_view(exclude=workload.key)
        found = candidates(book, workload)
        return book, found, [a for a in found.assignments if a.mode <= Mode.BORROW]

    def _would_admit(self, workload: Workload) -> bool:
        """Whether quota lets ``workload`` in now or with victims its policy allows (what the
        precheck would find), without a trip through the scheduler."""
        book, found, fitting = self._assignments(workload)
        if any(a.mode == Mode.FIT for a in fitting):
            return True
        if fitting:
            now = self.clock.now().timestamp()
            return self._yield_for_fairness(book, workload, dict(fitting[0].usage), now) is None
        return any(self._victims(workload, dict(a.usage)) for a in found.assignments if a.mode == Mode.PREEMPT)

    def _may_preempt(self, head: Workload, admitted: Workload) -> bool:
        """Whether ``admitted`` (just admitted in the head's cohort) may be a victim the held
        ``head`` did not have before: then the head is worth another try."""
        config = self.queues.get(head.queue)
        if config is None or admitted.priority > head.priority:
            return False
        if admitted.queue == head.queue:
            return config.within_queue != "Never"
        if config.fair_preemption != "Never" or (
                config.borrow_within_cohort != "Never" and admitted.priority < head.priority):
            return True
        if config.reclaim_within_cohort == "Never":
            return False
        # reclaim: only while the head would stay within its queue's nominal quota
        total = head.total()
        nominal: dict[str, int] = {}
        used: dict[str, int] = {}
        for fr in config.flavor_resources():
            nominal[fr[1]] = nominal.get(fr[1], 0) + config.quota(*fr).nominal
            used[fr[1]] = used.get(fr[1], 0) + self.book.used(head.queue, fr)
        return any(used.get(r, 0) + amount <= nominal.get(r, 0) for r, amount in total.items() if r in nominal)

    def _fitting(self, book: QuotaBook, names: Sequence[str], now: float, admitted: Sequence[Workload],
                 scan: int = 64) -> list[str]:
        """Held groups of one cohort's queues worth another try: queues furthest below their
        fair share first, each in queue order, those whose request fits the room left
        (shared: what one is handed counts against the others); and each queue's first held
        group when a workload it might preempt was admitted since, or at least every
        ``head_interval`` seconds (it may preempt, or hold its queue)."""
        names = sorted(names, key=book.share)
        first = self.queues[names[0]]
        pool: dict[str, int] = {}
        own: dict[str, dict[str, int]] = {}
        limit: dict[str, dict[str, int]] = {}
        for name in names:
            config = self.queues[name]
            own[name], limit[name] = {}, {}
            for fr in config.flavor_resources():
                resource = fr[1]
                quota = config.quota(*fr)
                used = book.used(name, fr)
                own[name][resource] = own[name].get(resource, 0) + max(0, quota.guaranteed - used)
                limit[name][resource] = limit[name].get(resource, 0) + max(0, book.limit(name, fr) - used)
        if first.cohort is not None:
            for fr in first.flavor_resources():
                pool[fr[1]] = pool.get(fr[1], 0) + max(0, book.pool(first.name, fr) - book.pool_used(first.name, fr))
        for handed, _ in self._handed.values():  # handed back earlier and not decided yet
            if handed.queue in limit:
                for resource, amount in handed.total().items():
                    if resource in limit[handed.queue]:
                        limit[handed.queue][resource] -= amount
                        pool[resource] = pool.get(resource, 0) - amount
        out: list[str] = []
        for name in names:
            for index, workload in enumerate(self._held_in_order(name)):
                if index == 0 and (now - self._head_at.get(name, 0.0) >= self.head_interval
                                   or (workload.key not in self.nominations  # (handed back when its victims are gone)
                                       and any(self._may_preempt(workload, a) for a in admitted)
                                       and self._would_admit(workload))):
                    self._head_at[name] = now
                    out.append(workload.key)
                    self.counts["handback:head"] += 1
                    continue
                if index >= scan or (all(v <= 0 for v in pool.values()) and all(v <= 0 for v in own[name].values())):
                    break
                total = workload.total()
                if all(amount <= min(own[name].get(r, 0) + pool.get(r, 0), limit[name].get(r, 0))
                       for r, amount in total.items() if r in limit[name]):
                    out.append(workload.key)
                    self.counts["handback:room"] += 1
                    for resource, amount in total.items():
                        if resource not in limit[name]:
                            continue
                        mine = min(amount, own[name].get(resource, 0))
                        own[name][resource] -= mine
                        pool[resource] = pool.get(resource, 0) - (amount - mine)
                        limit[name][resource] -= amount
        return out

    def take_evictions(self) -> list[tuple[Admitted, str]]:
        """Victims chosen since the last call, with their preemptor (for the service to evict)."""
        out, self._evictions = self._evictions, []
        return out

    def take_admissions(self) -> list[tuple[str, float]]:
        out, self._admissions = self._admissions, []
        return out

    # -- pieces ------------------------------------------------------------------------------

    def usage_of(self, config: QueueConfig, pod_objs: Sequence[Mapping[str, Any]],
                 placements: Sequence[PlacementLike]) -> tuple[dict[FR, int] | None, str]:
        """Quota usage per (flavor, resource) of the placed pods; None and why if a node
        matches no flavor of the queue."""
        nodes = {placement.pod: placement.node for placement in placements}
        usage: dict[FR, int] = {}
        for pod in pod_objs:
            node = nodes.get(pod_key(pod))
            if node is None:
                continue
            labels = self.node_labels(node) or {}
            part, missing = self._pod_usage(config, pod, labels)
            if missing:
                return None, (f'node "{node}" is not of any flavor of queue "{config.name}" '
                              f"for {missing} (its flavors: "
                              + ", ".join(f.name for g in config.groups for f in g.flavors) + ")")
            for fr, amount in part.items():
                usage[fr] = usage.get(fr, 0) + amount
        return usage, ""

    @staticmethod
    def _pod_usage(config: QueueConfig, pod: Mapping[str, Any],
                   labels: Mapping[str, str]) -> tuple[dict[FR, int], str]:
        usage: dict[FR, int] = {}
        for resource, amount in pod_requests(pod).items():
            if amount <= 0:
                continue
            group = next((g for g in config.groups if resource in g.resources), None)
            if group is None:
                continue  # not covered by this queue: not limited by it
            flavor = next((f for f in group.flavors if f.matches_node(labels)), None)
            if flavor is None:
                return {}, resource
            usage[(flavor.name, resource)] = usage.get((flavor.name, resource), 0) + amount
        return usage, ""

    def _book(self, workload: Workload, usage: dict[FR, int], now: float,
              pod_objs: Sequence[Mapping[str, Any]], note: str) -> Verdict:
        self.book.remove(workload.key)  # idempotent: a retried group is booked once
        self.book.add(Admitted(workload.key, workload.queue, workload.priority, workload.created, usage, now))
        self._unhold(workload.key)
        self._handed.pop(workload.key, None)
        self.counts["Admitted"] += 1
        self._dirty_cohorts.add(self.queues[workload.queue].cohort_key)
        if len(self._admitted_since) < 4096:  # (the heads' safety net covers an overflow)
            self._admitted_since.append(workload)
        self._notify()
        entry = self._drop_pending(workload.key)
        if self.nominations.pop(workload.key, None) is not None:
            self._nominations_version += 1
        waited = now - (entry.first_seen if entry is not None else now)
        self._admissions.append((workload.queue, max(0.0, now - workload.created) if workload.created else waited))
        self._admitted_pods[workload.key] = tuple(pod_key(p) for p in pod_objs)
        flavors = sorted({fr[0] for fr in usage})
        return Verdict(True, "Admitted", f'admitted to queue "{workload.queue}" on flavor(s) {", ".join(flavors) or "-"}'
                       + (f" ({note})" if note else ""))

    def _deny(self, workload: Workload, now: float, reason: str, message: str,
              usage: dict[FR, int] | None = None, *, never: bool = False) -> Verdict:
        self._handed.pop(workload.key, None)
        self.counts[reason] += 1
        entry = self.pending.get(workload.key)
        if entry is not None and now - entry.last_seen > self.pending_ttl:
            self._head_cache.pop(workload.queue, None)  # it was out of the recent set: recount
        if entry is not None and entry.workload.queue != workload.queue:
            self._drop_pending(workload.key)
            entry = None
        was_waiting = entry is not None and entry.reason in _WAITING
        if entry is None:
            entry = PendingEntry(workload, now, now, reason, message, dict(usage or {}), never)
            self.pending[workload.key] = entry
            self._by_queue.setdefault(workload.queue, {})[workload.key] = entry
        else:
            entry.workload, entry.last_seen, entry.reason, entry.message = workload, now, reason, message
            if usage:
                entry.usage = dict(usage)
            entry.never = never
        self._update_heads(entry, was_waiting)
        cached = self._smallest.get(workload.queue)
        if cached is not None and entry.usage and (
                cached[1] is None or sum(entry.usage.values()) < sum(cached[1].usage.values())):
            del self._smallest[workload.queue]  # smaller than the cached one: look again
        return Verdict(False, reason, message)

    def drop_pending(self, key: str) -> None:
        """The waiting group is gone (its pods were deleted)."""
        self._drop_pending(key)

    def _drop_pending(self, key: str) -> PendingEntry | None:
        self._unhold(key)
        self._handed.pop(key, None)
        entry = self.pending.pop(key, None)
        if entry is not None:
            self._forget_head(entry)
            queue = self._by_queue.get(entry.workload.queue)
            if queue is not None:
                queue.pop(key, None)
        return entry

    def _fresh(self, entry: PendingEntry, now: float, ttl: float) -> bool:
        """Seen waiting within ``ttl`` (a held group is not retried, but it waits all along)."""
        return now - entry.last_seen <= ttl or entry.workload.key in self._held_at

    def _recent(self, now: float, queue: str) -> list[PendingEntry]:
        return [e for e in self._by_queue.get(queue, {}).values() if self._fresh(e, now, self.pending_ttl)]

    def _ahead(self, workload: Workload, config: QueueConfig, now: float) -> str | None:
        """Why queue order holds this workload back, or None."""
        if config.strategy != "StrictFIFO":
            # BestEffortFIFO holds only for a group waiting past the starvation limit; entries
            # are kept in the order they started waiting, so the first is the oldest.
            oldest = next(iter(self._by_queue.get(config.name, {}).values()), None)
            if oldest is None or now - oldest.first_seen < self.policy.starvation_seconds:
                return None
        mine = order_key(workload)
        strict, aged = self._heads(config, now)
        for entry in strict if config.strategy == "StrictFIFO" else aged:
            other = entry.workload
            if other.key == workload.key or order_key(other) >= mine:
                continue
            if config.strategy == "StrictFIFO":
                return f'waiting behind {other.key} at the head of queue "{config.name}" (StrictFIFO)'
            return (f'queue "{config.name}" holds for {other.key}, waiting longer than '
                    f"{self.policy.starvation_seconds:.0f}s")
        return None

    def _update_heads(self, entry: PendingEntry, was_waiting: bool) -> None:
        """Keep the cached heads right without re-sorting the queue on every denial."""
        waiting = entry.reason in _WAITING and not entry.never
        if was_waiting == waiting:
            return
        if not waiting:
            self._forget_head(entry)
            return
        cached = self._head_cache.get(entry.workload.queue)
        if cached is None:
            return
        strict = sorted([*(e for e in cached[1] if e is not entry), entry], key=lambda e: order_key(e.workload))[:2]
        # (a new entry is not aged: the aged list stays)
        self._head_cache[entry.workload.queue] = (cached[0], strict, cached[2])

    def _forget_head(self, entry: PendingEntry) -> None:
        cached = self._head_cache.get(entry.workload.queue)
        if cached is not None and any(e is entry for e in (*cached[1], *cached[2])):
            del self._head_cache[entry.workload.queue]

    def _heads(self, config: QueueConfig, now: float) -> tuple[list[PendingEntry], list[PendingEntry]]:
        """The first two waiting entries of the queue, and the first two that waited past the
        starvation limit, in queue order; cached until the queue's waiting set changes (or 1 s)."""
        cached = self._head_cache.get(config.name)
        if cached is not None and now - cached[0] < 1.0:
            return cached[1], cached[2]
        waiting = sorted((e for e in self._recent(now, config.name) if not e.never and e.reason in _WAITING),
                         key=lambda e: order_key(e.workload))
        strict = waiting[:2]
        aged = [e for e in waiting if now - e.first_seen >= self.policy.starvation_seconds][:2]
        self._head_cache[config.name] = (now, strict, aged)
        return strict, aged

    def _reserved_view(self, exclude: str) -> QuotaBook:
        """The book as others must see it: nominated preemptors' room is taken."""
        if not self.nominations:
            return self.book
        view = self.book.copy()
        for key, nomination in self.nominations.items():
            if key == exclude:
                continue
            for victim in nomination.victims:
                view.remove(victim)
            view.add(Admitted(f"reserved:{key}", nomination.preemptor.queue, nomination.preemptor.priority,
                              nomination.preemptor.created, nomination.usage, nomination.at))
        return view

    def _smallest_waiting(self, queue: str, now: float) -> PendingEntry | None:
        """The queue's waiting entry with the smallest request (cached for ``SMALLEST_TTL``)."""
        cached = self._smallest.get(queue)
        if cached is not None and now - cached[0] < SMALLEST_TTL and (
                cached[1] is None or self.pending.get(cached[1].workload.key) is cached[1]):
            return cached[1]
        best: PendingEntry | None = None
        best_size = 0
        for entry in self._by_queue.get(queue, {}).values():
            if not entry.usage or entry.never or not self._fresh(entry, now, self.fair_wait):
                continue
            size = sum(entry.usage.values())
            if best is None or size < best_size:
                best, best_size = entry, size
        self._smallest[queue] = (now, best)
        return best

    def _yield_for_fairness(self, book: QuotaBook, workload: Workload, usage: dict[FR, int],
                            now: float) -> str | None:
        """Why a borrowing group yields: another queue of the cohort waits with work that fits
        now and whose share after admitting it would be lower (its smallest waiting request
        stands for it; a lower share there is what fair sharing cares about)."""
        config = self.queues[workload.queue]
        if config.cohort is None:
            return None
        mine = book.share(workload.queue, usage)
        for name in book.members(workload.queue):
            if name == workload.queue or name not in self.queues:
                continue
            entry = self._smallest_waiting(name, now)
            if entry is None or not any(fr in usage for fr in entry.usage) or entry.workload.key in self._handed:
                continue  # (one handed back already has its room set aside)
            if book.fits(name, entry.usage).mode > Mode.BORROW:
                continue
            if book.share(name, entry.usage) < mine:
                return f'queue "{name}" is further below its fair share after admission: its waiting work goes first'
        return None

    # -- reading -----------------------------------------------------------------------------

    def explain(self, group_key: str) -> list[str]:
        """Lines for ``corral explain``: queue, position, what blocks it, would-be victims."""
        entry = self.pending.get(group_key)
        if entry is None:
            item = self.book.admitted.get(group_key)
            if item is None:
                return []
            return [f'admitted to queue "{item.queue}": ' + ", ".join(
                f"{fr[0]}/{fr[1]}={fmt_milli(a, fr[1])}" for fr, a in sorted(item.usage.items()))]
        workload = entry.workload
        same = sorted((e.workload for e in self._by_queue.get(workload.queue, {}).values()), key=order_key)
        position = next((i for i, w in enumerate(same) if w.key == group_key), 0)
        lines = [f'queue "{workload.queue}": position {position + 1} of {len(same)} waiting for quota',
                 f"{entry.reason}: {entry.message}"]
        if entry.usage and workload.queue in self.queues:
            victims = self._victims(workload, entry.usage)
            if victims:
                lines.append("would preempt: " + ", ".join(f"{v.key} (queue {v.queue}, priority {v.priority})"
                                                           for v in victims))
            elif victims is None:
                lines.append("would preempt: nothing (the queue's preemption policy allows no victims)")
        return lines


def _named_queue(pods: Iterable[Mapping[str, Any]]) -> str | None:
    for pod in pods:
        named = ((pod.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL)
        if named:
            return str(named)
    return None


__all__ = ["GroupLike", "Nomination", "PendingEntry", "PlacementLike", "PodSet", "QueueAdmission", "Verdict",
           "group_key_of"]
