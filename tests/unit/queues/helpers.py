"""Builders for the queue policy tests."""

from __future__ import annotations

from typing import Any

from corral.scheduler.quota import PodSet, QueueConfig, Workload, milli, parse_queue

GPU = "nvidia.com/gpu"


def queue_obj(name: str, *, cohort: str | None = "c", flavors: list[tuple[str, dict[str, str], dict[str, Any]]] | None = None,
              nominal: Any = 4, borrowing: Any = None, lending: Any = None, resource: str = GPU,
              weight: float = 1.0, within: str = "Never", reclaim: str = "Never", borrow_policy: str = "Never",
              strategy: str = "BestEffortFIFO", stop: str = "None", namespaces: list[str] | None = None,
              default: bool = False, fair: str = "Never") -> dict[str, Any]:
    if flavors is None:
        quota: dict[str, Any] = {"name": resource, "nominalQuota": nominal}
        if borrowing is not None:
            quota["borrowingLimit"] = borrowing
        if lending is not None:
            quota["lendingLimit"] = lending
        flavors = [("default", {}, quota)]
    spec: dict[str, Any] = {
        "resourceGroups": [{"flavors": [{"name": f, "nodeLabels": labels, "resources": [q]} for f, labels, q in flavors]}],
        "fairSharing": {"weight": weight, "preemptionStrategy": fair},
        "preemption": {"withinQueue": within, "reclaimWithinCohort": reclaim,
                       "borrowWithinCohort": {"policy": borrow_policy}},
        "queueingStrategy": strategy,
        "stopPolicy": stop,
        "default": default,
    }
    if cohort:
        spec["cohort"] = cohort
    if namespaces:
        spec["namespaces"] = namespaces
    return {"apiVersion": "corral.dev/v1alpha1", "kind": "Queue", "metadata": {"name": name}, "spec": spec}


def queue(name: str, **kwargs: Any) -> QueueConfig:
    return parse_queue(queue_obj(name, **kwargs))


def wl(key: str, queue_name: str, amount: float = 1, *, count: int = 1, priority: int = 0, created: float = 0.0,
       resource: str = GPU, selector: dict[str, str] | None = None) -> Workload:
    return Workload(key=key, queue=queue_name, priority=priority, created=created,
                    pod_sets=(PodSet(count, {resource: milli(amount)}, selector or {}),))
