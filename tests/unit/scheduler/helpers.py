"""Builders for scheduler unit tests: node and pod dicts in the device contract's shape."""

from __future__ import annotations

import json
from typing import Any

from corral.scheduler.cache import Snapshot, node_spec_from_obj
from corral.scheduler.framework import Framework, PodRequest, Profile, pod_request_from_obj
from corral.scheduler.plugins import default_registry


def node(
    name: str,
    *,
    cpu: str = "32",
    memory: str = "128Gi",
    gpus: int = 0,
    model: str = "H100-80GB",
    memory_mib: int = 81920,
    islands: list[int] | None = None,
    mig: dict[int, list[str]] | None = None,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
    pods: int = 110,
) -> dict[str, Any]:
    devices = []
    for i in range(gpus):
        d: dict[str, Any] = {"index": i, "uuid": f"GPU-{name}-{i}", "model": model, "memoryMiB": memory_mib,
                             "simulated": True, "nvlinkIsland": (islands or [0] * gpus)[i]}
        if mig and i in mig:
            d["mig"] = [{"profile": p, "slot": s, "uuid": f"MIG-{name}-{i}-{s}"} for s, p in enumerate(mig[i])]
        devices.append(d)
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    if gpus:
        alloc["nvidia.com/gpu"] = str(gpus)
    lab = {"kubernetes.io/hostname": name, **(labels or {})}
    if gpus:
        lab["nvidia.com/gpu.product"] = model
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": lab, "annotations": {"corral.dev/devices": json.dumps(devices)} if gpus else {}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": alloc, "capacity": alloc},
    }


def pod(
    name: str,
    *,
    cpu: str = "1",
    memory: str = "1Gi",
    gpus: int = 0,
    fraction: str | None = None,
    gpu_memory: str | None = None,
    mig: dict[str, int] | None = None,
    node_selector: dict[str, str] | None = None,
    affinity: dict[str, Any] | None = None,
    tolerations: list[dict[str, str]] | None = None,
    group: str | None = None,
    node_name: str | None = None,
    devices: str | None = None,
) -> dict[str, Any]:
    limits: dict[str, str] = {}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    for p, n in (mig or {}).items():
        limits[f"nvidia.com/mig-{p}"] = str(n)
    ann: dict[str, str] = {}
    if fraction:
        ann["corral.dev/gpu-fraction"] = fraction
    if gpu_memory:
        ann["corral.dev/gpu-memory"] = gpu_memory
    if devices is not None:
        ann["corral.dev/gpu-devices"] = devices
    spec: dict[str, Any] = {
        "containers": [{"name": "main", "image": "x", "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits}}],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = {"nodeAffinity": affinity}
    if tolerations:
        spec["tolerations"] = tolerations
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": ann,
                     "labels": {"corral.dev/pod-group": group} if group else {}},
        "spec": spec,
    }


def snapshot(*nodes: dict[str, Any]) -> Snapshot:
    return Snapshot([node_spec_from_obj(n) for n in nodes])


def req(obj: dict[str, Any]) -> PodRequest:
    return pod_request_from_obj(obj)


def framework(profile: Profile | None = None) -> Framework:
    return Framework(profile or Profile.default(), default_registry())
