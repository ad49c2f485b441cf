"""The queue part of ``corral explain pod|podgroup NAME``.

Reads the Queues and pods through the API, rebuilds the quota booking exactly as the
scheduler's admission does (:meth:`corral.scheduler.quota.live.QueueAdmission.resync`),
and explains the group with :func:`corral.scheduler.quota.status.explain_pending`: its
position in its queue, which quota of which flavor blocks it, the workloads its queue's
policy would preempt for it, and an estimate of when it could start (from the admitted
pods' ``corral.dev/sim-duration``; unknown for pods without a known end).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from corral.client import ApiClient, ApiError
from corral.scheduler.quota.cycle import order_key
from corral.scheduler.quota.live import QueueAdmission, group_key_of
from corral.scheduler.quota.status import explain_pending
from corral.scheduler.quota.workload import QUEUE_LABEL, Workload, pod_sets_of, timestamp
from corral.sim.nodes import SIM_DURATION_ANNOTATION, parse_duration
from corral.util.clock import SystemClock, parse_timestamp


async def _items(client: ApiClient, api_version: str, plural: str) -> list[dict[str, Any]]:
    try:
        found, _ = await client.list_all(api_version, plural)
    except ApiError as error:
        if error.not_found:
            return []
        raise
    return found


def _end(pods: Sequence[Mapping[str, Any]]) -> float | None:
    ends = []
    for pod in pods:
        raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(SIM_DURATION_ANNOTATION)
        started = (pod.get("status") or {}).get("startTime")
        if raw is None or not started:
            return None
        ends.append(parse_timestamp(started).timestamp() + parse_duration(str(raw)))
    return max(ends) if ends else None


async def queue_explanation(client: ApiClient, key: str, podgroup: Mapping[str, Any] | None = None) -> list[str]:
    """Lines about the group ``key`` (``group:ns/name`` or ``pod:ns/name``) and its queue."""
    queues = await _items(client, "corral.dev/v1alpha1", "queues")
    if not queues:
        return []
    pods = await _items(client, "v1", "pods")
    nodes = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}) for n in await _items(client, "v1", "nodes")}
    clock = SystemClock()
    admission = QueueAdmission(clock, nodes.get)
    admission.set_queues(queues)
    admission.resync(pods)
    groups: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        groups.setdefault(group_key_of(pod), []).append(pod)
    members = groups.get(key, [])
    if key in admission.book.admitted:
        item = admission.book.admitted[key]
        return [f'queue "{item.queue}": admitted (holds ' + ", ".join(
            f"{flavor}/{resource}={amount / 1000:g}" for (flavor, resource), amount in sorted(item.usage.items())) + ")"]
    if not members:
        return []

    def workload(group_key: str, objs: list[dict[str, Any]], pg: Mapping[str, Any] | None = None) -> Workload | None:
        namespace = (objs[0].get("metadata") or {}).get("namespace") or "default"
        named = ((pg or {}).get("spec") or {}).get("queue") or next(
            (((p.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL) for p in objs
             if ((p.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL)), None)
        queue = admission.queue_of(namespace, named)
        if queue is None:
            return None
        priority = int(((pg or {}).get("spec") or {}).get("priority") or max(
            int((p.get("spec") or {}).get("priority") or 0) for p in objs))
        return Workload(group_key, queue, priority, min(timestamp(p) for p in objs), pod_sets_of(objs))

    mine = workload(key, members, podgroup)
    if mine is None:
        return ["no queue: the group names none and its namespace has no default queue (quota does not limit it)"]
    waiting = []
    for other_key, objs in groups.items():
        if other_key == key or other_key in admission.book.admitted:
            continue
        if not any(not (p.get("spec") or {}).get("nodeName") and (p.get("status") or {}).get("phase")
                   not in ("Succeeded", "Failed") for p in objs):
            continue
        other = workload(other_key, objs)
        if other is not None and other.queue == mine.queue:
            waiting.append(other)
    waiting.sort(key=order_key)
    ends = {k: end for k, objs in groups.items() if (end := _end(objs)) is not None}
    return explain_pending(admission.book, mine, waiting, ends=ends, now=clock.now().timestamp())
