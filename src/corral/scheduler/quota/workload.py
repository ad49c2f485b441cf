"""Workloads as the admission policy sees them: a gang's pod sets and total requests.

A workload is a PodGroup (or a bare pod, a group of one). Its quota request is the sum of
its pods' requests: ``requests`` (falling back to ``limits``) of every container, plus
the GPU-share annotations (``corral.dev/gpu-fraction: "0.5"`` counts as half an
``nvidia.com/gpu``). Pod sets keep each pod's ``nodeSelector`` so a flavor that conflicts
with it is never chosen.

Which queue: the label ``corral.dev/queue`` (on the PodGroup or the pod), else
``spec.queue`` of the PodGroup, else the default queue of the namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from corral.scheduler.quota.quota import QueueConfig, milli
from corral.util.clock import parse_timestamp

QUEUE_LABEL = "corral.dev/queue"
GROUP_LABEL = "corral.dev/pod-group"
GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class PodSet:
    """``count`` pods with the same per-pod requests (thousandths) and nodeSelector."""

    count: int
    requests: Mapping[str, int]
    node_selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    key: str
    queue: str
    priority: int = 0
    created: float = 0.0
    pod_sets: tuple[PodSet, ...] = ()

    def total(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for pod_set in self.pod_sets:
            for resource, amount in pod_set.requests.items():
                out[resource] = out.get(resource, 0) + amount * pod_set.count
        return out

    @property
    def size(self) -> int:
        return sum(pod_set.count for pod_set in self.pod_sets)


def pod_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """The quota a pod needs, in thousandths per resource."""
    spec = pod.get("spec") or {}
    out: dict[str, int] = {}
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        merged = dict(resources.get("limits") or {})
        merged.update(resources.get("requests") or {})
        for name, value in merged.items():
            out[name] = out.get(name, 0) + milli(value)
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    fraction = annotations.get("corral.dev/gpu-fraction")
    if fraction and GPU not in out:
        out[GPU] = milli(fraction)
    return out


def pod_sets_of(pods: Iterable[Mapping[str, Any]]) -> tuple[PodSet, ...]:
    """Group pods with identical requests and nodeSelector into pod sets."""
    counts: dict[tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]], int] = {}
    for pod in pods:
        requests = tuple(sorted(pod_requests(pod).items()))
        selector = tuple(sorted(((pod.get("spec") or {}).get("nodeSelector") or {}).items()))
        counts[(requests, selector)] = counts.get((requests, selector), 0) + 1
    return tuple(PodSet(count, dict(requests), dict(selector)) for (requests, selector), count in counts.items())


def timestamp(obj: Mapping[str, Any]) -> float:
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    return parse_timestamp(created).timestamp() if created else 0.0


def namespace_matches(queue: QueueConfig, namespace: str, namespace_labels: Mapping[str, str] | None) -> bool:
    """Whether the queue serves ``namespace`` (by list or by label selector)."""
    if namespace in queue.namespaces:
        return True
    selector = queue.namespace_selector
    if selector is None or namespace_labels is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if namespace_labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in namespace_labels
        if operator == "In" and (not present or namespace_labels[key] not in values):
            return False
        if operator == "NotIn" and present and namespace_labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def resolve_queue(obj: Mapping[str, Any], queues: Sequence[QueueConfig],
                  namespace_labels: Mapping[str, str] | None = None) -> str | None:
    """The queue a PodGroup or pod belongs to, or None when it names none and has no default."""
    metadata = obj.get("metadata") or {}
    named = (metadata.get("labels") or {}).get(QUEUE_LABEL) or (obj.get("spec") or {}).get("queue")
    if named:
        return str(named)
    namespace = metadata.get("namespace") or "default"
    defaults = sorted(q.name for q in queues if q.default and namespace_matches(q, namespace, namespace_labels))
    return defaults[0] if defaults else None
