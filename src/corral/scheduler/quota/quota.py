"""Queue configuration and quota accounting per queue, cohort, flavor and resource.

Amounts are integers in thousandths of the resource's base unit (``milli``): ``cpu: 1`` is
1000, ``nvidia.com/gpu: 1`` is 1000, a half-GPU share is 500, ``memory: 1Ki`` is 1,024,000.
Integers keep the accounting exact and the invariants checkable.

The lending model, per cohort and ``(flavor, resource)``:

- a queue's *guaranteed* part is ``nominal - lendingLimit`` (0 without a lending limit):
  only it ever uses that part;
- the cohort's *pool* is the sum of the members' lendable parts
  (``lendingLimit``, or all of ``nominal``);
- a queue's usage above its guaranteed part draws on the pool; the pool is never
  overdrawn, so a queue is never lent below ``nominal - lendingLimit`` and the cohort never
  uses more than the sum of its nominal quotas;
- a queue never uses more than ``nominal + borrowingLimit``.

A queue without a cohort is a cohort of one: it can use its nominal quota and nothing more.
:class:`QuotaBook` holds the admitted workloads and their usage; it does no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from corral.util.quantity import parse_quantity

FR = tuple[str, str]
"""A ``(flavor, resource)`` pair."""


def milli(value: str | int | float) -> int:
    """A quantity in thousandths of its base unit, rounded up."""
    amount = parse_quantity(value) * 1000
    return int(-(-amount.numerator // amount.denominator))


def fmt_milli(amount: int, resource: str = "") -> str:
    """An amount in thousandths printed the way a person writes the quantity."""
    if amount % 1000 == 0:
        return str(amount // 1000)
    if resource == "cpu":
        return f"{amount}m"
    return f"{amount / 1000:g}"


@dataclass(frozen=True)
class Quota:
    nominal: int
    borrowing_limit: int | None = None
    lending_limit: int | None = None

    @property
    def guaranteed(self) -> int:
        """The part of nominal that is never lent."""
        return 0 if self.lending_limit is None else self.nominal - self.lending_limit

    @property
    def lendable(self) -> int:
        return self.nominal - self.guaranteed


NO_QUOTA = Quota(nominal=0, borrowing_limit=0, lending_limit=0)


@dataclass(frozen=True)
class Flavor:
    name: str
    node_labels: Mapping[str, str]
    quotas: Mapping[str, Quota]

    def compatible(self, node_selector: Mapping[str, str]) -> bool:
        """Whether pods with this nodeSelector can run on this flavor's nodes."""
        return all(node_selector.get(key, value) == value for key, value in self.node_labels.items())

    def matches_node(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.node_labels.items())


@dataclass(frozen=True)
class ResourceGroupConfig:
    resources: frozenset[str]
    flavors: tuple[Flavor, ...]


WITHIN_QUEUE = ("Never", "LowerPriority", "LowerOrNewerEqualPriority")
RECLAIM = ("Never", "LowerPriority", "Any")


@dataclass(frozen=True)
class QueueConfig:
    """The parts of a ``Queue`` the admission policy reads."""

    name: str
    cohort: str | None = None
    groups: tuple[ResourceGroupConfig, ...] = ()
    weight: float = 1.0
    fair_preemption: str = "Never"
    """``fairSharing.preemptionStrategy``: Never, LessThanOrEqualToFinalShare, LessThanInitialShare."""
    within_queue: str = "Never"
    reclaim_within_cohort: str = "Never"
    borrow_within_cohort: str = "Never"
    borrow_priority_threshold: int | None = None
    strategy: str = "BestEffortFIFO"
    stop_policy: str = "None"
    namespaces: tuple[str, ...] = ()
    namespace_selector: Mapping[str, Any] | None = None
    default: bool = False

    @property
    def cohort_key(self) -> str:
        return self.cohort or f"queue:{self.name}"

    def quota(self, flavor: str, resource: str) -> Quota:
        for group in self.groups:
            for candidate in group.flavors:
                if candidate.name == flavor:
                    return candidate.quotas.get(resource, NO_QUOTA)
        return NO_QUOTA

    def flavor(self, name: str) -> Flavor | None:
        for group in self.groups:
            for candidate in group.flavors:
                if candidate.name == name:
                    return candidate
        return None

    def covered(self) -> frozenset[str]:
        out: set[str] = set()
        for group in self.groups:
            out |= group.resources
        return frozenset(out)

    def flavor_resources(self) -> list[FR]:
        return [(flavor.name, resource) for group in self.groups for flavor in group.flavors
                for resource in sorted(group.resources)]


class QueueSpecError(ValueError):
    """A Queue whose spec admission cannot use; the message names the field and the value."""


MAX_MILLI = 2**63 - 1
"""The largest quota in thousandths of a unit (Kubernetes keeps quantities in 64 bits)."""


