"""Filter: a pod with ``spec.nodeName`` set fits only that node."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import CycleState, FilterResult, PodRequest, Rejection

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


class NodeName:
    name = NAME

    def filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> FilterResult:
        n = len(snapshot)
        if not pod.node_name:
            return FilterResult(snapshot.all_nodes)
        bad = np.ones(n, dtype=np.bool_)
        i = snapshot.index.get(pod.node_name)
        if i is not None:
            bad[i] = False
        return FilterResult.of(n, Rejection(REASON, bad, resolvable=False))


def new(args: Mapping[str, Any]) -> NodeName:
    return NodeName()
