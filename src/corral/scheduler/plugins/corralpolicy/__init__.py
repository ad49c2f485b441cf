"""Score policy ``corral``: corral's fragmentation-aware GPU placement (default for GPU pods).

Experimental knobs are args; see docs/simulation.md for the chosen defaults.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.fragmentation import FragModel, PodClass, Workload
from corral.scheduler.framework import CycleState, DeviceAssignment, PodRequest, Status
from corral.scheduler.framework.interfaces import FloatArray, IntArray
from corral.scheduler.framework.types import MILLI

NAME = "corral"


def reweight(wl: Workload, weighting: str) -> Workload:
    if weighting == "count":
        return wl
    out = []
    for c, n in zip(wl.classes, wl.counts.tolist(), strict=True):
        r = c.gpu_milli * c.gpu_count
        if weighting == "gpu":
            w = n * r
        elif weighting == "sqrt":
            w = int(n * 1000 * np.sqrt(max(r, 0) / 1000.0))
        else:
            raise ValueError(weighting)
        out.append((c, w))
    return Workload(out)


class CorralPolicy:
    name = NAME

    def __init__(self, workload: Workload | None = None, *, weighting: str = "count", exact: bool = True,
                 tiebreak: str = "bestfit", learn: bool = False, quantum: float = 0.0, cpu_mode: str = "fgd", kind: str = "fgd", share_mode: str = "frag", rank_bonus: float = 0.0, pack: float = 0.0, cpu_bal: float = 0.0) -> None:
        self.pack = pack
        self.cpu_bal = cpu_bal
        self.rank_bonus = rank_bonus
        self.kind = kind
        self.share_mode = share_mode
        self.quantum = quantum
        self.cpu_mode = cpu_mode
        self._fixed = workload is not None and not learn
        self._seen: Counter[PodClass] = Counter()
        self._seen_total = 0
        self._next_refresh = 1
        self.weighting = weighting
        self.exact = exact
        self.tiebreak = tiebreak
        self.model = FragModel(reweight(workload or Workload([]), weighting), kind)

    def pre_filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> Status:
        if not self._fixed:
            self._seen[PodClass.of(pod)] += 1
            self._seen_total += 1
            if self._seen_total >= self._next_refresh:
                self._next_refresh = max(int(1.25 * self._seen_total), 16)
                self.model = FragModel(reweight(Workload.from_counts(self._seen), self.weighting), self.kind)
        return Status.success()

    def _transform(self, delta: FloatArray, share: bool = False) -> FloatArray:
        if self.share_mode == "exact" and share:
            return np.asarray(50.0 + 50.0 * np.tanh(delta / 4000.0), dtype=np.float64)
        if self.share_mode == "exact-other" and not share:
            return np.asarray(50.0 + 50.0 * np.tanh(delta / 4000.0), dtype=np.float64)
        if self.quantum > 0:
            return np.asarray(50.0 + 50.0 * np.tanh(np.floor(delta / self.quantum) * self.quantum / 4000.0), dtype=np.float64)
        if self.exact:
            return np.asarray(50.0 + 50.0 * np.tanh(delta / 4000.0), dtype=np.float64)
        return np.asarray(np.trunc(100.0 / (1.0 + np.exp(-delta / 1000.0))), dtype=np.float64)

    def _refresh(self, snapshot: Snapshot, pod: PodRequest, rows: IntArray) -> tuple[FloatArray, IntArray]:
        model = self.model
        key = (NAME, PodClass.of(pod), pod.gpu_memory_mib)
        score, dev, ver = model.class_cache(snapshot, key, snapshot.max_gpus)
        stale = rows[ver[rows] != snapshot.node_version[rows]]
        if len(stale):
            total = max(model.workload.total, 1)
            before = model.now(snapshot)[stale]
            maxcpu = float(max(int(snapshot.cpu_cap.max()), 1))
            maxgpu = float(max(int(snapshot.gpu_cap.sum(axis=1).max()), 1))
            cpu_left = (snapshot.cpu_cap[stale] - snapshot.cpu_used[stale] - pod.cpu_milli) / maxcpu
            if pod.gpu_count and pod.is_share:
                need = snapshot.gpu_need_milli(pod)[stale]
                after = model.after_share(snapshot, stale, need, pod.cpu_milli)
                s = self._transform((before[:, None] - after) / total, share=True)
                if self.pack or self.cpu_bal:
                    cap = np.maximum(snapshot.gpu_cap[stale].sum(axis=1), 1)
                    used_after = (cap - snapshot.gpu_free[stale].sum(axis=1) + need.max(axis=1)) / cap
                    s = s + (self.pack * used_after)[:, None]
                    s = s + self.cpu_bal * self._cpu_balance(snapshot, stale, pod, need.max(axis=1))[:, None]
                if self.share_mode == "spread":
                    s = np.trunc(100.0 * (snapshot.gpu_free[stale] - need) / MILLI)
                if self.tiebreak == "bestfit":
                    idle = snapshot.gpu_free[stale]
                    left_dev = (idle - need) / MILLI
                    left_node = (idle.sum(axis=1, keepdims=True) - need) / maxgpu
                    s = s - 1e-4 * (left_dev + 0.5 * left_node + 0.5 * cpu_left[:, None])
                s = np.where(after >= 0, s, -1.0)
                best = np.argmax(s, axis=1)
                score[stale] = s[np.arange(len(stale)), best]
                dev[stale] = np.where(score[stale] >= 0, best, -1)
            elif not pod.wants_gpu and self.cpu_mode == "surplus":
                wl = model.workload
                gpu_w = wl.counts * wl.milli * wl.count
                rho = float((wl.counts * wl.cpu)[wl.milli > 0].sum()) / max(float(gpu_w.sum()), 1.0)  # cpu per GPU milli
                idle = snapshot.gpu_free[stale].sum(axis=1)
                surplus = snapshot.cpu_cap[stale] - snapshot.cpu_used[stale] - pod.cpu_milli - rho * idle
                score[stale] = 50.0 + 50.0 * np.tanh(surplus / maxcpu)
            else:
                after1 = model.after_whole(snapshot, stale, pod.gpu_count, pod.cpu_milli)
                s1 = self._transform((before - after1) / total)
                if (self.pack or self.cpu_bal) and pod.gpu_count:
                    cap = np.maximum(snapshot.gpu_cap[stale].sum(axis=1), 1)
                    used_after = (cap - snapshot.gpu_free[stale].sum(axis=1) + pod.gpu_total_milli) / cap
                    s1 = s1 + self.pack * used_after
                    s1 = s1 + self.cpu_bal * self._cpu_balance(snapshot, stale, pod, np.full(len(stale), pod.gpu_total_milli))
                if self.tiebreak == "bestfit":
                    idle_left = (snapshot.gpu_free[stale].sum(axis=1) - pod.gpu_total_milli) / maxgpu
                    s1 = s1 - 1e-4 * (0.5 * idle_left + 0.5 * cpu_left)
                score[stale] = s1
            ver[stale] = snapshot.node_version[stale]
        return score, dev

    def _cpu_balance(self, snapshot: Snapshot, rows: IntArray, pod: PodRequest, milli: Any) -> FloatArray:
        """1 when the node's cpu left per idle GPU after placement is at least the workload's
        cpu per GPU; lower (down to 0) as idle GPUs lose the cpu they need."""
        wl = self.model.workload
        gpu_w = float((wl.counts * wl.milli * wl.count).sum())
        rho = float((wl.counts * wl.cpu)[wl.milli > 0].sum()) / max(gpu_w, 1.0)
        idle = snapshot.gpu_free[rows].sum(axis=1) - milli
        cpu_left = snapshot.cpu_cap[rows] - snapshot.cpu_used[rows] - pod.cpu_milli
        need = rho * idle
        return np.asarray(np.where(need > 0, np.minimum(cpu_left / np.maximum(need, 1), 1.0), 1.0), dtype=np.float64)

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        score, _ = self._refresh(snapshot, pod, nodes)
        out = score[nodes]
        if self.rank_bonus:
            out = out + self.rank_bonus * (1.0 - snapshot.rank[nodes] / max(len(snapshot), 1))
        return np.clip(out, 0.0, 100.0)

    def choose_devices(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, node: int) -> tuple[DeviceAssignment, ...] | None:
        if not (pod.gpu_count and pod.is_share):
            return None
        _, dev = self._refresh(snapshot, pod, np.array([node], dtype=np.int64))
        col = int(dev[node])
        if col < 0:
            return None
        need = int(snapshot.gpu_need_milli(pod)[node, col])
        return (DeviceAssignment(snapshot.specs[node].devices[col].index, need),)


def new(args: Mapping[str, Any]) -> CorralPolicy:
    wl = args.get("workload")
    if wl is not None and not isinstance(wl, Workload):
        raise TypeError("corral: args.workload must be a corral.scheduler.fragmentation.Workload")
    return CorralPolicy(wl, weighting=str(args.get("weighting", "count")), exact=bool(args.get("exact", True)),
                        tiebreak=str(args.get("tiebreak", "bestfit")), learn=bool(args.get("learn", False)), quantum=float(args.get("quantum", 0.0)),
                        cpu_mode=str(args.get("cpu_mode", "fgd")), kind=str(args.get("kind", "fgd")),
                        share_mode=str(args.get("share_mode", "frag")), rank_bonus=float(args.get("rank_bonus", 0.0)),
                        pack=float(args.get("pack", 0.0)), cpu_bal=float(args.get("cpu_bal", 0.0)))
