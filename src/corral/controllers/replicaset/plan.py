"""The ReplicaSet controller's decisions, as a pure function of a snapshot.

``plan(rs, pods, now)`` looks at one ReplicaSet and the pods of its namespace and returns
what to do: orphans matching the selector to adopt, owned pods that no longer match to
release, pods to create (``<rs>-<5 random characters>``, through ``generateName``) or to
delete, and the status to write. As Kubernetes does, scale-down removes the least useful
pods first: unscheduled before scheduled, pending before running, not ready before ready,
ready for less time before longer, more restarts before fewer, newer before older.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from corral.api.registry import Obj
from corral.controllers import podutil
from corral.util.clock import format_timestamp

BURST = 500
"""Most pods created or deleted in one reconcile (Kubernetes' ``burstReplicas``)."""


@dataclass
class Plan:
    adopt: list[str] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    create: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    requeue_after: float | None = None


def deletion_rank(pod: Obj, now: datetime) -> tuple[Any, ...]:
    """Sort key: the pods to delete first sort first (Kubernetes' ``ActivePods`` order)."""
    spec = pod.get("spec") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(podutil.phase(pod), 1)
    ready = podutil.ready_for(pod, now)
    created = str(podutil.metadata(pod).get("creationTimestamp") or "")
    return (
        1 if spec.get("nodeName") else 0,
        phase_rank,
        1 if ready is not None else 0,
        ready if ready is not None else 0.0,
        -podutil.restarts(pod),
        _negated(created),
    )


def _negated(text: str) -> tuple[int, ...]:
    """Sort newer timestamps first."""
    return tuple(-ord(ch) for ch in text)


def plan(rs: Obj, pods: list[Obj], now: datetime) -> Plan:
    spec = rs.get("spec") or {}
    result = Plan()
    owned, adopt, release = podutil.claims(rs, pods)
    result.adopt = [podutil.name(p) for p in adopt]
    result.release = [podutil.name(p) for p in release]
    owned = owned + adopt
    active = [p for p in owned if podutil.is_active(p)]
    replicas = int(spec.get("replicas") or 0) if spec.get("replicas") is not None else 1
    deleting = bool(podutil.metadata(rs).get("deletionTimestamp"))
    diff = len(active) - replicas
    if not deleting and diff < 0:
        name = podutil.name(rs)
        result.create = [podutil.pod_from_template(spec.get("template"), rs, generate_name=f"{name}-")
                         for _ in range(min(-diff, BURST))]
    elif not deleting and diff > 0:
        ranked = sorted(active, key=lambda p: deletion_rank(p, now))
        result.delete = [podutil.name(p) for p in ranked[:min(diff, BURST)]]
    # the pods deleted now are terminating from now on: counting them would report availability
    # that is about to go (and let a Deployment scale down further than maxUnavailable allows)
    doomed = set(result.delete)
    result.status, result.requeue_after = status(rs, [p for p in active if podutil.name(p) not in doomed], now)
    return result


def with_create_failure(status: dict[str, Any], message: str | None, now: datetime) -> dict[str, Any]:
    """``status`` with the ``ReplicaFailure`` condition (reason FailedCreate) while pods cannot be
    created, and without it once they can, as Kubernetes reports it."""
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if message is not None:
        conditions = podutil.set_condition(status.get("conditions") or [], "ReplicaFailure", "True", "FailedCreate",
                                           message, now=format_timestamp(now))
    result = {k: v for k, v in status.items() if k != "conditions"}
    if conditions:
        result["conditions"] = conditions
    return result


def status(rs: Obj, active: list[Obj], now: datetime) -> tuple[dict[str, Any], float | None]:
    """The status fields Kubernetes computes (``calculateStatus``) and when availability next changes."""
    spec = rs.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    fully_labeled = sum(1 for p in active
                        if all((podutil.metadata(p).get("labels") or {}).get(k) == v for k, v in template_labels.items()))
    waits = [w for w in (podutil.seconds_until_available(p, min_ready, now) for p in active) if w is not None]
    old = rs.get("status") or {}
    new: dict[str, Any] = {
        "replicas": len(active),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": sum(1 for p in active if podutil.is_ready(p)),
        "availableReplicas": sum(1 for p in active if podutil.is_available(p, min_ready, now)),
        "observedGeneration": int(podutil.metadata(rs).get("generation") or 0),
    }
    if old.get("conditions"):
        new["conditions"] = old["conditions"]
    return new, (min(waits) + 0.05 if waits else None)
