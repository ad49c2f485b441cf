"""The autoscaler turns the gateway feed's in-flight start times and service-time buckets, and the
controller's replica start-ups, into the predictive policy's sample inputs."""

from __future__ import annotations

from typing import Any

import pytest

from corral.autoscaling.autoscaler import Autoscaler, bucket_deltas
from corral.autoscaling.metrics import SERVICE_TIME_BUCKETS, service_time_bucket

KEY = "default/svc"
SERVICE = {"metadata": {"name": "svc", "namespace": "default"},
           "spec": {"minReplicas": 0, "maxReplicas": 5, "autoscaling": {"policy": "predictive"}}}


def buckets(**counts: int) -> list[int]:
    """Cumulative bucket counts with ``s<seconds>=count`` placed by service_time_bucket."""
    out = [0] * (len(SERVICE_TIME_BUCKETS) + 1)
    for name, count in counts.items():
        out[service_time_bucket(float(name[1:].replace("_", ".")))] += count
    return out


def feed(time: float, *, arrivals: int, completions: int, started: list[float], cumulative: list[int],
         service_seconds: float = 0.0) -> dict[str, Any]:
    return {"time": time, "services": {KEY: {
        "time": time, "inFlight": len(started), "queued": 0, "arrivals": arrivals, "completions": completions,
        "serviceSeconds": service_seconds, "concurrencyIntegral": 0.0, "activations": 0, "rejected": 0,
        "inFlightStarted": started, "serviceTimeBuckets": cumulative, "revisions": {}}}}


def test_sample_has_request_ages_and_per_tick_bucket_counts() -> None:
    scaler = Autoscaler(tick=2.0)
    first = feed(100.0, arrivals=3, completions=1, started=[99.5, 90.0], cumulative=buckets(s0_3=1))
    scaler.observe(first, {KEY: SERVICE}, {KEY: (1, 1, None)})
    window = scaler.window(KEY)
    assert window is not None and window.latest is not None
    assert window.latest.in_flight_ages == pytest.approx((0.5, 10.0))
    assert window.latest.service_time_counts == ()  # no previous snapshot: nothing to difference

    # Two more completions (0.3 s and 12 s), one request still running, one just dispatched
    # (its start a hair after the feed time on another reading of the clock: age 0, not negative).
    second = feed(102.0, arrivals=5, completions=3, started=[90.0, 102.001],
                  cumulative=buckets(s0_3=2, s12=1), service_seconds=12.3)
    scaler.observe(second, {KEY: SERVICE}, {KEY: (1, 1, None)})
    latest = window.latest
    assert latest.in_flight_ages == pytest.approx((12.0, 0.0))
    assert sum(latest.service_time_counts) == 2
    assert latest.service_time_counts[service_time_bucket(0.3)] == 1
    assert latest.service_time_counts[service_time_bucket(12.0)] == 1
    assert window.service_times.total == 2
    assert window.service_times.below(1.0) == pytest.approx(0.5)


def test_bucket_counts_are_empty_when_counters_go_backwards_or_are_missing() -> None:
    assert bucket_deltas(None, [1, 2]) == ()
    assert bucket_deltas([1, 2], None) == ()
    assert bucket_deltas([1, 2], [1, 2, 3]) == ()
    assert bucket_deltas([1, 2], [0, 5]) == ()  # the gateway restarted
    assert bucket_deltas([1, 2], [1, 2]) == ()  # nothing completed
    assert bucket_deltas([1, 2], [3, 2]) == (2, 0)

    scaler = Autoscaler(tick=2.0)
    scaler.observe(feed(10.0, arrivals=9, completions=9, started=[], cumulative=buckets(s1=9)),
                   {KEY: SERVICE}, {})
    # A restarted gateway: counters start again from zero.
    scaler.observe(feed(12.0, arrivals=1, completions=1, started=[], cumulative=buckets(s1=1)),
                   {KEY: SERVICE}, {})
    window = scaler.window(KEY)
    assert window is not None and window.latest is not None
    assert window.latest.service_time_counts == ()
    assert window.service_times.total == 0


def test_start_ups_reach_the_window_once_even_when_a_tick_is_skipped() -> None:
    scaler = Autoscaler(tick=2.0)
    empty = feed(10.0, arrivals=0, completions=0, started=[], cumulative=buckets())
    scaler.observe(empty, {KEY: SERVICE}, {KEY: (0, 1, None)}, {KEY: [(4.0, False)]})
    window = scaler.window(KEY)
    assert window is not None and window.latest is not None
    assert window.latest.ready_observations == ((4.0, False),)
    assert window.start_up() is None  # nothing became ready yet: no curve

    # The same feed time again: no sample is taken, the start-up waits for the next one.
    scaler.observe(empty, {KEY: SERVICE}, {KEY: (1, 1, 6.0)}, {KEY: [(6.0, True)]})
    assert window.latest.ready_observations == ((4.0, False),)
    scaler.observe(feed(12.0, arrivals=0, completions=0, started=[], cumulative=buckets()),
                   {KEY: SERVICE}, {KEY: (1, 1, 6.0)}, {})
    assert window.latest.ready_observations == ((6.0, True),)
    curve = window.start_up()
    assert curve is not None and curve.observations == 2
    assert curve.above(5.0) == 1.0 and curve.above(6.0) == 0.0
    scaler.observe(feed(14.0, arrivals=0, completions=0, started=[], cumulative=buckets()),
                   {KEY: SERVICE}, {KEY: (1, 1, 6.0)})
    assert window.latest.ready_observations == ()
