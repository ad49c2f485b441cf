"""Autoscaling replay: corral's policy vs Knative's default KPA vs a fixed peak-sized pool.

Replays the real arrivals and execution times of the GenTD26 trace
(``../shared/data/alibaba-genai-2026/lora_request_trace.csv``, 26,823 requests over
23 days) on a virtual clock, one request per replica at a time, cold starts drawn
(seeded) from the trace's base-model load latencies
(``basemodel_update_latency_anon``). Prints one JSON line:
``slo_attainment`` (share of requests that wait < 10 s before starting) and
``replica_hours`` per policy, for the whole trace and for its two halves
(by request count): corral's one price, ``miss_cost``, was chosen on the first
half only, so the second half is held out. Also corral's savings against KPA.

corral hedges cold starts (several replicas started for a request that waits
with no replica free, the first ready serves it): that pays because the trace's
load latencies are bimodal (a third load in 1.5–3 s) and the replay draws each
start-up independently. ``constant_cold_start`` replays KPA and corral again
with every cold start equal to the median, where hedging cannot help — the
robustness check that the policy does not depend on the draw.

Usage: ``python bench/autoscaling_replay.py [--requests N] [--seed S] [--frontier]``
(``--frontier`` adds KPA at other utilisations, corral at other miss costs and
corral without hedging, to compare the attainment/replica-hours trade-off curves
rather than single points; about 3 minutes more on one core).
The shared data is found via ``$CORRAL_SHARED`` or by walking up to a directory
that has ``shared/``; without it the benchmark exits 0 with ``{"skipped": ...}``
(exit 1 under ``CI=true``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import sys
import tarfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from corral.autoscaling.policy import ScalerSpec, kpa, predictive
from corral.autoscaling.replay import PolicyFn, ReplayResult, peak_concurrency, replay

TRACE = "data/alibaba-genai-2026/lora_request_trace.csv"
COLD = "data/alibaba-genai-2026/basemodel_update_latency_anon.tar.gz"


def find_shared() -> Path | None:
    env = os.environ.get("CORRAL_SHARED")
    if env:
        return Path(env) if Path(env, TRACE).exists() else None
    here = Path(__file__).resolve().parent
    for directory in (here, *here.parents):
        candidate = directory / "shared"
        if (candidate / TRACE).exists():
            return candidate
    return None


def load_trace(shared: Path) -> tuple[list[float], list[float]]:
    arrivals: list[float] = []
    exec_times: list[float] = []
    with open(shared / TRACE, newline="") as handle:
        for row in csv.DictReader(handle):
            arrivals.append(datetime.fromisoformat(row["gmt_create"]).timestamp())
            exec_times.append(float(row["exec_time_seconds"] or 0.0))
    return arrivals, exec_times


def load_cold_starts(shared: Path) -> list[float]:
    with tarfile.open(shared / COLD) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith(".csv"))
        extracted = archive.extractfile(member)
        if extracted is None:
            raise RuntimeError(f"{COLD}: {member.name} is not a file")
        reader = csv.DictReader(io.TextIOWrapper(extracted))
        return [float(row["value"]) / 1000.0 for row in reader if row["value"] not in ("", "NULL", "None")]


def summarize(result: ReplayResult, half: int) -> dict[str, object]:
    first = result.part(True, half)
    second = result.part(False, half)
    return {
        "slo_attainment": round(result.slo_attainment, 4),
        "replica_hours": round(result.replica_hours, 1),
        "first_half": [round(first[0], 4), round(first[1], 1)],
        "second_half": [round(second[0], 4), round(second[1], 1)],
        "wait_p99_s": round(result.wait_percentile(99), 1),
        "replicas_created": result.replicas_created,
        "starting_replica_hours": round(result.starting_seconds / 3600.0, 1),
        "peak_replicas": result.peak_replicas,
    }


def knative_spec(big: int, utilization: float = 0.7) -> ScalerSpec:
    # Knative defaults: containerConcurrency 1 → target 1 at 70 % utilisation,
    # stable 60 s, panic 6 s at 200 %, scale-to-zero grace 30 s, rates 1000× up / 2× down.
    return ScalerSpec(max_replicas=big, target=1.0, target_utilization=utilization, stable_window=60.0,
                      panic_window=6.0, panic_threshold=2.0, scale_to_zero_grace=30.0)


def corral_spec(big: int, miss_cost: float | None = None, hedge: int | None = None) -> ScalerSpec:
    # corral's defaults (one request per replica; a request may wait 10 s, the SLO).
    spec = ScalerSpec(max_replicas=big, target=1.0, queue_wait=10.0)
    if miss_cost is not None:
        spec = replace(spec, miss_cost=miss_cost)
    return spec if hedge is None else replace(spec, max_hedged_starts=hedge)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=0, help="replay only the first N requests (0 = all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frontier", action="store_true",
                        help="also run KPA at 50/60/80/100 %% utilisation, corral at miss costs 60/90/160/240 s "
                             "and corral without hedging at 30/45/90 s")
    args = parser.parse_args()
    shared = find_shared()
    if shared is None:
        reason = f"shared data not found ({TRACE}); set CORRAL_SHARED or run from a checkout beside shared/"
        print(json.dumps({"bench": "autoscaling_replay", "skipped": reason}))
        return 1 if os.environ.get("CI") == "true" else 0
    arrivals, exec_times = load_trace(shared)
    if args.requests:
        arrivals, exec_times = arrivals[: args.requests], exec_times[: args.requests]
    cold_starts = load_cold_starts(shared)
    half = len(arrivals) // 2
    split = sorted(arrivals)[half]

    median_cold_start = sorted(cold_starts)[len(cold_starts) // 2]

    def run(policy: PolicyFn | None, spec: ScalerSpec, fixed: int | None = None, constant: bool = False) -> ReplayResult:
        rng = random.Random(args.seed)  # every policy sees the same cold-start draws in order
        draw = (lambda: median_cold_start) if constant else (lambda: rng.choice(cold_starts))
        return replay(arrivals, exec_times, draw, policy, spec, fixed_replicas=fixed, split=split)

    started = time.perf_counter()
    peak = peak_concurrency(arrivals, exec_times)
    big = max(1000, peak * 4)
    out: dict[str, object] = {"bench": "autoscaling_replay", "requests": len(arrivals), "seed": args.seed}
    fixed = run(None, ScalerSpec(max_replicas=big), fixed=peak)
    knative = run(kpa, knative_spec(big))
    corral = run(predictive, corral_spec(big))
    out["fixed_peak"] = {**summarize(fixed, half), "replicas": peak}
    out["knative_kpa"] = summarize(knative, half)
    out["corral"] = {**summarize(corral, half), "miss_cost_s": corral_spec(big).miss_cost,
                     "max_hedged_starts": corral_spec(big).max_hedged_starts}
    out["corral_replica_hours_saving_vs_kpa"] = round(1 - corral.replica_hours / knative.replica_hours, 4)
    out["corral_attainment_minus_kpa"] = round(corral.slo_attainment - knative.slo_attainment, 4)
    second_c, second_k = corral.part(False, half), knative.part(False, half)
    out["held_out_second_half"] = {
        "replica_hours_saving_vs_kpa": round(1 - second_c[1] / second_k[1], 4),
        "attainment_minus_kpa": round(second_c[0] - second_k[0], 4),
    }
    # Constant cold starts: one KPA and one corral point near each other's attainment, each way.
    out["constant_cold_start"] = {
        "cold_start_s": round(median_cold_start, 1),
        "knative_kpa": summarize(run(kpa, knative_spec(big), constant=True), half),
        "corral_miss_cost_45": summarize(run(predictive, corral_spec(big, 45.0), constant=True), half),
        "knative_kpa_50": summarize(run(kpa, knative_spec(big, 0.5), constant=True), half),
        "corral": summarize(run(predictive, corral_spec(big), constant=True), half),
    }
    if args.frontier:
        frontier: dict[str, list[dict[str, object]]] = {"knative_kpa": [], "corral": [], "corral_no_hedging": []}
        for utilization in (0.5, 0.6, 0.8, 1.0):
            result = run(kpa, knative_spec(big, utilization))
            frontier["knative_kpa"].append({"target_utilization": utilization, **summarize(result, half)})
        for miss_cost in (60.0, 90.0, 160.0, 240.0):
            result = run(predictive, corral_spec(big, miss_cost))
            frontier["corral"].append({"miss_cost_s": miss_cost, **summarize(result, half)})
        for miss_cost in (30.0, 45.0, 90.0):
            result = run(predictive, corral_spec(big, miss_cost, hedge=1))
            frontier["corral_no_hedging"].append({"miss_cost_s": miss_cost, **summarize(result, half)})
        out["frontier"] = frontier
    out["cold_start_median_s"] = round(median_cold_start, 1)
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
