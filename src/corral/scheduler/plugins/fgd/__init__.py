"""Score policy ``fgd``: Fragmentation Gradient Descent (Weng et al., USENIX ATC'23).

Score of a node = ``trunc(100·sigmoid((Frag(n) − Frag(n'))/1000))`` where n' is the node after
the placement and Frag is measured against the target workload
(:mod:`corral.scheduler.fragmentation`). A GPU share tries every device and takes the best
(lowest index on ties), and that device is also the one reserved.

Args: ``workload`` (a :class:`~corral.scheduler.fragmentation.Workload`, e.g. the trace's
typical pods); without it the plugin learns the workload from the pods it has seen (it
counts each pod at PreFilter and refreshes the typical set when the count doubles).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.fragmentation import FragModel, PodClass, Workload, fgd_score, share_assignment
from corral.scheduler.framework import CycleState, DeviceAssignment, PodRequest, Status
from corral.scheduler.framework.interfaces import FloatArray, IntArray

NAME = "fgd"


class FGD:
    name = NAME

    def __init__(self, workload: Workload | None = None) -> None:
        self._fixed = workload is not None
        self._seen: Counter[PodClass] = Counter()
        self._seen_total = 0
        self._next_refresh = 1
        self.model = FragModel(workload or Workload([]))

    def pre_filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> Status:
        if not self._fixed:
            self._seen[PodClass.of(pod)] += 1
            self._seen_total += 1
            if self._seen_total >= self._next_refresh:
                self._next_refresh = max(2 * self._seen_total, 16)
                self.model = FragModel(Workload.from_counts(self._seen))
        return Status.success()

    def _refresh(self, snapshot: Snapshot, pod: PodRequest, rows: IntArray) -> tuple[FloatArray, IntArray]:
        model = self.model
        key = (NAME, PodClass.of(pod), pod.gpu_memory_mib)
        score, dev, ver = model.class_cache(snapshot, key, snapshot.max_gpus)
        stale = rows[ver[rows] != snapshot.node_version[rows]]
        if len(stale):
            total = max(model.workload.total, 1)
            before = model.now(snapshot)[stale]
            if pod.gpu_count and pod.is_share:
                after = model.after_share(snapshot, stale, snapshot.gpu_need_milli(pod)[stale], pod.cpu_milli)
                s = np.where(after >= 0, fgd_score(before[:, None], after, total), -1.0)
                best = np.argmax(s, axis=1)
                score[stale] = s[np.arange(len(stale)), best]
                dev[stale] = np.where(score[stale] >= 0, best, -1)
            else:
                after1 = model.after_whole(snapshot, stale, pod.gpu_count, pod.cpu_milli)
                score[stale] = fgd_score(before, after1, total)
            ver[stale] = snapshot.node_version[stale]
        return score, dev

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        score, _ = self._refresh(snapshot, pod, nodes)
        return score[nodes]

    def choose_devices(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, node: int) -> tuple[DeviceAssignment, ...] | None:
        if not (pod.gpu_count and pod.is_share):
            return None
        _, dev = self._refresh(snapshot, pod, np.array([node], dtype=np.int64))
        return share_assignment(snapshot, pod, node, int(dev[node]))


def new(args: Mapping[str, Any]) -> FGD:
    wl = args.get("workload")
    if wl is not None and not isinstance(wl, Workload):
        raise TypeError("fgd: args.workload must be a corral.scheduler.fragmentation.Workload")
    return FGD(wl)
