"""Pod and node dicts for the live scheduler's tests (nodes as ``corral sim nodes`` builds them)."""

from __future__ import annotations

from typing import Any

from corral.scheduler.cycle import Scheduler
from corral.scheduler.framework import Framework, Profile
from corral.scheduler.plugins import default_registry
from corral.sim.nodes import SimNodeSpec, build_node
from corral.testing import FakeClock


def nodes(count: int, gpus: int = 8, model: str = "H100-80GB", prefix: str = "n", **kw: Any) -> list[dict[str, Any]]:
    spec = SimNodeSpec(count=count, gpus=gpus, gpu_model=model, name_prefix=prefix, **kw)
    return [build_node(spec, i) for i in range(count)]


def pod(
    name: str,
    *,
    namespace: str = "default",
    gpus: int = 0,
    fraction: str | None = None,
    mig: str | None = None,
    group: str | None = None,
    priority: int | None = None,
    node_name: str | None = None,
    devices: str | None = None,
    scheduler: str | None = None,
    selector: dict[str, str] | None = None,
    tolerations: list[dict[str, str]] | None = None,
    created: str = "2026-01-01T00:00:00Z",
    phase: str | None = None,
    cpu: str = "100m",
) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    if mig:
        limits[f"nvidia.com/mig-{mig}"] = "1"
    annotations: dict[str, str] = {}
    if fraction:
        annotations["corral.dev/gpu-fraction"] = fraction
    if devices is not None:
        annotations["corral.dev/gpu-devices"] = devices
    labels = {"corral.dev/pod-group": group} if group else {}
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "x",
                                            "resources": {"requests": {"cpu": cpu}, "limits": limits}}]}
    if priority is not None:
        spec["priority"] = priority
    if node_name:
        spec["nodeName"] = node_name
    if scheduler is not None:
        spec["schedulerName"] = scheduler
    if selector:
        spec["nodeSelector"] = selector
    if tolerations:
        spec["tolerations"] = tolerations
    out: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "labels": labels,
                     "annotations": annotations, "creationTimestamp": created},
        "spec": spec, "status": {"phase": phase or ("Running" if node_name else "Pending")},
    }
    return out


def podgroup(name: str, min_member: int, namespace: str = "default", priority: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"minMember": min_member}
    if priority is not None:
        spec["priority"] = priority
    return {"apiVersion": "corral.dev/v1alpha1", "kind": "PodGroup",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def brain(node_objs: list[dict[str, Any]], **kw: Any) -> Scheduler:
    sched = Scheduler(framework=Framework(Profile.default(), default_registry()), clock=FakeClock(), **kw)
    for n in node_objs:
        sched.node_upsert(n)
    return sched


def bound(p: dict[str, Any], node: str, devices: str) -> dict[str, Any]:
    """The pod as the API shows it after our binding."""
    out = {**p, "metadata": {**p["metadata"], "annotations": {**p["metadata"]["annotations"]}},
           "spec": {**p["spec"], "nodeName": node}, "status": {"phase": "Running"}}
    if devices:
        out["metadata"]["annotations"]["corral.dev/gpu-devices"] = devices
    return out
