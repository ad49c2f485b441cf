"""Upper bounds on the GPU allocation any placement policy can reach in one replay run.

The replay's semantics (the FGD protocol): pods arrive in one fixed sequence (per seed);
each is placed at once if some node fits it, else dropped for good; nothing ever leaves.
A score policy only chooses *where* a pod goes, never *whether* a fitting pod goes.

Two bounds, both from one linear program over the run's pods:

- **offline**: the most GPU milli that any subset of the arrived pods could occupy — the
  policy may drop any pod. This is the "capacity" ceiling.
- **online** (place-if-it-fits): valid for every policy that places each pod that fits.
  Take an *anchor* class A, a GPU share that cannot pair with itself (``m > 500``; the
  default trace's 810-milli pods). Let ``t`` be the arrival of the first A pod that fits
  nowhere (``t = ∞`` if none fails). Then, exactly:

  1. every A pod arriving before ``t`` was placed (else an earlier one was the first to
     fail), and no A pod after ``t`` is placed;
  2. no pod that *dominates* A (per-device milli ≥ A's, cpu ≥, memory ≥, accepted models ⊆
     A's) is placed after ``t``: free resources only shrink, so a node that fits it later
     would have fitted A at ``t``.

  So for the candidate ``t``, placed A pods = the A arrivals before ``t``; each dominating
  class is capped by its arrivals before ``t``; every other class by its arrivals in the run.
  The bound is the maximum over all candidates ``t`` of the LP below. The forced A pods are
  what costs: each takes a device of its own and leaves ``1000 − m`` that only small shares
  can fill.

The LP (a relaxation, so its optimum is an upper bound): nodes are aggregated into types
(model, GPUs, cpu, memory) with pooled devices, cpu and memory. On each type the devices that
hold shares are an arc-flow over 0..1000 milli (an arc per share size from every position,
plus loss arcs) — the Valério de Carvalho formulation, as strong as the bin-packing
configuration LP — and whole-GPU pods take whole devices. Classes go only on types whose
model they accept and whose node cpu/memory they fit. Objective: allocated GPU milli.

Candidates ``t`` are handled by branch and bound over intervals of A arrivals: an interval
[lo, hi] is bounded by one LP with A's count in [lo, hi] and dominating classes capped at
their arrivals before the hi-th A pod; the interval with the highest bound is split until it
is a single candidate (then its LP value is the bound) or the LP budget is spent (then the
highest interval bound is still a valid bound).

Run: ``corral sim bound --nodes N.csv --pods P.csv --seeds 42-51`` (one JSON line per seed and
a summary; needs scipy, which comes with scikit-learn).
"""

from __future__ import annotations

import heapq
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corral.scheduler.framework import PodRequest
from corral.scheduler.framework.types import MILLI
from corral.sim.trace.loaders import Trace
from corral.sim.trace.replay import TUNE_RATIO, arrivals


@dataclass(frozen=True, slots=True, order=True)
class Cls:
    """A GPU pod class: per-device milli, GPU count, cpu millicores, memory bytes, models."""

    m: int
    k: int
    cpu: int
    mem: int
    models: tuple[str, ...] = ()
    """Accepted models, sorted ('' = any)."""

    @staticmethod
    def of(p: PodRequest) -> Cls:
        return Cls(p.gpu_milli, p.gpu_count, p.cpu_milli, p.memory, tuple(sorted(p.gpu_models or ())))

    @property
    def share(self) -> bool:
        return self.k == 1 and self.m < MILLI

    def dominates(self, a: Cls) -> bool:
        """A node that fits ``self`` also fits ``a`` (any free state)."""
        models_ok = not a.models or (bool(self.models) and set(self.models) <= set(a.models))
        return self.k >= 1 and self.m >= a.m and self.cpu >= a.cpu and self.mem >= a.mem and models_ok


Box = tuple[tuple[int, int], ...]
"""Per anchor, an interval [lo, hi] of first-failure candidates."""


@dataclass(frozen=True, slots=True)
class NodeType:
    count: int
    gpus: int
    cpu: int
    mem: int
    model: str

    def admits(self, c: Cls) -> bool:
        return (c.k <= self.gpus and c.cpu <= self.cpu and c.mem <= self.mem
                and (not c.models or self.model in c.models))


def node_types(trace: Trace) -> list[NodeType]:
    cnt = Counter((len(n.devices), n.cpu_milli, n.memory, n.model) for n in trace.nodes if n.devices)
    return [NodeType(c, g, cpu, mem, model) for (g, cpu, mem, model), c in sorted(cnt.items())]


