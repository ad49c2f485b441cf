"""Filter: nodes with ``spec.unschedulable`` (cordoned) take only pods that tolerate
``node.kubernetes.io/unschedulable:NoSchedule``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import CycleState, FilterResult, PodRequest, Rejection, Taint

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")


class NodeUnschedulable:
    name = NAME

    def filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> FilterResult:
        if not snapshot.unschedulable.any() or any(t.tolerates(_TAINT) for t in pod.tolerations):
            return FilterResult(snapshot.all_nodes)
        return FilterResult.of(len(snapshot), Rejection(REASON, snapshot.unschedulable, resolvable=False))


def new(args: Mapping[str, Any]) -> NodeUnschedulable:
    return NodeUnschedulable()
