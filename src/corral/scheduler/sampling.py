"""Score a sample of the feasible nodes, as kube-scheduler's ``percentageOfNodesToScore``.

Filters run vectorised over every node (so the unschedulable message still counts every
node), but when many nodes are feasible, scoring all of them costs more than it buys on a
big cluster. :class:`SampledFramework` keeps at most ``nodes_to_score(n)`` of the feasible
nodes — kube-scheduler's adaptive default, ``max(100, n * max(5, 50 - n/125) %)``, or a
fixed percentage — taken round-robin from a start row that advances past the nodes
examined by each placement, exactly as kube-scheduler's ``nextStartNodeIndex`` does, so
successive pods spread their search over the whole cluster.

Decisions stay a deterministic function of the snapshot and the sequence of placements:
the simulator gets the same answers when it runs the same framework. With
``percentage=100`` nothing is sampled.
"""

from __future__ import annotations

import numpy as np

from corral.scheduler.cache.snapshot import Snapshot
from corral.scheduler.framework.cycle_state import CycleState
from corral.scheduler.framework.profile import Profile
from corral.scheduler.framework.registry import Registry
from corral.scheduler.framework.runtime import Framework
from corral.scheduler.framework.types import PodRequest

MIN_FEASIBLE_NODES_TO_FIND = 100


def nodes_to_score(total: int, percentage: float | None = None) -> int:
    """How many feasible nodes to score out of ``total`` (kube-scheduler's numFeasibleNodesToFind)."""
    if total < MIN_FEASIBLE_NODES_TO_FIND or (percentage is not None and percentage >= 100):
        return total
    if percentage is None:
        percentage = max(5.0, 50.0 - total / 125.0)
    return max(MIN_FEASIBLE_NODES_TO_FIND, int(total * percentage / 100.0))


class SampledFramework(Framework):
    """A :class:`Framework` whose ``feasible`` keeps a round-robin sample of the feasible rows."""

    def __init__(self, profile: Profile, registry: Registry, *, percentage: float | None = None) -> None:
        super().__init__(profile, registry)
        self.percentage = percentage
        self.next_start = 0

    def feasible(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> tuple[np.ndarray, list[tuple[str, np.ndarray, bool]]]:
        ok, rejections = super().feasible(state, snapshot, pod)
        n = len(ok)
        want = nodes_to_score(n, self.percentage)
        if want >= n or n == 0:
            return ok, rejections
        start = self.next_start % n
        rows = np.flatnonzero(ok)
        if len(rows) <= want:
            self.next_start = (start + n) % n
            return ok, rejections
        # feasible rows in round-robin order from ``start``; keep the first ``want``
        first = int(np.searchsorted(rows, start))
        if len(rows) - first >= want:
            keep = rows[first:first + want]
        else:
            keep = np.concatenate((rows[first:], rows[: want - (len(rows) - first)]))
        last = int(keep[-1])
        self.next_start = (last + 1) % n
        sampled = np.zeros(n, dtype=np.bool_)
        sampled[keep] = True
        return sampled, rejections
