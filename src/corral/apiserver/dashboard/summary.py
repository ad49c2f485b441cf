"""The dashboard's view of the cluster: one compact JSON document computed from lists.

The browser could list every pod itself, but with 10,000 pods that is tens of
megabytes per refresh. Instead the API server answers ``GET /dashboard/api/state``
(authenticated like any API call) with this summary: per node its GPU devices and
what sits on each (fractions as shares), per queue its usage against quota, pending
work with the reason it waits, training jobs, inference services and recent events.
:func:`summarize` is a pure function of the object lists, so it is tested without a
server and costs one pass over the pods.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from corral.api.gpu import (
    DEVICES_ANNOTATION,
    GPU_DEVICES_ANNOTATION,
    GPU_RESOURCE,
    SIMULATED_GPUS_LABEL,
    DeviceSpecError,
    parse_device_inventory,
    parse_gpu_devices,
)
from corral.api.registry import Obj

ACTIVE_PHASES = {"Pending", "Running", "Unknown", None, ""}
MAX_PENDING = 200
MAX_EVENTS = 100


def _meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _condition(obj: Obj, kind: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def _gpu_count(node: Obj) -> int:
    value = ((node.get("status") or {}).get("capacity") or {}).get(GPU_RESOURCE, 0)
    try:
        return int(str(value))
    except ValueError:
        return 0


class ParseCache:
    """Parsed annotations by their text, kept across summaries (the same strings recur)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.assignments: dict[str, list[tuple[int, float, str | None]]] = {}
        self.inventories: dict[str, list[dict[str, Any]]] = {}

    def gpu_devices(self, text: str | None) -> list[tuple[int, float, str | None]]:
        """``(device index, share of the device as a float, MIG profile or None)`` per entry."""
        if not text:
            return []
        cached = self.assignments.get(text)
        if cached is None:
            try:
                cached = [(a.index, float(a.fraction), a.mig_profile) for a in parse_gpu_devices(text)]
            except DeviceSpecError:
                cached = []
            if len(self.assignments) > self.limit:
                self.assignments.clear()
            self.assignments[text] = cached
        return cached

    def inventory(self, text: str | None) -> list[dict[str, Any]]:
        if not text:
            return []
        cached = self.inventories.get(text)
        if cached is None:
            try:
                cached = parse_device_inventory(text)
            except DeviceSpecError:
                cached = []
            if len(self.inventories) > self.limit:
                self.inventories.clear()
            self.inventories[text] = cached
        return cached


def _node_devices(node: Obj, cache: ParseCache) -> list[dict[str, Any]]:
    annotations = _meta(node).get("annotations") or {}
    inventory = cache.inventory(annotations.get(DEVICES_ANNOTATION))
    if not inventory:
        inventory = [{"index": index} for index in range(_gpu_count(node))]
    simulated = (_meta(node).get("labels") or {}).get(SIMULATED_GPUS_LABEL) == "true"
    return [{"index": device["index"], "model": device.get("model", ""),
             "simulated": bool(device.get("simulated", simulated)),
             "mig": [slot.get("profile") for slot in device.get("mig") or []], "used": 0.0, "pods": []}
            for device in sorted(inventory, key=lambda d: int(d["index"]))]


