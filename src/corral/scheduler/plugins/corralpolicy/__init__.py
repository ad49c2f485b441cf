"""Score policy ``corral``: corral's GPU placement policy, the default for GPU pods.

It starts from FGD's question — how much idle GPU would the expected workload be unable
to use after this placement (:mod:`corral.scheduler.fragmentation`) — and adds two things
FGD leaves to chance, both measured on the FGD trace replay (docs/simulation.md):

1. **Consolidation in a fixed node order.** FGD's score is coarse (a truncated sigmoid of
   ΔFrag), and its ties go to a fixed node order; on the trace that tie-break alone is worth
   about 1 pp of allocation over an exact ΔFrag. corral makes it deliberate: a bonus of up
   to ``rank_weight`` points (default 25, against FGD's 0–100) for nodes early in
   ``snapshot.rank``, so near-equal choices fill nodes in one stable order (first fit) and
   leave the rest whole for large pods.
2. **CPU for the idle GPUs.** A GPU is stranded when its node has no CPU left for the pods
   that would use it. ``cpu_weight`` points (default 5) go to a node in proportion to how
   well its CPU left covers its idle GPUs after the placement, at the workload's CPU per
   GPU (learnt with the workload).

Score = (FGD score + rank bonus + cpu balance) / 1.3, in [0, 100]. A GPU share takes the
device FGD's search chose (lowest index on ties).

The workload: ``args.workload`` (a :class:`~corral.scheduler.fragmentation.Workload`, the
same input FGD gets), or, without it, learnt from the pods seen at PreFilter — the typical
set is rebuilt whenever the count of seen pods has grown by a quarter. Both modes are
general: nothing is tuned per trace, and no future pod is looked at.
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

NAME = "corral"
RANK_WEIGHT = 25.0
CPU_WEIGHT = 5.0


class CorralPolicy:
    name = NAME

    def __init__(self, workload: Workload | None = None, *, rank_weight: float = RANK_WEIGHT,
                 cpu_weight: float = CPU_WEIGHT) -> None:
        self._learn = workload is None
        self._seen: Counter[PodClass] = Counter()
        self._seen_total = 0
        self._next_refresh = 1
        self.rank_weight = rank_weight
        self.cpu_weight = cpu_weight
        self._set_workload(workload or Workload([]))

    def _set_workload(self, wl: Workload) -> None:
        self.model = FragModel(wl)
        gpu_milli = float((wl.counts * wl.milli * wl.count).sum())
        cpu = float((wl.counts * wl.cpu)[wl.milli > 0].sum())
        self.cpu_per_milli = cpu / gpu_milli if gpu_milli else 0.0

    def pre_filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> Status:
        if self._learn:
            self._seen[PodClass.of(pod)] += 1
            self._seen_total += 1
            if self._seen_total >= self._next_refresh:
                self._next_refresh = max(int(1.25 * self._seen_total), 16)
                self._set_workload(Workload.from_counts(self._seen))
        return Status.success()

    def _cpu_balance(self, snapshot: Snapshot, rows: IntArray, pod: PodRequest, milli: FloatArray) -> FloatArray:
        """1 where the cpu left after placement covers the idle GPUs at the workload's cpu per
        GPU, falling linearly to 0 when no cpu is left for them."""
        idle = snapshot.gpu_free[rows].sum(axis=1) - milli
        need = self.cpu_per_milli * idle
        cpu_left = snapshot.cpu_cap[rows] - snapshot.cpu_used[rows] - pod.cpu_milli
        ratio = np.minimum(np.maximum(cpu_left, 0) / np.maximum(need, 1.0), 1.0)
        return np.asarray(np.where(need > 0, ratio, 1.0), dtype=np.float64)

    def _refresh(self, snapshot: Snapshot, pod: PodRequest, rows: IntArray) -> tuple[FloatArray, IntArray]:
        """Per-class cached (node score without the rank bonus, device) over ``rows``,
        recomputed only for nodes whose ``node_version`` moved."""
        model = self.model
        score, dev, ver = model.class_cache(snapshot, (NAME, PodClass.of(pod), pod.gpu_memory_mib), snapshot.max_gpus)
        stale = rows[ver[rows] != snapshot.node_version[rows]]
        if len(stale):
            total = max(model.workload.total, 1)
            before = model.now(snapshot)[stale]
            if pod.gpu_count and pod.is_share:
                need = snapshot.gpu_need_milli(pod)[stale]
                after = model.after_share(snapshot, stale, need, pod.cpu_milli)
                s = np.where(after >= 0, fgd_score(before[:, None], after, total), -1.0)
                best = np.argmax(s, axis=1)
                fgd = s[np.arange(len(stale)), best]
                milli = need[np.arange(len(stale)), best].astype(np.float64)
                dev[stale] = np.where(fgd >= 0, best, -1)
            else:
                after1 = model.after_whole(snapshot, stale, pod.gpu_count, pod.cpu_milli)
                fgd = fgd_score(before, after1, total)
                milli = np.full(len(stale), float(pod.gpu_total_milli))
            score[stale] = fgd + self.cpu_weight * self._cpu_balance(snapshot, stale, pod, milli)
            ver[stale] = snapshot.node_version[stale]
        return score, dev

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        score, _ = self._refresh(snapshot, pod, nodes)
        out = score[nodes]
        if self.rank_weight:
            out = out + self.rank_weight * (1.0 - snapshot.rank[nodes] / max(len(snapshot), 1))
        top = 100.0 + self.rank_weight + self.cpu_weight
        return np.asarray(np.clip(out * (100.0 / top), 0.0, 100.0), dtype=np.float64)

    def choose_devices(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, node: int) -> tuple[DeviceAssignment, ...] | None:
        if not (pod.gpu_count and pod.is_share):
            return None
        _, dev = self._refresh(snapshot, pod, np.array([node], dtype=np.int64))
        return share_assignment(snapshot, pod, node, int(dev[node]))


def new(args: Mapping[str, Any]) -> CorralPolicy:
    wl = args.get("workload")
    if wl is not None and not isinstance(wl, Workload):
        raise TypeError("corral: args.workload must be a corral.scheduler.fragmentation.Workload")
    return CorralPolicy(wl, rank_weight=float(args.get("rank_weight", RANK_WEIGHT)),
                        cpu_weight=float(args.get("cpu_weight", CPU_WEIGHT)))
