"""The autoscaler carries the controller's replica start-ups into the predictive policy's samples
(the curve that prices hedged cold starts)."""

from __future__ import annotations

from typing import Any

from corral.autoscaling.autoscaler import Autoscaler

KEY = "default/svc"
SERVICE = {"metadata": {"name": "svc", "namespace": "default"},
           "spec": {"minReplicas": 0, "maxReplicas": 5, "autoscaling": {"policy": "predictive"}}}


def feed(time: float) -> dict[str, Any]:
    return {"time": time, "services": {KEY: {
        "time": time, "inFlight": 0, "queued": 0, "arrivals": 0, "completions": 0,
        "serviceSeconds": 0.0, "concurrencyIntegral": 0.0, "activations": 0, "rejected": 0, "revisions": {}}}}


def test_start_ups_reach_the_window_once_even_when_a_tick_is_skipped() -> None:
    scaler = Autoscaler(tick=2.0)
    empty = feed(10.0)
    scaler.observe(empty, {KEY: SERVICE}, {KEY: (0, 1, None)}, {KEY: [(4.0, False)]})
    window = scaler.window(KEY)
    assert window is not None and window.latest is not None
    assert window.latest.ready_observations == ((4.0, False),)
    assert window.start_up() is None  # nothing became ready yet: no curve

    # The same feed time again: no sample is taken, the start-up waits for the next one.
    scaler.observe(empty, {KEY: SERVICE}, {KEY: (1, 1, 6.0)}, {KEY: [(6.0, True)]})
    assert window.latest.ready_observations == ((4.0, False),)
    scaler.observe(feed(12.0),
                   {KEY: SERVICE}, {KEY: (1, 1, 6.0)}, {})
    assert window.latest.ready_observations == ((6.0, True),)
    curve = window.start_up()
    assert curve is not None and curve.observations == 2
    assert curve.above(5.0) == 1.0 and curve.above(6.0) == 0.0
    scaler.observe(feed(14.0),
                   {KEY: SERVICE}, {KEY: (1, 1, 6.0)})
    assert window.latest.ready_observations == ()
