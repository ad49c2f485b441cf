"""Filter: node resources fit — cpu, memory, pod count and extended resources (other than
GPUs and MIG slices, which the GpuDevices plugin places on devices). A request larger than a
node's allocatable is unresolvable there (no eviction helps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import CycleState, FilterResult, PodRequest, Rejection

NAME = "NodeResourcesFit"


class NodeResourcesFit:
    name = NAME

    def filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> FilterResult:
        n = len(snapshot)
        rej: list[Rejection] = []
        if pod.cpu_milli:
            rej.append(Rejection("Insufficient cpu", snapshot.cpu_cap - snapshot.cpu_used < pod.cpu_milli,
                                 resolvable=True))
        if pod.memory:
            rej.append(Rejection("Insufficient memory", snapshot.mem_cap - snapshot.mem_used < pod.memory))
        rej.append(Rejection("Too many pods", snapshot.pods_used >= snapshot.pods_cap))
        for name, amount in pod.scalar.items():
            cap = snapshot.scalar_cap.get(name)
            if cap is None:
                rej.append(Rejection(f"Insufficient {name}", np.ones(n, dtype=np.bool_), resolvable=False))
            else:
                rej.append(Rejection(f"Insufficient {name}", cap - snapshot.scalar_used[name] < amount))
        return FilterResult.of(n, *rej)


def new(args: Mapping[str, Any]) -> NodeResourcesFit:
    return NodeResourcesFit()
