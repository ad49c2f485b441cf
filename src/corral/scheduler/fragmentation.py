"""GPU fragmentation against a target workload (FGD, Weng et al., ATC'23), vectorised.

The *target workload* is a set of pod classes (cpu, per-GPU milli ``m``, GPU count ``k``,
accepted models) with frequencies: the request-type distribution a scheduler expects,
either given (the trace's typical pods, as FGD uses them) or learnt from the pods seen so
far. A node's fragmentation ``Frag(n)`` is the expected number of idle GPU milli that a
pod drawn from the workload could *not* use on it:

- a class that does not fit the node at all (no GPU of its model, too few GPUs with
  ``>= m`` idle, too little CPU), or a CPU-only class, sees all idle GPU milli as fragment;
- a class that fits sees the idle milli of devices with ``idle < m`` as fragment.

Frag is computed in exact integers scaled by the workload's total count (``Σ count·amount``),
so equal states give equal values and ΔFrag = 0 exactly; divide by ``Workload.total``.

:class:`FragModel` keeps per-node values memoised against ``snapshot.node_version`` so a
replay only recomputes the nodes the last placements touched. The policies (``fgd``,
``corral``) turn these into scores with :func:`fgd_score` and reserve a share's device with
:func:`share_assignment`; they import this module, not each other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from corral.scheduler.framework.types import MILLI, DeviceAssignment, PodRequest

if TYPE_CHECKING:
    from corral.scheduler.cache.snapshot import Snapshot

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True, order=True)
class PodClass:
    """A request type: cpu millicores, per-GPU milli (0 for CPU-only), GPU count, models."""

    cpu_milli: int
    gpu_milli: int
    gpu_count: int
    spec: str = ""
    """Accepted GPU models joined with ``|`` ('' = any)."""

    @staticmethod
    def of(pod: PodRequest) -> PodClass:
        models = "|".join(sorted(pod.gpu_models)) if pod.gpu_models else ""
        if pod.gpu_count == 0:
            return PodClass(pod.cpu_milli, 0, 0, models)
        return PodClass(pod.cpu_milli, pod.gpu_milli, pod.gpu_count, models)


class Workload:
    """Pod classes with integer counts (frequencies = count / total)."""

    def __init__(self, classes: Iterable[tuple[PodClass, int]]) -> None:
        items = [(c, n) for c, n in classes if n > 0]
        self.classes: tuple[PodClass, ...] = tuple(c for c, _ in items)
        self.counts: I64 = np.array([n for _, n in items], dtype=np.int64)
        self.total = int(self.counts.sum()) if items else 0
        self.cpu = np.array([c.cpu_milli for c in self.classes], dtype=np.int64)
        self.milli = np.array([c.gpu_milli for c in self.classes], dtype=np.int64)
        self.count = np.array([c.gpu_count for c in self.classes], dtype=np.int64)
        self.key = hash((self.classes, tuple(self.counts.tolist())))
        self.unique_milli, self.milli_inverse = np.unique(self.milli, return_inverse=True)
        self.unique_milli_floor = np.maximum(self.unique_milli, 1)

    @staticmethod
    def typical(pods: Iterable[PodRequest], coverage: float = 0.95) -> Workload:
        """FGD's typical pods: classes by count (descending; ties to the larger class), the
        shortest prefix covering ``coverage`` of all pods."""
        return Workload.from_counts(Counter(PodClass.of(p) for p in pods), coverage)

    @staticmethod
    def from_counts(counts: Mapping[PodClass, int], coverage: float = 0.95) -> Workload:
        """:meth:`typical` from class counts."""
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        out: list[tuple[PodClass, int]] = []
        acc = 0
        for cls, n in ranked:
            out.append((cls, n))
            acc += n
            if acc >= coverage * total:
                break
        return Workload(out)

    def access(self, snapshot: Snapshot) -> NDArray[np.bool_]:
        """(N, P): may class p use node n's GPU model."""
        out = np.ones((len(snapshot), len(self.classes)), dtype=np.bool_)
        for j, c in enumerate(self.classes):
            if c.spec:
                allowed = set(c.spec.split("|"))
                ids = np.array([i for i, m in enumerate(snapshot.models) if m in allowed], dtype=np.int64)
                out[:, j] = np.isin(snapshot.model_id, ids)
        return out


def frag_int(idle: I64, cpu_left: I64, access: NDArray[np.bool_], wl: Workload) -> I64:
    """Σ_p count_p·amount_p for each row: ``idle`` (X, G) milli, ``cpu_left`` (X,),
    ``access`` (X, P)."""
    if not wl.total:
        return np.zeros(idle.shape[0], dtype=np.int64)
    idle_tot = idle.sum(axis=1)
    inv = wl.milli_inverse
    ge = idle[:, :, None] >= wl.unique_milli_floor[None, None, :]  # (X, G, U)
    cnt = ge.sum(axis=1)[:, inv]  # (X, P)
    below = np.where(ge, 0, idle[:, :, None]).sum(axis=1)[:, inv]
    sat = access & (cnt >= wl.count[None, :]) & (cpu_left[:, None] >= wl.cpu[None, :]) & (wl.milli > 0)[None, :]
    amount = np.where(sat, below, idle_tot[:, None])
    return np.asarray(amount @ wl.counts, dtype=np.int64)