def _quota_milli(value: Any, where: str) -> int:
    try:
        amount = milli(value)
    except (ValueError, TypeError) as exc:  # QuantityError is a ValueError
        raise QueueSpecError(f"{where}: {value!r:.60} is not a quantity ({exc})") from None
    if not 0 <= amount <= MAX_MILLI:
        raise QueueSpecError(f"{where}: {value!r:.60} is out of range")
    return amount


def parse_queue(obj: Mapping[str, Any]) -> QueueConfig:
    """A ``Queue`` object (a JSON dict) as a :class:`QueueConfig`.

    The API server validates Queues on write, but a Queue stored by an older version (e.g.
    ``fairSharing.weight: .inf``, which JSON stores as ``null``) must not stop admission:
    anything this parse cannot use raises :class:`QueueSpecError` naming the field, and the
    queue manager reports that Queue (``Active=False``, reason ``InvalidSpec``) and skips it.
    """
    try:
        return _parse_queue(obj)
    except QueueSpecError:
        raise
    except (TypeError, AttributeError, ValueError, KeyError, OverflowError) as exc:
        raise QueueSpecError(f"spec: malformed Queue ({type(exc).__name__}: {exc})") from None


def _parse_queue(obj: Mapping[str, Any]) -> QueueConfig:
    spec = obj.get("spec") or {}
    groups: list[ResourceGroupConfig] = []
    for g, group in enumerate(spec.get("resourceGroups") or []):
        flavors: list[Flavor] = []
        resources: set[str] = set(group.get("coveredResources") or [])
        for f, flavor in enumerate(group.get("flavors") or []):
            quotas: dict[str, Quota] = {}
            for r, quota in enumerate(flavor.get("resources") or []):
                where = f"spec.resourceGroups[{g}].flavors[{f}].resources[{r}]"
                borrowing = quota.get("borrowingLimit")
                lending = quota.get("lendingLimit")
                name = quota.get("name")
                if not isinstance(name, str) or not name:
                    raise QueueSpecError(f"{where}.name: {name!r:.60} must be a resource name")
                quotas[name] = Quota(
                    nominal=_quota_milli(quota.get("nominalQuota", 0), f"{where}.nominalQuota"),
                    borrowing_limit=None if borrowing is None else _quota_milli(borrowing, f"{where}.borrowingLimit"),
                    lending_limit=None if lending is None else _quota_milli(lending, f"{where}.lendingLimit"),
                )
                resources.add(name)
            flavor_name = flavor.get("name")
            if not isinstance(flavor_name, str) or not flavor_name:
                raise QueueSpecError(f"spec.resourceGroups[{g}].flavors[{f}].name: {flavor_name!r:.60} must be a name")
            flavors.append(Flavor(flavor_name, dict(flavor.get("nodeLabels") or {}), quotas))
        groups.append(ResourceGroupConfig(frozenset(resources), tuple(flavors)))
    preemption = spec.get("preemption") or {}
    borrow = preemption.get("borrowWithinCohort") or {}
    fair = spec.get("fairSharing") or {}
    weight = fair.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
        raise QueueSpecError(f"spec.fairSharing.weight: {weight!r:.60} must be a finite number >= 0")
    cohort = spec.get("cohort") or None
    if cohort is not None and not isinstance(cohort, str):
        raise QueueSpecError(f"spec.cohort: {cohort!r:.60} must be a name")
    namespaces = spec.get("namespaces") or ()
    if not isinstance(namespaces, list | tuple) or not all(isinstance(n, str) for n in namespaces):
        raise QueueSpecError(f"spec.namespaces: {namespaces!r:.60} must be a list of names")
    threshold = borrow.get("maxPriorityThreshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int)):
        raise QueueSpecError(f"spec.preemption.borrowWithinCohort.maxPriorityThreshold: {threshold!r:.60} "
                             "must be an integer")
    return QueueConfig(
        name=obj["metadata"]["name"],
        cohort=cohort,
        groups=tuple(groups),
        weight=float(weight),
        fair_preemption=str(fair.get("preemptionStrategy", "Never")),
        within_queue=preemption.get("withinQueue", "Never"),
        reclaim_within_cohort=preemption.get("reclaimWithinCohort", "Never"),
        borrow_within_cohort=borrow.get("policy", "Never"),
        borrow_priority_threshold=threshold,
        strategy=spec.get("queueingStrategy", "BestEffortFIFO"),
        stop_policy=spec.get("stopPolicy", "None"),
        namespaces=tuple(namespaces),
        namespace_selector=spec.get("namespaceSelector"),
        default=bool(spec.get("default", False)),
    )


class Mode(IntEnum):
    """How a request fits a queue's quota, best first."""

    FIT = 0
    BORROW = 1
    PREEMPT = 2
    NOFIT = 3


@dataclass(frozen=True)
class Fit:
    mode: Mode
    reason: str = ""
    blocking: FR | None = None
    summary: str = ""
    """The reason without the live figures: stable while the situation holds, so a
    condition that carries it is not rewritten at every retry."""

    @property
    def stable(self) -> str:
        return self.summary or self.reason


@dataclass(frozen=True)
class Admitted:
    """A workload holding quota: its usage per ``(flavor, resource)``."""

    key: str
    queue: str
    priority: int
    created: float
    usage: Mapping[FR, int]
    admitted_at: float = 0.0


@dataclass
class QuotaBook:
    """Usage per queue and the cohorts' pools; add and remove admitted workloads.

    ``check_invariants`` states what must always hold; the property tests call it after
    every step.
    """

    queues: dict[str, QueueConfig]
    admitted: dict[str, Admitted] = field(default_factory=dict)
    usage: dict[str, dict[FR, int]] = field(default_factory=dict)
    cohorts: dict[str, list[str]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, queues: Iterable[QueueConfig], admitted: Iterable[Admitted] = ()) -> QuotaBook:
        book = cls(queues={queue.name: queue for queue in queues})
        for queue in book.queues.values():
            book.cohorts.setdefault(queue.cohort_key, []).append(queue.name)
            book.usage.setdefault(queue.name, {})
        for item in admitted:
            book.add(item)
        return book

    def copy(self) -> QuotaBook:
        return QuotaBook(queues=self.queues, admitted=dict(self.admitted),
                         usage={name: dict(used) for name, used in self.usage.items()},
                         cohorts=self.cohorts, versions=dict(self.versions))

    def version(self, queue: str) -> int:
        """A counter that moves whenever usage in the queue's cohort changes."""
        config = self.queues.get(queue)
        return self.versions.get(config.cohort_key if config else queue, 0)

    def _bump(self, queue: str) -> None:
        config = self.queues.get(queue)
        key = config.cohort_key if config else queue
        self.versions[key] = self.versions.get(key, 0) + 1

    # -- accounting -------------------------------------------------------------------------

    def add(self, item: Admitted) -> None:
        if item.key in self.admitted:
            raise ValueError(f"workload {item.key} is already admitted")
        self.admitted[item.key] = item
        self._bump(item.queue)
        used = self.usage.setdefault(item.queue, {})
        for fr, amount in item.usage.items():
            used[fr] = used.get(fr, 0) + amount

    def remove(self, key: str) -> Admitted | None:
        item = self.admitted.pop(key, None)
        if item is None:
            return None
        self._bump(item.queue)
        used = self.usage.setdefault(item.queue, {})
        for fr, amount in item.usage.items():
            used[fr] = used.get(fr, 0) - amount
        return item

    def used(self, queue: str, fr: FR) -> int:
        return self.usage.get(queue, {}).get(fr, 0)

    def borrowed(self, queue: str, fr: FR) -> int:
        return max(0, self.used(queue, fr) - self.queues[queue].quota(*fr).nominal)

    def members(self, queue: str) -> list[str]:
        return self.cohorts.get(self.queues[queue].cohort_key, [queue])

    def pool(self, queue: str, fr: FR) -> int:
        """Lendable capacity of the queue's cohort in ``fr``."""
        return sum(self.queues[name].quota(*fr).lendable for name in self.members(queue))

    def pool_used(self, queue: str, fr: FR) -> int:
        total = 0
        for name in self.members(queue):
            over = self.used(name, fr) - self.queues[name].quota(*fr).guaranteed
            if over > 0:
                total += over
        return total

    def cohort_nominal(self, queue: str, fr: FR) -> int:
        return sum(self.queues[name].quota(*fr).nominal for name in self.members(queue))

    def cohort_used(self, queue: str, fr: FR) -> int:
        return sum(self.used(name, fr) for name in self.members(queue))

    def available(self, queue: str, fr: FR) -> int:
        """How much more of ``fr`` the queue can take right now, borrowing included."""
        config = self.queues[queue]
        quota = config.quota(*fr)
        used = self.used(queue, fr)
        room = quota.guaranteed - used if used < quota.guaranteed else 0
        room += self.pool(queue, fr) - self.pool_used(queue, fr)
        limit = self.limit(queue, fr) - used
        return max(0, min(room, limit))

    def limit(self, queue: str, fr: FR) -> int:
        """The most the queue may ever use of ``fr``: nominal plus its borrowing limit."""
        config = self.queues[queue]
        quota = config.quota(*fr)
        if config.cohort is None:
            return quota.nominal
        capacity = quota.guaranteed + self.pool(queue, fr)
        if quota.borrowing_limit is None:
            return capacity
        return min(capacity, quota.nominal + quota.borrowing_limit)

    # -- fitting ----------------------------------------------------------------------------

    def fits(self, queue: str, request: Mapping[FR, int]) -> Fit:
        """Whether ``request`` fits the queue now (FIT/BORROW), after preemption, or never."""
        config = self.queues[queue]
        worst = Fit(Mode.FIT)
        for fr, amount in sorted(request.items()):
            if amount <= 0:
                continue
            quota = config.quota(*fr)
            used = self.used(queue, fr)
            limit = self.limit(queue, fr)
            label = f'queue "{queue}" flavor "{fr[0]}" {fr[1]}'
            if used + amount > limit and amount > limit:
                return Fit(Mode.NOFIT, f"{label}: requests {fmt_milli(amount, fr[1])} but the queue may use at most "
                           f"{fmt_milli(limit, fr[1])} (nominal {fmt_milli(quota.nominal, fr[1])}"
                           f"{self._borrow_text(config, quota, fr)})", fr)
            available = self.available(queue, fr)
            if amount > available:
                detail = (f"{label}: requests {fmt_milli(amount, fr[1])}, available {fmt_milli(available, fr[1])} "
                          f"(queue uses {fmt_milli(used, fr[1])} of nominal {fmt_milli(quota.nominal, fr[1])}"
                          f"{self._borrow_text(config, quota, fr)}")
                if config.cohort is not None:
                    free = self.pool(queue, fr) - self.pool_used(queue, fr)
                    detail += f'; cohort "{config.cohort}" has {fmt_milli(max(0, free), fr[1])} unused'
                detail += ")"
                summary = (f"{label}: requests {fmt_milli(amount, fr[1])}, more than is free "
                           f"(nominal {fmt_milli(quota.nominal, fr[1])}{self._borrow_text(config, quota, fr)}"
                           + (f'; cohort "{config.cohort}"' if config.cohort is not None else "") + ")")
                if worst.mode < Mode.PREEMPT:
                    worst = Fit(Mode.PREEMPT, detail, fr, summary)
                continue
            if used + amount > quota.nominal and worst.mode < Mode.BORROW:
                worst = Fit(Mode.BORROW, f"{label}: borrows {fmt_milli(used + amount - quota.nominal, fr[1])} "
                            f'from cohort "{config.cohort}"', fr)
        return worst

    @staticmethod
    def _borrow_text(config: QueueConfig, quota: Quota, fr: FR) -> str:
        if config.cohort is None:
            return ", no cohort to borrow from"
        if quota.borrowing_limit is None:
            return ""
        return f", borrowing limit {fmt_milli(quota.borrowing_limit, fr[1])}"

    # -- fair share -------------------------------------------------------------------------

    def share(self, queue: str, extra: Mapping[FR, int] | None = None) -> float:
        """Weighted dominant-resource share: the largest fraction of the cohort's lendable
        capacity the queue borrows (above its nominal quota), divided by its weight.

        0 for a queue within its nominal quota; lower means further below its fair share.
        """
        config = self.queues[queue]
        dominant = 0.0
        frs = set(self.usage.get(queue, {}))
        if extra:
            frs |= set(extra)
        for fr in frs:
            used = self.used(queue, fr) + (extra or {}).get(fr, 0)
            borrowed = used - config.quota(*fr).nominal
            if borrowed <= 0:
                continue
            pool = self.pool(queue, fr)
            dominant = max(dominant, borrowed / pool if pool > 0 else 1.0)
        if dominant == 0.0:
            return 0.0
        return math.inf if config.weight <= 0 else dominant / config.weight

    # -- invariants -------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise AssertionError naming the first broken invariant."""
        for name, config in self.queues.items():
            for fr, used in self.usage.get(name, {}).items():
                if used < 0:
                    raise AssertionError(f"{name} {fr}: negative usage {used}")
                if used > self.limit(name, fr):
                    raise AssertionError(f"{name} {fr}: usage {used} > limit {self.limit(name, fr)}")
                quota = config.quota(*fr)
                if config.cohort is not None and quota.borrowing_limit is not None \
                        and used > quota.nominal + quota.borrowing_limit:
                    raise AssertionError(f"{name} {fr}: usage {used} > nominal + borrowingLimit")
        for members in self.cohorts.values():
            frs = {fr for name in members for fr in self.usage.get(name, {})}
            for fr in frs:
                head = members[0]
                if self.pool_used(head, fr) > self.pool(head, fr):
                    raise AssertionError(f"cohort of {head} {fr}: lent {self.pool_used(head, fr)} "
                                         f"> lendable {self.pool(head, fr)}")
                if self.cohort_used(head, fr) > self.cohort_nominal(head, fr):
                    raise AssertionError(f"cohort of {head} {fr}: usage exceeds the cohort's total")
