"""One replay run: (trace, policy, seed) → per-pod records, following the FGD protocol.

```
W = trace pods (sorted by name);  T = typical pods of W (FGD's target workload)
S = random permutation of W
inflate: append uniform clones of W until the GPU request would pass 130 % of capacity
         (stop test on the per-GPU milli, as the reference does), or drop random pods when
         the trace is above it
rank = random permutation of the nodes: the fixed tie-break for the whole run
for pod in S: schedule_group(snapshot, [pod], policy profile); record metrics
```
A pod that fits nowhere is dropped (never retried) but still counts as arrived. One numpy
``Generator`` seeded with the run's seed drives every draw, in the order above.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from corral.scheduler.cache import Snapshot
from corral.scheduler.fragmentation import FragModel, Workload
from corral.scheduler.framework import CycleState, Framework, PodRequest, Profile, schedule_group
from corral.scheduler.plugins import default_registry
from corral.sim.trace.loaders import Trace

TUNE_RATIO = 1.3
WORKLOAD_POLICIES = ("fgd", "corral")
"""Policies that take the target workload (the trace's typical pods) as an argument."""


@dataclass(slots=True)
class RunResult:
    """Per-pod records of one run (arrays of length = pods replayed)."""

    trace: str
    policy: str
    seed: int
    capacity_milli: int
    arrived_milli: NDArray[np.int64]
    used_milli: NDArray[np.int64]
    frag_milli: NDArray[np.float64]
    placed: int = 0
    failed: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _milli(p: PodRequest) -> int:
    return p.gpu_milli if p.gpu_count else 0


def inflate(pods: list[PodRequest], originals: tuple[PodRequest, ...], capacity: int, rng: np.random.Generator,
            ratio: float = TUNE_RATIO) -> list[PodRequest]:
    """tuneUpPods / tuneDownPods of the reference simulator."""
    target = ratio * capacity
    demand = sum(p.gpu_total_milli for p in pods)
    out = list(pods)
    if demand < target:
        n = 0
        while True:
            p = originals[int(rng.integers(len(originals)))]
            if demand + _milli(p) > target:
                break
            n += 1
            out.append(replace(p, key=f"{p.key}-clone-{n}"))
            demand += p.gpu_total_milli
    elif demand > target:
        while demand > target:
            i = int(rng.integers(len(out)))
            demand -= out[i].gpu_total_milli
            del out[i]
    return out


def arrivals(trace: Trace, rng: np.random.Generator, ratio: float = TUNE_RATIO) -> list[PodRequest]:
    """The run's pod sequence: the originals shuffled, then inflated (draws from ``rng`` in the
    protocol's order; a replay and :mod:`.bound` see the same sequence for one seed)."""
    order = rng.permutation(len(trace.pods))
    return inflate([trace.pods[i] for i in order], trace.pods, trace.gpu_milli_capacity, rng, ratio)


def replay(trace: Trace, policy: str, seed: int, *, ratio: float = TUNE_RATIO,
           profile: Profile | None = None) -> RunResult:
    """Run one seed of one policy. ``profile`` overrides the one-policy profile."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    originals = trace.pods
    typical = Workload.typical(originals)
    capacity = trace.gpu_milli_capacity
    pods = arrivals(trace, rng, ratio)
    snapshot = Snapshot(trace.nodes)
    snapshot.set_rank(rng.permutation(len(trace.nodes)))
    if profile is None:
        args = {"workload": typical} if policy in WORKLOAD_POLICIES else {}
        profile = Profile.for_policy(policy, args=args)
    fw = Framework(profile, default_registry())
    metric = FragModel(typical)
    n = len(pods)
    arrived = np.zeros(n, dtype=np.int64)
    used = np.zeros(n, dtype=np.int64)
    frag = np.zeros(n, dtype=np.float64)
    total_arrived = 0
    used_now = 0
    placed = failed = 0
    scale = float(max(typical.total, 1))
    for i, pod in enumerate(pods):
        state = CycleState(rng)
        result = schedule_group(snapshot, [pod], fw, state=state)
        if result.ok:
            placed += 1
        else:
            failed += 1
        total_arrived += pod.gpu_total_milli
        arrived[i] = total_arrived
        if result.ok:
            used_now += sum(d.milli for pl in result.placements for d in pl.devices if not d.mig_profile)
        used[i] = used_now
        frag[i] = float(metric.now(snapshot).sum()) / scale
    return RunResult(trace.name, policy, seed, capacity, arrived, used, frag, placed, failed, time.perf_counter() - t0)
