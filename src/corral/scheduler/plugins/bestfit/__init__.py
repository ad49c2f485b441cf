"""Score policy ``bestfit`` (FGD paper's Best-fit): prefer the node with the least cpu and
GPU left after placement: ``s = trunc(100·(1 − [½(cpu_left − c)/MAXCPU + ½(idle − R)/MAXGPU]))``.
Devices: best fit (default rule)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import CycleState, PodRequest
from corral.scheduler.framework.interfaces import FloatArray, IntArray

NAME = "bestfit"


class BestFit:
    name = NAME

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        maxcpu = float(max(int(snapshot.cpu_cap.max()), 1))
        maxgpu = float(max(int(snapshot.gpu_cap.sum(axis=1).max()), 1))
        cpu_left = (snapshot.cpu_cap[nodes] - snapshot.cpu_used[nodes]).astype(np.float64)
        idle = snapshot.gpu_idle[nodes].astype(np.float64)
        x = 0.5 * (cpu_left - pod.cpu_milli) / maxcpu + 0.5 * (idle - pod.gpu_total_milli) / maxgpu
        return np.asarray(np.trunc(100.0 * (1.0 - x)), dtype=np.float64)


def new(args: Mapping[str, Any]) -> BestFit:
    return BestFit()