@dataclass(slots=True)
class LP:
    """The relaxation for one run, built once; :meth:`solve` takes per-class bounds."""

    types: list[NodeType]
    classes: list[Cls]
    unit: int
    c: Any = None
    a_ub: Any = None
    b_ub: Any = None
    a_eq: Any = None
    b_eq: Any = None
    class_cols: list[list[int]] = field(default_factory=list)
    solves: int = 0

    @staticmethod
    def build(types: list[NodeType], classes: list[Cls]) -> LP:
        from scipy.sparse import coo_matrix

        shares = sorted({c.m for c in classes if c.share})
        unit = MILLI
        for s in shares:
            unit = math.gcd(unit, s)
        npos = MILLI // unit + 1
        cols: list[float] = []  # objective coefficient per column
        ub_rows: list[tuple[int, int, float]] = []
        eq_rows: list[tuple[int, int, float]] = []
        b_ub: list[float] = []
        b_eq: list[float] = []
        class_cols: list[list[int]] = [[] for _ in classes]

        def col(obj: float) -> int:
            cols.append(obj)
            return len(cols) - 1

        for t in types:
            ok = [i for i, c in enumerate(classes) if t.admits(c)]
            sizes = sorted({classes[i].m for i in ok if classes[i].share})
            # arc-flow over positions 0..npos-1; flow rows: one equality per interior position
            flow_row = {p: len(b_eq) + p - 1 for p in range(1, npos - 1)}
            b_eq.extend([0.0] * (npos - 2))
            out0: list[int] = []
            size_arcs: dict[int, list[int]] = {s: [] for s in sizes}
            arcs = [(p, p + s // unit, s) for s in sizes for p in range(npos - s // unit)]
            arcs += [(p, p + 1, 0) for p in range(npos - 1)]  # loss arcs
            for a, b, s in arcs:
                j = col(0.0)
                if a == 0:
                    out0.append(j)
                else:
                    eq_rows.append((flow_row[a], j, -1.0))
                if b != npos - 1:
                    eq_rows.append((flow_row[b], j, 1.0))
                if s:
                    size_arcs[s].append(j)
            dev_row = len(b_ub)
            b_ub.append(float(t.count * t.gpus))
            for j in out0:
                ub_rows.append((dev_row, j, 1.0))
            cpu_row, mem_row = len(b_ub), len(b_ub) + 1
            b_ub.extend([float(t.count * t.cpu), float(t.count * t.mem)])
            link = {s: len(b_eq) + n for n, s in enumerate(sizes)}
            b_eq.extend([0.0] * len(sizes))
            for s in sizes:
                for j in size_arcs[s]:
                    eq_rows.append((link[s], j, 1.0))
            for i in ok:
                c = classes[i]
                j = col(-float(c.m * c.k))
                class_cols[i].append(j)
                ub_rows.append((cpu_row, j, float(c.cpu)))
                ub_rows.append((mem_row, j, float(c.mem)))
                if c.share:
                    eq_rows.append((link[c.m], j, -1.0))
                else:
                    ub_rows.append((dev_row, j, float(c.k)))
        n = len(cols)

        def mat(rows: list[tuple[int, int, float]], nrows: int) -> Any:
            r, cc, v = zip(*rows, strict=True) if rows else ((), (), ())
            return coo_matrix((v, (r, cc)), shape=(nrows, n)).tocsr()

        lp = LP(types, classes, unit)
        lp.c = np.array(cols)
        lp.a_ub, lp.b_ub = mat(ub_rows, len(b_ub)), np.array(b_ub)
        lp.a_eq, lp.b_eq = mat(eq_rows, len(b_eq)), np.array(b_eq)
        lp.class_cols = class_cols
        return lp

    def solve(self, lo: dict[Cls, float], hi: dict[Cls, float]) -> float:
        """Max allocated milli with lo[c] ≤ placed(c) ≤ hi[c] (classes missing from hi: 0)."""
        from scipy.optimize import linprog
        from scipy.sparse import coo_matrix, vstack

        rows: list[tuple[int, int, float]] = []
        b: list[float] = []
        for i, c in enumerate(self.classes):
            for j in self.class_cols[i]:
                rows.append((len(b), j, 1.0))
            b.append(hi.get(c, 0.0))
            if lo.get(c, 0.0) > 0:
                for j in self.class_cols[i]:
                    rows.append((len(b), j, -1.0))
                b.append(-lo[c])
        if not rows:  # no class fits any node type
            return 0.0
        r, cc, v = zip(*rows, strict=True)
        extra = coo_matrix((v, (r, cc)), shape=(len(b), len(self.c))).tocsr()
        res = linprog(self.c, A_ub=vstack([self.a_ub, extra]), b_ub=np.concatenate([self.b_ub, b]),
                      A_eq=self.a_eq, b_eq=self.b_eq, bounds=(0, None), method="highs")
        self.solves += 1
        if res.status == 2:  # infeasible: the forced pods cannot all be placed
            return -math.inf
        if res.status != 0:
            raise RuntimeError(f"bound LP: {res.message}")
        return float(-res.fun)


def anchor_classes(pods: tuple[PodRequest, ...] | list[PodRequest], limit: int = 4) -> list[Cls]:
    """The ``limit`` most common GPU-share classes (at least 1 % of GPU pods each)."""
    cnt = Counter(Cls.of(p) for p in pods if p.gpu_count)
    total = sum(cnt.values())
    ranked = sorted(((n, c) for c, n in cnt.items() if c.share and n >= 0.01 * total), reverse=True)
    return [c for _, c in ranked[:limit]]


def run_bound(trace: Trace, seed: int, *, ratio: float = TUNE_RATIO, max_lps: int = 60,
              anchors: int = 1) -> dict[str, Any]:
    """Offline and online upper bounds (allocation %, of GPU capacity) for one seed's run."""
    seq = arrivals(trace, np.random.default_rng(seed), ratio)
    return {"seed": seed, **bound_sequence(node_types(trace), seq, trace.gpu_milli_capacity,
                                           anchor_classes(trace.pods, anchors), max_lps=max_lps)}


def bound_sequence(types: list[NodeType], sequence: list[PodRequest], capacity: int, anchors: list[Cls],
                   *, max_lps: int = 60) -> dict[str, Any]:
    """The bounds for one arrival ``sequence`` on nodes of ``types`` (see the module doc)."""
    t0 = time.perf_counter()
    pods = [p for p in sequence if p.gpu_count]
    classes = sorted({Cls.of(p) for p in pods})
    total = Counter(Cls.of(p) for p in pods)
    lp = LP.build(types, classes)

    def pct(v: float) -> float:
        return round(100.0 * v / capacity, 3)

    offline = lp.solve({}, {c: float(n) for c, n in total.items()})
    out: dict[str, Any] = {"pods": len(pods), "offline_pct": pct(offline)}
    anchors = [a for a in anchors if a in total]
    if not anchors:
        out.update(online_pct=pct(offline), anchors=[], lps=lp.solves, seconds=round(time.perf_counter() - t0, 1))
        return out
    # cum[c][p]: pods of class c among the first p of the sequence
    index = {c: i for i, c in enumerate(classes)}
    onehot = np.zeros((len(classes), len(pods) + 1), dtype=np.int64)
    for n, p in enumerate(pods):
        onehot[index[Cls.of(p)], n + 1] = 1
    cum = np.cumsum(onehot, axis=1)
    pos = [np.flatnonzero(onehot[index[a], 1:]) for a in anchors]
    dom = [[c for c in classes if c.dominates(a)] for a in anchors]
    def box_lp(box: Box) -> float:
        """Bound for first-failure candidates j_i in [lo_i, hi_i] of every anchor i (j_i = the
        anchor's count: none of it fails)."""
        up = {c: float(n) for c, n in total.items()}
        low: dict[Cls, float] = {}
        for i, (lo, hi) in enumerate(box):
            stop = int(pos[i][hi]) if hi < len(pos[i]) else len(pods)
            for c in dom[i]:
                up[c] = min(up[c], float(cum[index[c], stop]))
            up[anchors[i]] = min(up[anchors[i]], float(hi))
            low[anchors[i]] = float(lo)
        return lp.solve(low, up)

    def width(box: Box, i: int) -> float:
        return (box[i][1] - box[i][0]) / max(len(pos[i]), 1)

    start: Box = tuple((0, len(p)) for p in pos)
    heap: list[tuple[float, int, Box]] = [(-box_lp(start), 0, start)]
    tick = 1
    while lp.solves < max_lps:
        neg, _, box = heap[0]
        if neg == math.inf:
            break
        i = max(range(len(box)), key=lambda d: width(box, d))
        lo, hi = box[i]
        if lo == hi:
            break  # a single candidate: its LP value is the bound
        heapq.heappop(heap)
        mid = (lo + hi) // 2
        for part in ((lo, mid), (mid + 1, hi)):
            b = (*box[:i], part, *box[i + 1:])
            heapq.heappush(heap, (-box_lp(b), tick, b))
            tick += 1
    neg, _, box = heap[0]
    arrived = np.cumsum([p.gpu_total_milli for p in pods])

    def at(i: int, j: int) -> str | float:
        return "none fails" if j >= len(pos[i]) else round(100.0 * float(arrived[pos[i][j]]) / capacity, 2)

    out.update(
        online_pct=pct(-neg),
        exact=all(lo == hi for lo, hi in box),
        anchors=[{"milli": a.m, "cpu": a.cpu, "arrived": len(pos[i]), "first_failure_index": list(box[i]),
                  "first_failure_arrived_pct": [at(i, box[i][0]), at(i, box[i][1])]} for i, a in enumerate(anchors)],
        lps=lp.solves,
        seconds=round(time.perf_counter() - t0, 1),
    )
    return out


def summarise_bounds(trace: Trace, seeds: list[int], *, ratio: float = TUNE_RATIO, anchors: int = 1,
                     max_lps: int = 60) -> Iterator[dict[str, Any]]:
    """One result per seed, then ``{"trace", "seeds", "online_pct_mean", ...}``."""
    rows = []
    for seed in seeds:
        r = run_bound(trace, seed, ratio=ratio, max_lps=max_lps, anchors=anchors)
        rows.append(r)
        yield r
    on = [r["online_pct"] for r in rows]
    off = [r["offline_pct"] for r in rows]
    yield {"trace": trace.name, "seeds": [r["seed"] for r in rows],
           "online_pct_mean": round(float(np.mean(on)), 3), "online_pct_max": max(on),
           "offline_pct_mean": round(float(np.mean(off)), 3)}
