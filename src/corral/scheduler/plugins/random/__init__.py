"""Score policy ``random`` (FGD paper's Random-fit): one feasible node drawn uniformly gets
100, the rest 0; a GPU share goes to a device drawn uniformly among those it fits on
(fully free ones included). Draws come from the cycle's injected RNG."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import CycleState, DeviceAssignment, PodRequest
from corral.scheduler.framework.interfaces import FloatArray, IntArray

NAME = "random"


class RandomPolicy:
    name = NAME

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        out = np.zeros(len(nodes), dtype=np.float64)
        out[int(state.rng.integers(len(nodes)))] = 100.0
        return out

    def choose_devices(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, node: int) -> tuple[DeviceAssignment, ...] | None:
        if not (pod.gpu_count and pod.is_share):
            return None
        need = snapshot.gpu_need_milli(pod)[node]
        ok = np.flatnonzero(snapshot.gpu_free[node] >= need)
        if len(ok) == 0:
            return None
        c = int(ok[int(state.rng.integers(len(ok)))])
        return (DeviceAssignment(snapshot.specs[node].devices[c].index, int(need[c])),)


def new(args: Mapping[str, Any]) -> RandomPolicy:
    return RandomPolicy()
