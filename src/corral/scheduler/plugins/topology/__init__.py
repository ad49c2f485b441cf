"""Score: topology. A multi-GPU pod prefers a node where one NVLink island can hold all its
GPUs (100) over one where they would span islands (0). A gang member prefers the
``topology.corral.dev/block`` of the members already placed in this cycle (+60), and
within it their ``topology.corral.dev/rack`` (+40). Neutral (0) otherwise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import CycleState, PodRequest
from corral.scheduler.framework.interfaces import FloatArray, IntArray
from corral.scheduler.framework.types import MILLI

NAME = "Topology"


class Topology:
    name = NAME

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        out = np.zeros(len(nodes), dtype=np.float64)
        if pod.gpu_count > 1 and not pod.is_share:
            free = snapshot.gpu_free[nodes] >= MILLI
            islands = snapshot.gpu_island[nodes]
            best = np.zeros(len(nodes), dtype=np.int64)
            for isl in np.unique(islands[snapshot.gpu_exists[nodes]]).tolist():
                best = np.maximum(best, (free & (islands == isl)).sum(axis=1))
            out += np.where(best >= pod.gpu_count, 100.0, 0.0)
        if state.group_nodes:
            placed = np.array(state.group_nodes, dtype=np.int64)
            blocks = snapshot.block_id[placed]
            blocks = blocks[blocks >= 0]
            if len(blocks):
                block = np.bincount(blocks).argmax()
                out += np.where(snapshot.block_id[nodes] == block, 60.0, 0.0)
            racks = snapshot.rack_id[placed]
            racks = racks[racks >= 0]
            if len(racks):
                rack = np.bincount(racks).argmax()
                out += np.where(snapshot.rack_id[nodes] == rack, 40.0, 0.0)
        return np.minimum(out, 100.0)


def new(args: Mapping[str, Any]) -> Topology:
    return Topology()
