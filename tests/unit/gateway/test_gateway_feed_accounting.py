"""The gateway's per-service accounting of requests in flight and service-time buckets (on a FakeClock)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.autoscaling.metrics import service_time_bucket
from corral.gateway.metrics import GatewayMetrics
from corral.testing import FakeClock


@settings(max_examples=200, deadline=None)
@given(served=st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=8),
       fast=st.booleans())
def test_every_completion_lands_in_service_time_bucket_and_leaves_nothing_in_flight(served: list[float],
                                                                                   fast: bool) -> None:
    clock = FakeClock()
    metrics = GatewayMetrics(clock)
    stats = metrics.stats("svc")
    starts: list[float] = []
    for _ in served:  # all start together (same start time: counted, not collapsed)
        if fast:
            metrics.arrive_and_dispatch(stats, clock.monotonic())
            starts.append(clock.monotonic())
        else:
            metrics.arrive("svc")
            starts.append(metrics.dispatch("svc"))
    snap = stats.snapshot(clock.monotonic())
    assert snap["inFlightStarted"] == starts
    expected = [0] * len(stats.service_time_buckets)
    elapsed = 0.0
    for seconds, started in sorted(zip(served, starts, strict=True)):
        clock.advance(seconds - elapsed)
        elapsed = seconds
        now = clock.monotonic()
        if fast:
            metrics.complete(stats, "r1", 200, started, started, now)
        else:
            metrics.finish("svc", "r1", 200, started, started)
        expected[service_time_bucket(now - started)] += 1
    snap = stats.snapshot(clock.monotonic())
    assert snap["serviceTimeBuckets"] == expected
    assert snap["inFlightStarted"] == [] and stats.started == {} and snap["inFlight"] == 0


def test_in_flight_start_times_follow_dispatch_and_completion() -> None:
    clock = FakeClock()
    metrics = GatewayMetrics(clock)
    stats = metrics.arrive("svc")  # held: queued, not in flight
    assert stats.snapshot(clock.monotonic())["inFlightStarted"] == []
    clock.advance(3.0)
    started = metrics.dispatch("svc")
    assert started == 3.0
    clock.advance(1.0)
    metrics.arrive_and_dispatch(stats, clock.monotonic())
    snap = stats.snapshot(clock.monotonic())
    assert snap["inFlightStarted"] == [3.0, 4.0] and snap["queued"] == 0
    clock.advance(2.0)
    metrics.finish("svc", "r1", 200, started, 0.0)
    assert stats.snapshot(clock.monotonic())["inFlightStarted"] == [4.0]
    assert stats.service_time_buckets[service_time_bucket(3.0)] == 1
