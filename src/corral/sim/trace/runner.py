"""Many runs: policies × seeds, in worker processes, aggregated into one summary.

Workers are spawned processes (``--jobs``); each loads the trace once and returns only the
discretised curves, so the parent never ships per-pod arrays around.
"""

from __future__ import annotations

import functools
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from corral.sim.trace.loaders import Trace, load_trace
from corral.sim.trace.metrics import METRICS, POINTS, aggregate, discretise
from corral.sim.trace.replay import TUNE_RATIO, replay

PAPER_NAMES = {
    "random": "Random",
    "dotprod": "DotProd",
    "gpu-clustering": "GpuClustering",
    "gpu-packing": "GpuPacking",
    "bestfit": "BestFit",
    "fgd": "FGD",
    "corral": "corral",
}
"""Our policy names → the names in the paper and in ``fgd-expected.csv``."""


@dataclass(frozen=True, slots=True)
class Task:
    nodes: str
    pods: str
    policy: str
    seed: int
    ratio: float = TUNE_RATIO


@functools.lru_cache(maxsize=4)
def _trace(nodes: str, pods: str) -> Trace:
    return load_trace(nodes, pods)


def run_task(task: Task) -> dict[str, Any]:
    """One (policy, seed) run → discretised curves (JSON-friendly)."""
    run = replay(_trace(task.nodes, task.pods), task.policy, task.seed, ratio=task.ratio)
    return {
        "trace": run.trace,
        "policy": task.policy,
        "seed": task.seed,
        "seconds": run.seconds,
        "placed": run.placed,
        "failed": run.failed,
        "curves": discretise(run),
    }


def parse_seeds(text: str) -> list[int]:
    """``42-51`` or ``42,43,50`` (or a mix) → seeds in order, no duplicates."""
    seeds: list[int] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            span = range(int(lo), int(hi or lo) + 1)
        except ValueError:
            raise ValueError(f"--seeds: {part!r} is not a seed or a range like 42-51") from None
        if not span:
            raise ValueError(f"--seeds: {part!r} is an empty range")
        seeds.extend(s for s in span if s not in seeds)
    if not seeds:
        raise ValueError("--seeds: no seeds given")
    return seeds


def run_all(
    nodes: str,
    pods: str,
    policies: Sequence[str],
    seeds: Sequence[int],
    *,
    jobs: int = 1,
    ratio: float = TUNE_RATIO,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every (policy, seed) and return the summary (see :func:`summarise`)."""
    t0 = time.perf_counter()
    tasks = [Task(nodes, pods, p, s, ratio) for p in policies for s in seeds]
    results: list[dict[str, Any]] = []
    if jobs <= 1:
        for t in tasks:
            r = run_task(t)
            results.append(r)
            if on_done:
                on_done(r)
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_task, t) for t in tasks]
            for f in as_completed(futures):
                r = f.result()
                results.append(r)
                if on_done:
                    on_done(r)
    return summarise(results, policies, seeds, time.perf_counter() - t0)


def summarise(results: list[dict[str, Any]], policies: Sequence[str], seeds: Sequence[int], seconds: float) -> dict[str, Any]:
    """The ``--json`` shape: percent values; inner keys are arrived-workload percents as
    strings. ``curves`` (every integer point) is kept separately for the CSV and plots."""
    trace = results[0]["trace"] if results else ""
    summary: dict[str, Any] = {"trace": trace, "seeds": list(seeds), "seconds": round(seconds, 2), "policies": {}}
    curves: dict[str, Any] = {}
    for policy in policies:
        runs = [r for r in results if r["policy"] == policy]
        if not runs:
            continue
        agg = aggregate([r["curves"] for r in runs])
        entry: dict[str, Any] = {}
        for m in METRICS:
            entry[m] = {str(x): round(agg[m][x][0], 3) for x in POINTS if x in agg[m]}
            if m == "alloc_ratio":
                entry["alloc_ratio_std"] = {str(x): round(agg[m][x][1], 3) for x in POINTS if x in agg[m]}
        entry["seconds_per_run"] = round(sum(r["seconds"] for r in runs) / len(runs), 2)
        entry["failed_pods"] = round(sum(r["failed"] for r in runs) / len(runs), 1)
        summary["policies"][policy] = entry
        curves[policy] = {m: {x: v for x, v in agg[m].items()} for m in METRICS}
    summary["_curves"] = curves
    return summary