class FragModel:
    """Frag of every node now and after hypothetical placements, memoised per node version.

    Stored in ``snapshot.memo[memo_key]`` so a new snapshot starts clean.
    """

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.fn = frag_int
        self.memo_key = f"frag:{workload.key}"

    def _memo(self, snapshot: Snapshot) -> dict[str, Any]:
        memo: dict[str, Any] | None = snapshot.memo.get(self.memo_key)
        if memo is None or memo["wl"] != self.workload.key or memo["n"] != len(snapshot):
            memo = {
                "wl": self.workload.key,
                "n": len(snapshot),
                "access": self.workload.access(snapshot),
                "now": np.zeros(len(snapshot), dtype=np.int64),
                "now_ver": np.full(len(snapshot), -1, dtype=np.int64),
                "classes": {},
            }
            snapshot.memo[self.memo_key] = memo
        return memo

    def now(self, snapshot: Snapshot) -> I64:
        """Current Σ count·amount per node (scaled Frag)."""
        memo = self._memo(snapshot)
        stale = np.flatnonzero(memo["now_ver"] != snapshot.node_version)
        if len(stale):
            cpu_left = snapshot.cpu_cap[stale] - snapshot.cpu_used[stale]
            memo["now"][stale] = self.fn(snapshot.gpu_free[stale], cpu_left, memo["access"][stale], self.workload)
            memo["now_ver"][stale] = snapshot.node_version[stale]
        now: I64 = memo["now"]
        return now

    def after_share(self, snapshot: Snapshot, rows: I64, need: I64, cpu: int) -> I64:
        """Scaled Frag after placing a share of ``need[r, g]`` milli on device g, cpu ``cpu``:
        shape (len(rows), G); -1 where the device cannot take it."""
        memo = self._memo(snapshot)
        idle = snapshot.gpu_free[rows]
        fits = idle >= need
        r_idx, d_idx = np.nonzero(fits)
        out = np.full(idle.shape, -1, dtype=np.int64)
        if len(r_idx) == 0:
            return out
        # deduplicate devices with equal idle on the same row: same result
        key = (r_idx * (MILLI + 1) + idle[r_idx, d_idx]) * (2 * MILLI + 2) + np.minimum(need[r_idx, d_idx], 2 * MILLI + 1)
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        ur, ud = r_idx[first], d_idx[first]
        hyp = idle[ur].copy()
        hyp[np.arange(len(ur)), ud] -= need[ur, ud]
        cpu_left = snapshot.cpu_cap[rows[ur]] - snapshot.cpu_used[rows[ur]] - cpu
        vals = self.fn(hyp, cpu_left, memo["access"][rows[ur]], self.workload)
        out[r_idx, d_idx] = vals[inv.reshape(-1)]
        return out

    def after_whole(self, snapshot: Snapshot, rows: I64, k: int, cpu: int) -> I64:
        """Scaled Frag after taking ``k`` fully free GPUs (lowest first) and ``cpu``."""
        memo = self._memo(snapshot)
        idle = snapshot.gpu_free[rows].copy()
        if k:
            full = idle >= MILLI
            take = full & (np.cumsum(full, axis=1) <= k)
            idle[take] = 0
        cpu_left = snapshot.cpu_cap[rows] - snapshot.cpu_used[rows] - cpu
        return self.fn(idle, cpu_left, memo["access"][rows], self.workload)

    def class_cache(self, snapshot: Snapshot, key: Any, width: int) -> tuple[F64, I64, I64]:
        """Per-(pod class) cached (score, device, version) arrays for a policy."""
        memo = self._memo(snapshot)
        got = memo["classes"].get(key)
        if got is None:
            n = len(snapshot)
            got = (np.zeros(n, dtype=np.float64), np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64))
            memo["classes"][key] = got
        del width
        return got  # type: ignore[no-any-return]


def fgd_score(before: Any, after: Any, total: int) -> F64:
    """FGD's score ``trunc(100·sigmoid(ΔFrag/1000))`` from scaled Frag values (``before`` and
    ``after`` broadcast; divide by the workload's ``total`` count to get milli)."""
    return np.asarray(np.trunc(100.0 / (1.0 + np.exp(-((before - after) / total) / 1000.0))), dtype=np.float64)


def share_assignment(snapshot: Snapshot, pod: PodRequest, node: int, col: int) -> tuple[DeviceAssignment, ...] | None:
    """The share of ``pod`` on device column ``col`` of row ``node`` (None when ``col < 0``:
    no device fits)."""
    if col < 0:
        return None
    need = int(snapshot.gpu_need_milli(pod)[node, col])
    return (DeviceAssignment(snapshot.specs[node].devices[col].index, need),)
