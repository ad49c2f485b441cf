"""``Queue`` (corral.dev/v1alpha1, cluster-scoped): a team's share of the cluster.

One kind plays the part of Kueue's ClusterQueue and LocalQueue together:

- ``namespaces`` / ``namespaceSelector``: whose work it serves; ``default: true`` makes it
  the queue for work in those namespaces that names no queue (label ``corral.dev/queue``).
- ``resourceGroups``: resources quota'd together, each with an ordered list of *flavors*.
  A flavor is a set of node labels (typically one GPU model,
  ``nvidia.com/gpu.product: NVIDIA-H100-80GB``; no labels = any node) and per resource a
  ``nominalQuota`` (guaranteed), a ``borrowingLimit`` (how much more it may take from its
  cohort; absent = unlimited) and a ``lendingLimit`` (how much of its nominal quota the
  cohort may use while it is idle; absent = all of it).
- ``cohort``: queues with the same cohort lend and borrow among themselves.
- ``fairSharing.weight``: weight in the cohort's weighted dominant-resource fair share.
- ``preemption``: ``withinQueue`` (Never | LowerPriority | LowerOrNewerEqualPriority),
  ``reclaimWithinCohort`` (Never | LowerPriority | Any), ``borrowWithinCohort``.
- ``queueingStrategy``: StrictFIFO (nothing passes a head that cannot be admitted) or
  BestEffortFIFO (smaller work may pass it; an aged head stops being passed).
- ``stopPolicy``: None | Hold (admit nothing new) | HoldAndDrain (also evict admitted work).

The status is written by the queue status controller from the scheduler's decisions.
The pure quota and fair-share policy lives in ``corral.scheduler.quota``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from corral.api.meta import Condition, CorralObject, LabelSelector, StrictModel
from corral.api.registry import Obj, PrinterColumn, ResourceType
from corral.util.quantity import QuantityError, parse_quantity

Quantity = str | int | float
GPU = "nvidia.com/gpu"


def _check_quantity(value: Quantity | None, field: str) -> Quantity | None:
    if value is None:
        return None
    try:
        amount = parse_quantity(value)
    except QuantityError as error:
        raise ValueError(f"{field}: {error}") from None
    if amount < 0:
        raise ValueError(f"{field}: must not be negative, got {value!r}")
    return value


class ResourceQuota(StrictModel):
    """Quota of one resource in one flavor."""

    name: str = Field(description="Resource name, e.g. nvidia.com/gpu, cpu, memory.")
    nominal_quota: Quantity = Field(alias="nominalQuota", description="Guaranteed amount.")
    borrowing_limit: Quantity | None = Field(
        default=None, alias="borrowingLimit",
        description="How much beyond nominal the queue may borrow from its cohort (absent: unlimited).")
    lending_limit: Quantity | None = Field(
        default=None, alias="lendingLimit",
        description="How much of the nominal quota the cohort may borrow (absent: all of it).")

    @model_validator(mode="after")
    def _quantities(self) -> ResourceQuota:
        _check_quantity(self.nominal_quota, "nominalQuota")
        _check_quantity(self.borrowing_limit, "borrowingLimit")
        _check_quantity(self.lending_limit, "lendingLimit")
        if self.lending_limit is not None and parse_quantity(self.lending_limit) > parse_quantity(self.nominal_quota):
            raise ValueError(f"lendingLimit {self.lending_limit} exceeds nominalQuota {self.nominal_quota}")
        return self


class FlavorQuotas(StrictModel):
    """One flavor (a node-label set, e.g. a GPU model) and its quotas."""

    name: str = Field(description="Flavor name, unique in the queue; queues in a cohort share flavors by name.")
    node_labels: dict[str, str] | None = Field(
        default=None, alias="nodeLabels",
        description="Labels a node must carry to count as this flavor (absent: any node).")
    resources: list[ResourceQuota]

    @field_validator("resources")
    @classmethod
    def _unique_resources(cls, value: list[ResourceQuota]) -> list[ResourceQuota]:
        names = [quota.name for quota in value]
        dup = {name for name in names if names.count(name) > 1}
        if dup:
            raise ValueError(f"resource {sorted(dup)[0]!r} is listed twice")
        return value


class ResourceGroup(StrictModel):
    """Resources that are quota'd together, with flavors tried in order."""

    covered_resources: list[str] | None = Field(
        default=None, alias="coveredResources",
        description="Resources this group covers (absent: those its flavors list).")
    flavors: list[FlavorQuotas]


class FairSharing(StrictModel):
    weight: float = Field(default=1.0, ge=0, description="Weight in the cohort's fair share (0: only idle capacity).")
    preemption_strategy: Literal["Never", "LessThanOrEqualToFinalShare", "LessThanInitialShare"] = Field(
        default="Never", alias="preemptionStrategy",
        description="Fair-share preemption: while this queue borrows, it may preempt workloads of the cohort "
                    "member furthest above its fair share (allowed by reclaimWithinCohort, never of higher "
                    "priority) when its own share after admission stays at most that queue's share after the "
                    "preemption (LessThanOrEqualToFinalShare) or below its share before it (LessThanInitialShare).")


class BorrowWithinCohort(StrictModel):
    policy: Literal["Never", "LowerPriority"] = "Never"
    max_priority_threshold: int | None = Field(default=None, alias="maxPriorityThreshold")


