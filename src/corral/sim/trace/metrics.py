"""Metrics of the FGD protocol: per-run discretisation by arrived workload, and the mean
and sample std (ddof=1) over seeds.

Per record: ``arrive = round(arrived/capacity·100)`` (half to even) and
``alloc = round(used/capacity·100, 2)``. For each integer x, the bin is the records with
``arrive == x`` (x±1 if empty):

- ``alloc_ratio[x]`` — allocated GPU milli, % of capacity (mean over the bin, 2 decimals);
- ``frag_amount[x]`` — fragmented GPU milli (FGD's Frag summed over nodes), % of capacity;
- ``frag_ratio[x]`` — fragmented share of the *idle* GPU milli, %;
- ``unallocated_gpus[x]`` — ``100 − alloc_ratio`` (the paper's bar charts).
"""

from __future__ import annotations

import numpy as np

from corral.sim.trace.replay import RunResult

POINTS: tuple[int, ...] = (50, 70, 90, 100, 110, 120, 130)
METRICS: tuple[str, ...] = ("alloc_ratio", "frag_ratio", "frag_amount", "unallocated_gpus")


def discretise(run: RunResult, xs: range | tuple[int, ...] = tuple(range(131))) -> dict[str, dict[int, float]]:
    cap = run.capacity_milli
    arrive = np.round(run.arrived_milli / cap * 100).astype(np.int64)
    alloc = np.round(run.used_milli / cap * 100, 2)
    idle = cap - run.used_milli
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(idle > 0, 100.0 * run.frag_milli / np.maximum(idle, 1), 0.0)
    amount = 100.0 * run.frag_milli / cap
    out: dict[str, dict[int, float]] = {m: {} for m in METRICS}
    for x in xs:
        sel = arrive == x
        if not sel.any():
            sel = (arrive >= x - 1) & (arrive <= x + 1)
        if not sel.any():
            # sparse (tiny) traces: the state after the last record below x, if x was reached
            below = np.flatnonzero(arrive < x)
            if len(below) == 0 or arrive.max() < x:
                continue
            sel = np.zeros(len(arrive), dtype=np.bool_)
            sel[below[-1]] = True
        a = round(float(alloc[sel].mean()), 2)
        out["alloc_ratio"][x] = a
        out["frag_amount"][x] = round(float(amount[sel].mean()), 2)
        out["frag_ratio"][x] = float(ratio[sel].mean())
        out["unallocated_gpus"][x] = round(100.0 - a, 2)
    return out


def aggregate(runs: list[dict[str, dict[int, float]]]) -> dict[str, dict[int, tuple[float, float]]]:
    """Mean and sample std over seeds for each metric and point present in every run."""
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for m in METRICS:
        xs = set.intersection(*(set(r[m]) for r in runs)) if runs else set()
        out[m] = {}
        for x in sorted(xs):
            vals = np.array([r[m][x] for r in runs], dtype=np.float64)
            std = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            out[m][x] = (float(vals.mean()), std)
    return out