def summarize(
    nodes: Iterable[Obj],
    pods: Iterable[Obj],
    *,
    queues: Iterable[Obj] = (),
    podgroups: Iterable[Obj] = (),
    trainingjobs: Iterable[Obj] = (),
    inferenceservices: Iterable[Obj] = (),
    events: Iterable[Obj] = (),
    cache: ParseCache | None = None,
) -> dict[str, Any]:
    """The dashboard document (see the module docstring).

    Each device lists what runs on it as ``[pod key, share, phase, MIG profile or null]``.
    """
    cache = cache or ParseCache()
    node_views: dict[str, dict[str, Any]] = {}
    for node in nodes:
        ready = _condition(node, "Ready")
        node_views[_meta(node)["name"]] = {
            "name": _meta(node)["name"],
            "ready": (ready or {}).get("status", "Unknown"),
            "simulated": (_meta(node).get("labels") or {}).get(SIMULATED_GPUS_LABEL) == "true",
            "product": (_meta(node).get("labels") or {}).get("nvidia.com/gpu.product", ""),
            "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
            "devices": _node_devices(node, cache),
            "pods": 0,
        }
    pending: list[dict[str, Any]] = []
    phases: dict[str, int] = {}
    gpus_used = 0.0
    for pod in pods:
        metadata = _meta(pod)
        status = pod.get("status") or {}
        phase = status.get("phase") or "Pending"
        phases[phase] = phases.get(phase, 0) + 1
        node_name = (pod.get("spec") or {}).get("nodeName")
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        if not node_name:
            scheduled = _condition(pod, "PodScheduled")
            if phase == "Pending" and len(pending) < MAX_PENDING:
                pending.append({"kind": "Pod", "key": key,
                                "queue": (metadata.get("labels") or {}).get("corral.dev/queue", ""),
                                "group": (metadata.get("labels") or {}).get("corral.dev/pod-group", ""),
                                "reason": (scheduled or {}).get("reason", ""),
                                "message": (scheduled or {}).get("message", "waiting to be scheduled")})
            continue
        view = node_views.get(node_name)
        if view is None or phase not in ACTIVE_PHASES:
            continue
        view["pods"] += 1
        assignments = cache.gpu_devices((metadata.get("annotations") or {}).get(GPU_DEVICES_ANNOTATION))
        devices = view["devices"]
        for index, fraction, mig_profile in assignments:
            # devices are sorted by index, so device i is at position i unless indices have gaps
            if index < len(devices) and devices[index]["index"] == index:
                device = devices[index]
            else:
                found = [d for d in devices if d["index"] == index]
                if not found:
                    continue
                device = found[0]
            share = fraction if mig_profile is None else 1.0 / max(1, len(device["mig"]))
            device["used"] = min(1.0, device["used"] + share)
            device["pods"].append([key, share, phase, mig_profile])
            gpus_used += share
    for group in podgroups:
        status = group.get("status") or {}
        waiting = next((c for c in status.get("conditions") or []
                        if c.get("status") == "False" and c.get("type") in ("Admitted", "Scheduled")), None)
        if waiting is not None and len(pending) < MAX_PENDING:
            pending.insert(0, {"kind": "PodGroup", "key": f"{_meta(group).get('namespace')}/{_meta(group).get('name')}",
                               "queue": (group.get("spec") or {}).get("queue", ""), "group": _meta(group).get("name"),
                               "reason": waiting.get("reason", ""), "message": waiting.get("message", "")})
    gpus_total = sum(len(view["devices"]) for view in node_views.values())
    recent = sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""), reverse=True)
    return {
        "cluster": {"nodes": len(node_views), "gpus": gpus_total, "gpusUsed": round(gpus_used, 3),
                    "allocation": round(gpus_used / gpus_total, 4) if gpus_total else 0.0, "podPhases": phases},
        "nodes": sorted(node_views.values(), key=lambda view: view["name"]),
        "queues": [_queue_view(queue) for queue in queues],
        "pending": pending,
        "trainingJobs": [_status_view(job, ("phase", "restarts", "replicas", "worldSize", "preemptions",
                                            "startTime", "completionTime"))
                         for job in trainingjobs],
        "inferenceServices": [_status_view(service, ("url", "readyReplicas", "replicas", "desiredReplicas", "revisions",
                                                     "traffic", "latestRevision", "stableRevision", "canaryRevision",
                                                     "rolledBack", "autoscalerReason", "trafficStats", "conditions"))
                              for service in inferenceservices],
        "events": [{"time": e.get("lastTimestamp") or e.get("eventTime"), "type": e.get("type"),
                    "reason": e.get("reason"), "message": e.get("message"),
                    "object": f"{(e.get('involvedObject') or {}).get('kind')}/{(e.get('involvedObject') or {}).get('name')}",
                    "count": e.get("count", 1)} for e in recent[:MAX_EVENTS]],
    }


def _queue_view(queue: Obj) -> dict[str, Any]:
    spec, status = queue.get("spec") or {}, queue.get("status") or {}
    return {"name": _meta(queue).get("name"), "cohort": spec.get("cohort", ""), "spec": spec, "status": status}


def _status_view(obj: Obj, fields: tuple[str, ...]) -> dict[str, Any]:
    status = obj.get("status") or {}
    view: dict[str, Any] = {"name": _meta(obj).get("name"), "namespace": _meta(obj).get("namespace")}
    view.update({field: status[field] for field in fields if field in status})
    view["spec"] = {k: v for k, v in (obj.get("spec") or {}).items() if k != "template"}
    return view