class Preemption(StrictModel):
    within_queue: Literal["Never", "LowerPriority", "LowerOrNewerEqualPriority"] = Field(
        default="Never", alias="withinQueue")
    reclaim_within_cohort: Literal["Never", "LowerPriority", "Any"] = Field(
        default="Never", alias="reclaimWithinCohort")
    borrow_within_cohort: BorrowWithinCohort | None = Field(default=None, alias="borrowWithinCohort")


class QueueSpec(StrictModel):
    namespaces: list[str] | None = Field(default=None, description="Namespaces whose work this queue serves.")
    namespace_selector: LabelSelector | None = Field(default=None, alias="namespaceSelector")
    default: bool = Field(default=False, description="Queue for work in its namespaces that names no queue.")
    cohort: str | None = None
    resource_groups: list[ResourceGroup] = Field(default_factory=list, alias="resourceGroups")
    fair_sharing: FairSharing | None = Field(default=None, alias="fairSharing")
    preemption: Preemption | None = None
    queueing_strategy: Literal["BestEffortFIFO", "StrictFIFO"] = Field(
        default="BestEffortFIFO", alias="queueingStrategy")
    stop_policy: Literal["None", "Hold", "HoldAndDrain"] = Field(default="None", alias="stopPolicy")

    @model_validator(mode="after")
    def _flavors_once(self) -> QueueSpec:
        seen: dict[str, int] = {}
        covered: dict[str, int] = {}
        for index, group in enumerate(self.resource_groups):
            for flavor in group.flavors:
                if flavor.name in seen:
                    raise ValueError(f"resourceGroups[{index}]: flavor {flavor.name!r} appears in more than one place")
                seen[flavor.name] = index
                for quota in flavor.resources:
                    if group.covered_resources is not None and quota.name not in group.covered_resources:
                        raise ValueError(
                            f"resourceGroups[{index}].flavors[{flavor.name}]: resource {quota.name!r} "
                            "is not in coveredResources")
                    other = covered.setdefault(quota.name, index)
                    if other != index:
                        raise ValueError(f"resource {quota.name!r} is covered by resourceGroups[{other}] "
                                         f"and resourceGroups[{index}]")
        return self


class ResourceUsage(StrictModel):
    name: str
    total: str = "0"
    borrowed: str = "0"


class FlavorUsage(StrictModel):
    name: str
    resources: list[ResourceUsage] = Field(default_factory=list)


class FairShareStatus(StrictModel):
    weighted_share: float = Field(default=0.0, alias="weightedShare")


class QueueStatus(StrictModel):
    pending: int = 0
    admitted: int = 0
    flavors_usage: list[FlavorUsage] = Field(default_factory=list, alias="flavorsUsage")
    fair_sharing: FairShareStatus | None = Field(default=None, alias="fairSharing")
    conditions: list[Condition] = Field(default_factory=list)


class Queue(CorralObject):
    api_version: Literal["corral.dev/v1alpha1"] = Field(default="corral.dev/v1alpha1", alias="apiVersion")
    kind: Literal["Queue"] = "Queue"
    spec: QueueSpec = Field(default_factory=QueueSpec)
    status: QueueStatus | None = None


def _gpu_total(obj: Obj, key: str) -> str:
    """Sum of ``key`` (total or borrowed) over flavors for nvidia.com/gpu in the status."""
    total = parse_quantity(0)
    for flavor in (obj.get("status") or {}).get("flavorsUsage") or []:
        for resource in flavor.get("resources") or []:
            if resource.get("name") == GPU:
                total += parse_quantity(resource.get(key) or 0)
    return _fmt(total)


def _gpu_quota(obj: Obj) -> str:
    total = parse_quantity(0)
    for group in (obj.get("spec") or {}).get("resourceGroups") or []:
        for flavor in group.get("flavors") or []:
            for resource in flavor.get("resources") or []:
                if resource.get("name") == GPU:
                    total += parse_quantity(resource.get("nominalQuota") or 0)
    return _fmt(total)


def _fmt(amount: Any) -> str:
    return str(int(amount)) if amount == int(amount) else str(float(amount))


def _fair_share(obj: Obj) -> str:
    share = ((obj.get("status") or {}).get("fairSharing") or {}).get("weightedShare")
    return "" if share is None else f"{float(share):.2f}"


def resource_type() -> ResourceType:
    return ResourceType(
        group="corral.dev",
        version="v1alpha1",
        kind="Queue",
        plural="queues",
        singular="queue",
        namespaced=False,
        model=Queue,
        short_names=("q",),
        categories=("corral", "all"),
        strict=True,
        columns=(
            PrinterColumn("Name", "string", lambda o: o["metadata"]["name"], format="name"),
            PrinterColumn("Cohort", "string", lambda o: (o.get("spec") or {}).get("cohort") or "",
                          json_path=".spec.cohort"),
            PrinterColumn("Pending", "integer", lambda o: (o.get("status") or {}).get("pending", 0),
                          json_path=".status.pending"),
            PrinterColumn("Admitted", "integer", lambda o: (o.get("status") or {}).get("admitted", 0),
                          json_path=".status.admitted"),
            PrinterColumn("GPU-Used", "string", lambda o: _gpu_total(o, "total")),
            PrinterColumn("GPU-Quota", "string", _gpu_quota),
            PrinterColumn("Borrowed", "string", lambda o: _gpu_total(o, "borrowed")),
            PrinterColumn("Fair-Share", "string", _fair_share),
        ),
    )
