from corral.controllers.inferenceservice.controller import stats_changed, traffic_stats


def snapshot(time: float, completions: int, busy: float, in_flight: int = 0) -> dict:
    return {"time": time, "completions": completions, "serviceSeconds": busy, "inFlight": in_flight}


def test_rate_and_mean_latency_between_two_snapshots() -> None:
    stats = traffic_stats(snapshot(10.0, 100, 5.0), snapshot(12.0, 140, 7.0, in_flight=3))
    assert stats == {"requestsPerSecond": 20.0, "inFlight": 3, "windowSeconds": 2.0, "meanLatencyMs": 50.0}


def test_idle_window_has_no_latency() -> None:
    stats = traffic_stats(snapshot(10.0, 100, 5.0), snapshot(12.0, 100, 5.0))
    assert stats["requestsPerSecond"] == 0.0 and "meanLatencyMs" not in stats


def test_only_meaningful_changes_cause_a_status_write() -> None:
    assert stats_changed(None, {"requestsPerSecond": 0.0})
    assert stats_changed({"requestsPerSecond": 0.0}, {"requestsPerSecond": 1.0})
    assert stats_changed({"requestsPerSecond": 5.0}, {"requestsPerSecond": 0.0})
    assert not stats_changed({"requestsPerSecond": 10.0}, {"requestsPerSecond": 10.5})
    assert stats_changed({"requestsPerSecond": 10.0}, {"requestsPerSecond": 12.0})
