"""Taints and tolerations. Filter: a node with a NoSchedule/NoExecute taint the pod does not
tolerate is rejected. Score: fewer untolerated PreferNoSchedule taints is better.

Work is per distinct taint set (``snapshot.taint_set``), then broadcast to nodes, so the
cost does not grow with the node count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import CycleState, FilterResult, PodRequest, Rejection
from corral.scheduler.framework.interfaces import FloatArray, IntArray

NAME = "TaintToleration"
REASON = "node(s) had untolerated taint(s)"


class TaintToleration:
    name = NAME

    def filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> FilterResult:
        n = len(snapshot)
        if len(snapshot.taint_sets) == 1:
            return FilterResult(snapshot.all_nodes)
        bad_set = np.array(
            [
                any(t.effect in ("NoSchedule", "NoExecute") and not any(tol.tolerates(t) for tol in pod.tolerations) for t in ts)
                for ts in snapshot.taint_sets
            ],
            dtype=np.bool_,
        )
        return FilterResult.of(n, Rejection(REASON, bad_set[snapshot.taint_set], resolvable=False))

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        if len(snapshot.taint_sets) == 1:
            return np.zeros(len(nodes))
        counts = np.array(
            [
                sum(1 for t in ts if t.effect == "PreferNoSchedule" and not any(tol.tolerates(t) for tol in pod.tolerations))
                for ts in snapshot.taint_sets
            ],
            dtype=np.float64,
        )[snapshot.taint_set[nodes]]
        top = counts.max()
        if top == 0:
            return np.full(len(nodes), 100.0)
        return np.asarray(100.0 * (1.0 - counts / top), dtype=np.float64)


def new(args: Mapping[str, Any]) -> TaintToleration:
    return TaintToleration()
