"""Score policy ``gpu-packing`` (FGD paper's GPU Packing): prefer, in this order, nodes
where the pod fits on partly used GPUs (score ``100 − Σ idle% /10`` of the tightest GPUs,
at least 50), nodes where it needs fully free GPUs on a partly used node (``max(50 − u, 33)``),
and last wholly idle nodes (``max(33 − G, G)``). Pods without GPUs score 0.
Devices: best fit (default rule)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import CycleState, PodRequest
from corral.scheduler.framework.interfaces import FloatArray, IntArray
from corral.scheduler.framework.types import MILLI

NAME = "gpu-packing"


class GpuPacking:
    name = NAME

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        k = pod.gpu_count
        if not k:
            return np.zeros(len(nodes), dtype=np.float64)
        idle = snapshot.gpu_free[nodes]
        exists = snapshot.gpu_exists[nodes] & ~snapshot.gpu_mig_mode[nodes]
        g = exists.sum(axis=1)
        nfree = ((idle >= MILLI) & exists).sum(axis=1)
        need = snapshot.gpu_need_milli(pod)[nodes]
        # GPUs sorted by idle ascending (stable: index order on ties); absent devices last
        key = np.where(exists, idle, 10 * MILLI)
        order = np.argsort(key, axis=1, kind="stable")
        sidle = np.take_along_axis(idle, order, axis=1)
        sneed = np.take_along_axis(need, order, axis=1)
        sexists = np.take_along_axis(exists, order, axis=1)
        fits = (sidle >= sneed) & sexists
        use = fits & (np.cumsum(fits, axis=1) <= k)
        u = (use & (sidle >= MILLI)).sum(axis=1)
        share_sum = np.where(use, (sidle * 100) // MILLI, 0).sum(axis=1)
        case1 = np.maximum(100 - share_sum // 10, 50)
        case2 = np.maximum(50 - u, 33)
        case3 = np.maximum(33 - g, g)
        s = np.where(nfree == g, case3, np.where(u > 0, case2, case1))
        return np.asarray(s, dtype=np.float64)


def new(args: Mapping[str, Any]) -> GpuPacking:
    return GpuPacking()
