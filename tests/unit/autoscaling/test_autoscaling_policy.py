"""Autoscaling policies: KPA, HPA and corral's predictive policy as pure functions."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from corral.autoscaling.metrics import MetricsWindow, Sample
from corral.autoscaling.policy import (
    Decision,
    ScalerSpec,
    ScalerState,
    decide,
    hpa,
    kpa,
    poisson_quantile,
    poisson_tail,
    predictive,
    warm_spares,
)
from corral.autoscaling.replay import peak_concurrency, replay


def window_with(values: list[float], tick: float = 2.0, arrivals: int = 0, in_flight: int = 0) -> MetricsWindow:
    window = MetricsWindow(max_age=600)
    for i, value in enumerate(values):
        last = i == len(values) - 1
        window.add(Sample(time=(i + 1) * tick, duration=tick, concurrency=value, arrivals=arrivals,
                          in_flight=in_flight if last else 0))
    return window


def run(policy, window: MetricsWindow, ready: int, spec: ScalerSpec, state: ScalerState | None = None) -> Decision:
    return policy(window, ready, ready, spec, state or ScalerState())


def test_window_aggregates() -> None:
    window = MetricsWindow(max_age=10)
    for i in range(10):
        window.add(Sample(time=float(i + 1), duration=1.0, concurrency=float(i), arrivals=1, completions=1,
                          service_seconds=2.0))
    assert window.mean_concurrency(4) == pytest.approx((6 + 7 + 8 + 9) / 4)
    assert window.arrival_rate(5) == pytest.approx(1.0)
    assert window.mean_service_time(100) == pytest.approx(2.0)
    window.add(Sample(time=30.0, duration=1.0, concurrency=0.0))
    assert len(window) == 1  # older samples aged out
    assert window.idle_for() == pytest.approx(20.0)
    assert window.recent_rate() == 0.0  # the arrivals aged out with their samples
    with pytest.raises(ValueError):
        window.add(Sample(time=1.0, duration=1.0, concurrency=0.0))


def test_recent_rate_is_the_burst_rate_then_decays_like_one_over_quiet_time() -> None:
    window = burst_then_quiet(6, 0)
    assert window.recent_rate() == pytest.approx(6 / 2.0)
    assert window.recent_rate(min_seconds=10.0) == pytest.approx(6 / 10.0)
    assert window.recent_rate(lead=20.0) == pytest.approx(6 / 22.0)
    later = burst_then_quiet(6, 98)
    assert later.recent_rate() == pytest.approx(6 / 100.0)


def test_kpa_stable_sizing_uses_target_utilisation() -> None:
    spec = ScalerSpec(max_replicas=100, target=10, target_utilization=0.7)
    decision = run(kpa, window_with([35.0] * 30), ready=5, spec=spec)
    assert decision.replicas == math.ceil(35 / 7)
    assert not decision.panic


def test_kpa_panics_on_burst_and_does_not_scale_down_while_panicking() -> None:
    spec = ScalerSpec(max_replicas=100, target=1, target_utilization=1.0)
    calm = [1.0] * 27
    burst = run(kpa, window_with([*calm, 8.0, 8.0, 8.0]), ready=1, spec=spec)
    assert burst.panic
    assert burst.replicas == 8  # the panic window (6 s) follows the burst at once
    # Right after the burst the stable average is low, but panic holds the count.
    after = window_with([*calm, 8.0, 8.0, 8.0, 1.0, 1.0, 1.0, 1.0])
    held = kpa(after, 8, 8, spec, burst.state)
    assert held.replicas == 8
    assert held.panic


def test_kpa_rate_limits_scale_down() -> None:
    spec = ScalerSpec(max_replicas=100, target=1, target_utilization=1.0, max_scale_down_rate=2.0)
    decision = run(kpa, window_with([1.0] * 30), ready=20, spec=spec)
    assert decision.replicas == 10


def test_kpa_scale_to_zero_waits_for_grace() -> None:
    spec = ScalerSpec(max_replicas=10, scale_to_zero_grace=30)
    window = window_with([0.0] * 40)
    first = kpa(window, 1, 1, spec, state=ScalerState())
    assert first.replicas == 1
    assert first.reason == "ScaleToZeroGrace"
    later = window_with([0.0] * 60)
    state = ScalerState(zero_since=later.now - 31)
    final = kpa(later, 1, 1, spec, state)
    assert final.replicas == 0
    assert final.reason == "ScaleToZero"


def test_kpa_respects_min_replicas() -> None:
    spec = ScalerSpec(min_replicas=2, max_replicas=10)
    decision = run(kpa, window_with([0.0] * 60), ready=2, spec=spec, state=ScalerState(zero_since=0.0))
    assert decision.replicas == 2


def test_hpa_ratio_and_tolerance() -> None:
    spec = ScalerSpec(max_replicas=100, target=1, target_utilization=1.0)
    assert run(hpa, window_with([8.0] * 30), ready=4, spec=spec).replicas == 8
    assert run(hpa, window_with([4.2] * 30), ready=4, spec=spec).replicas == 4  # within 10 %


def test_predictive_serves_every_request_in_the_system_at_once() -> None:
    spec = ScalerSpec(max_replicas=100, target=1)
    window = window_with([0.5] * 30, in_flight=7)
    decision = run(predictive, window, ready=2, spec=spec)
    assert decision.replicas >= 7


def timed_window(arrivals: int, completions: int, service: float, in_flight: int, n: int = 30) -> MetricsWindow:
    window = MetricsWindow(max_age=600)
    for i in range(n):
        window.add(Sample(time=(i + 1) * 2.0, duration=2.0, concurrency=1.0, arrivals=arrivals,
                          completions=completions, service_seconds=service * completions,
                          in_flight=in_flight if i == n - 1 else 0))
    return window


def test_predictive_prices_warm_spares() -> None:
    # 0.5 req/s of 60 s requests, one in flight: arrivals within a cold start find every replica busy.
    busy = timed_window(arrivals=1, completions=1, service=60.0, in_flight=1)
    counts = [run(predictive, busy, ready=1, spec=ScalerSpec(max_replicas=100, cold_start=20, miss_cost=cost)).replicas
              for cost in (0.0, 5.0, 40.0, 400.0)]
    assert counts[0] == 1  # spares worth nothing: only the request in the system gets a replica
    assert counts[1] > 1
    assert counts == sorted(counts)  # a dearer miss never buys fewer spares
    assert counts[-1] > counts[1]


def test_predictive_short_requests_need_no_spare() -> None:
    # The same rate of 10 ms requests: one replica serves them one after another within the queue wait.
    short = timed_window(arrivals=1, completions=1, service=0.01, in_flight=1)
    assert run(predictive, short, ready=1, spec=ScalerSpec(max_replicas=100, cold_start=20)).replicas == 1
    quiet = timed_window(arrivals=0, completions=0, service=0.0, in_flight=1)
    assert run(predictive, quiet, ready=1, spec=ScalerSpec(max_replicas=100)).replicas == 1


def test_warm_spares_fall_as_busy_replicas_may_free_up() -> None:
    spec = ScalerSpec(max_replicas=100, queue_wait=10.0, miss_cost=100.0)
    spares = [warm_spares(0.2, busy, 30.0, 20.0, spec) for busy in range(8)]
    assert spares == sorted(spares, reverse=True)
    assert spares[0] > spares[-1]
    assert warm_spares(0.0, 0, 30.0, 20.0, spec) == 0


def burst_then_quiet(burst: int, quiet_seconds: float) -> MetricsWindow:
    window = MetricsWindow(max_age=900)
    window.add(Sample(time=2.0, duration=2.0, concurrency=1.0, arrivals=burst, completions=burst,
                      service_seconds=5.0 * burst))
    t = 2.0
    while t < 2.0 + quiet_seconds:
        t += 2.0
        window.add(Sample(time=t, duration=2.0, concurrency=0.0))
    return window


def test_predictive_keep_alive_decays_with_quiet_time_and_grows_with_the_burst() -> None:
    spec = ScalerSpec(max_replicas=100, cold_start=20, miss_cost=40.0, scale_to_zero_grace=30.0)

    def kept(burst: int, quiet: float) -> int:  # how many of plenty of warm replicas it keeps (no rate limit)
        return predictive(burst_then_quiet(burst, quiet), 0, 100, spec, ScalerState()).replicas

    counts = [kept(6, quiet) for quiet in (10, 60, 150, 400)]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] >= 2
    final = run(predictive, burst_then_quiet(6, 400), ready=1, spec=spec)
    assert final.replicas == 0
    assert final.reason == "ScaleToZero"
    # A bigger burst keeps replicas warm for longer.
    assert kept(20, 150) > kept(6, 150)
    # Within the grace period after the last request, the last replica stays.
    held = run(predictive, burst_then_quiet(1, 20), ready=1, spec=replace(spec, miss_cost=0.0))
    assert (held.replicas, held.reason) == (1, "ScaleToZeroGrace")


def test_predictive_sees_the_rate_one_cold_start_ahead() -> None:
    # Replicas that take long to start are worth less right after a burst: by the time they are
    # ready the burst has (probably) passed, so fewer are started; fast starts may follow the burst.
    window = burst_then_quiet(8, 4)
    slow = predictive(window, 0, 0, ScalerSpec(max_replicas=100, cold_start=60.0), ScalerState()).replicas
    fast = predictive(window, 0, 0, ScalerSpec(max_replicas=100, cold_start=5.0), ScalerState()).replicas
    assert 1 <= slow < fast


def test_spec_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="maxReplicas"):
        ScalerSpec(min_replicas=3, max_replicas=2)
    with pytest.raises(ValueError, match="target"):
        ScalerSpec(target=0)
    with pytest.raises(ValueError, match="unknown autoscaling policy"):
        decide("nope", window_with([0.0]), 0, 0, ScalerSpec(), state=ScalerState())  # type: ignore[arg-type]


loads = st.lists(st.floats(min_value=0, max_value=200, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    values=loads,
    ready=st.integers(min_value=0, max_value=50),
    policy=st.sampled_from(["kpa", "hpa", "predictive"]),
    min_replicas=st.integers(min_value=0, max_value=3),
    max_replicas=st.integers(min_value=3, max_value=40),
    arrivals=st.integers(min_value=0, max_value=20),
    in_flight=st.integers(min_value=0, max_value=80),
)
def test_every_policy_stays_within_bounds(values, ready, policy, min_replicas, max_replicas, arrivals, in_flight) -> None:
    spec = ScalerSpec(min_replicas=min_replicas, max_replicas=max_replicas, target=2.0)
    window = window_with(values, arrivals=arrivals, in_flight=in_flight)
    decision = decide(policy, window, ready, ready, spec, state=ScalerState())
    assert min_replicas <= decision.replicas <= max_replicas
    if in_flight > 0 or any(v > 0 for v in values[-3:]):
        # Traffic in the last few seconds never scales a service to zero.
        assert decision.replicas >= 1


@settings(max_examples=100, deadline=None)
@given(base=loads, extra=st.floats(min_value=0, max_value=100, allow_nan=False),
       policy=st.sampled_from(["kpa", "predictive"]))
def test_more_load_never_means_fewer_replicas(base, extra, policy) -> None:
    spec = ScalerSpec(max_replicas=1000, target=1.0)
    low = decide(policy, window_with(base, in_flight=round(base[-1])), 5, 5, spec, state=ScalerState())
    more = [v + extra for v in base]
    high = decide(policy, window_with(more, in_flight=round(more[-1])), 5, 5, spec, state=ScalerState())
    assert high.replicas >= low.replicas


@settings(max_examples=100, deadline=None)
@given(values=loads, ready=st.integers(min_value=1, max_value=200))
@example(values=[0.0], ready=4)  # idle with 4 ready: the grace period holds 2 (rate 2), not 1
def test_kpa_scale_rates_hold(values, ready) -> None:
    spec = ScalerSpec(max_replicas=100_000, target=1.0, max_scale_up_rate=3.0, max_scale_down_rate=2.0)
    decision = decide("kpa", window_with(values), ready, ready, spec, state=ScalerState())
    if decision.replicas > 0:
        assert decision.replicas <= math.ceil(3.0 * ready)
        assert decision.replicas >= math.floor(ready / 2.0)


@settings(max_examples=60, deadline=None)
@given(mean=st.floats(min_value=0, max_value=50, allow_nan=False), k=st.integers(min_value=0, max_value=60))
def test_poisson_tail_is_one_minus_the_cdf(mean, k) -> None:
    below = sum(math.exp(-mean) * mean**i / math.factorial(i) for i in range(k))
    assert poisson_tail(mean, k) == pytest.approx(max(0.0, 1 - below), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(low=st.floats(min_value=0, max_value=5, allow_nan=False), extra=st.floats(min_value=0, max_value=5),
       busy=st.integers(min_value=0, max_value=30), cost=st.floats(min_value=0, max_value=1000))
def test_warm_spares_never_fall_with_a_higher_rate(low, extra, busy, cost) -> None:
    spec = ScalerSpec(max_replicas=100, miss_cost=cost)
    assert warm_spares(low + extra, busy, 25.0, 20.0, spec) >= warm_spares(low, busy, 25.0, 20.0, spec)


@settings(max_examples=60, deadline=None)
@given(mean=st.floats(min_value=0, max_value=50, allow_nan=False), level=st.floats(min_value=0.01, max_value=0.99))
def test_poisson_quantile_is_the_smallest_k(mean, level) -> None:
    k = poisson_quantile(mean, level)
    cdf = sum(math.exp(-mean) * mean**i / math.factorial(i) for i in range(k + 1))
    assert cdf >= level - 1e-9
    if k > 0:
        assert cdf - math.exp(-mean) * mean**k / math.factorial(k) < level


def test_replay_fixed_pool_sized_for_peak_never_waits() -> None:
    rng = random.Random(3)
    arrivals = sorted(rng.uniform(0, 3600) for _ in range(300))
    exec_times = [rng.uniform(1, 60) for _ in arrivals]
    peak = peak_concurrency(arrivals, exec_times)
    result = replay(arrivals, exec_times, lambda: 20.0, None, ScalerSpec(max_replicas=1000), fixed_replicas=peak)
    assert result.slo_attainment == 1.0
    assert max(result.waits) == 0.0
    assert result.replica_hours == pytest.approx(peak * result.span_seconds / 3600)


@pytest.mark.parametrize("policy", [kpa, predictive, hpa])
def test_replay_with_autoscaling_serves_every_request_and_bills_less_than_fixed(policy) -> None:
    rng = random.Random(5)
    arrivals = sorted(rng.uniform(0, 7200) for _ in range(400))
    exec_times = [rng.uniform(1, 30) for _ in arrivals]
    peak = peak_concurrency(arrivals, exec_times)
    fixed = replay(arrivals, exec_times, lambda: 5.0, None, ScalerSpec(max_replicas=1000), fixed_replicas=peak)
    result = replay(arrivals, exec_times, lambda: 5.0, policy, ScalerSpec(max_replicas=1000))
    assert len(result.waits) == len(arrivals)
    assert result.replica_hours < fixed.replica_hours
    assert result.slo_attainment > 0.5
    # With 5 s cold starts nobody waits much longer than a cold start plus a tick or two.
    assert result.wait_percentile(50) < 10
