"""Score policy ``dotprod`` (FGD paper's Dot-product): prefer the node whose free
(cpu, GPU) vector has the smallest dot product with the pod's request:
``s = trunc(100·(1 − dot/2))``, ``dot = (cpu_left/MAXCPU)(c/MAXCPU) + (idle/MAXGPU)(R/MAXGPU)``,
with MAXCPU/MAXGPU the largest node's cpu and GPU milli. Devices: best fit (default rule)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import CycleState, PodRequest
from corral.scheduler.framework.interfaces import FloatArray, IntArray

NAME = "dotprod"


class DotProd:
    name = NAME

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        maxcpu = float(max(int(snapshot.cpu_cap.max()), 1))
        maxgpu = float(max(int(snapshot.gpu_cap.sum(axis=1).max()), 1))
        cpu_left = (snapshot.cpu_cap[nodes] - snapshot.cpu_used[nodes]).astype(np.float64)
        idle = snapshot.gpu_idle[nodes].astype(np.float64)
        dot = (cpu_left / maxcpu) * (pod.cpu_milli / maxcpu) + (idle / maxgpu) * (pod.gpu_total_milli / maxgpu)
        return np.asarray(np.trunc(100.0 * (1.0 - dot / 2.0)), dtype=np.float64)


def new(args: Mapping[str, Any]) -> DotProd:
    return DotProd()
