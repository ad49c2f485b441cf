"""Score policy ``gpu-clustering`` (FGD paper's GPU Clustering): keep pods of one kind
(``share``, ``1-gpu``, ``2-gpu``, ...) together. With ``base = 25·(MAXGPU − idle)//MAXGPU``:
a node holding only this kind scores base+75, holding this kind among others base+50, empty
of GPU pods base+25, holding only other kinds base. Pods without GPUs score 0 everywhere.
Devices: best fit (default rule)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import CycleState, PodRequest
from corral.scheduler.framework.interfaces import FloatArray, IntArray

NAME = "gpu-clustering"


class GpuClustering:
    name = NAME

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        tag = pod.tag
        if not tag:
            return np.zeros(len(nodes), dtype=np.float64)
        maxgpu = max(int(snapshot.gpu_cap.sum(axis=1).max()), 1)
        idle = snapshot.gpu_idle[nodes]
        base = (25 * (maxgpu - idle)) // maxgpu
        counts = snapshot.tag_counts.get(tag)
        mine = counts[nodes] if counts is not None else np.zeros(len(nodes), dtype=np.int64)
        total = snapshot.tag_total[nodes]
        bonus = np.where(mine > 0, np.where(mine == total, 75, 50), np.where(total == 0, 25, 0))
        return np.asarray(base + bonus, dtype=np.float64)


def new(args: Mapping[str, Any]) -> GpuClustering:
    return GpuClustering()
