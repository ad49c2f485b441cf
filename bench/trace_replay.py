"""Trace replay benchmark: seconds per (policy, seed) run on the Alibaba default trace.

- ``seconds_per_run``: one seed (42) of each of the seven policies, one process, wall time
  of ``replay`` (load excluded); ``max_seconds_per_run`` is the slowest policy (target ≤ 10 s).
  ``cpu_seconds_per_run`` is the same runs' process CPU time — what a run costs on an idle
  core, the fairer figure on a shared machine (``load_average_1m`` says how shared).
- With ``BENCH_TRACE_FULL=1`` it also runs the whole table, 7 policies × seeds 42–51 with
  2 worker processes (as ``corral sim trace --jobs 2``), and reports ``full_table_seconds``
  (target ≤ 300 s).

It reads ``../shared/data/alibaba-gpu-v2023`` (or ``$CORRAL_SHARED/data/...``) and prints
one JSON line; without the data it prints ``{"skipped": reason}``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from corral.scheduler.plugins import POLICIES
from corral.sim.trace import load_trace, replay
from corral.sim.trace.metrics import discretise
from corral.sim.trace.runner import run_all


def data_dir() -> Path | None:
    env = os.environ.get("CORRAL_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" for p in Path(__file__).resolve().parents]
    for c in candidates:
        d = c / "data" / "alibaba-gpu-v2023"
        if d.is_dir():
            return d
    return None


def main() -> None:
    d = data_dir()
    if d is None:
        print(json.dumps({"bench": "trace_replay", "skipped": "no ../shared/data/alibaba-gpu-v2023 (set CORRAL_SHARED)"}))
        return
    nodes, pods = d / "openb_node_list_gpu_node.csv", d / "openb_pod_list_default.csv"
    t0 = time.perf_counter()
    trace = load_trace(nodes, pods)
    load_s = time.perf_counter() - t0
    per_run: dict[str, float] = {}
    cpu_run: dict[str, float] = {}
    alloc130: dict[str, float] = {}
    for policy in POLICIES:
        c0 = time.process_time()
        run = replay(trace, policy, 42)
        cpu_run[policy] = round(time.process_time() - c0, 2)
        per_run[policy] = round(run.seconds, 2)
        alloc130[policy] = discretise(run, xs=(130,))["alloc_ratio"][130]
    out: dict[str, object] = {
        "bench": "trace_replay",
        "trace": trace.name,
        "pods_replayed": "≈10.8k (8152 + clones to 130 %)",
        "load_seconds": round(load_s, 2),
        "seconds_per_run": per_run,
        "max_seconds_per_run": max(per_run.values()),
        "cpu_seconds_per_run": cpu_run,
        "max_cpu_seconds_per_run": max(cpu_run.values()),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "alloc_ratio_130_seed42": alloc130,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }
    if os.environ.get("BENCH_TRACE_FULL") == "1":
        t1 = time.perf_counter()
        run_all(str(nodes), str(pods), list(POLICIES), list(range(42, 52)), jobs=2)
        out["full_table_seconds"] = round(time.perf_counter() - t1, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
