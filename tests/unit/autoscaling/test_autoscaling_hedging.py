"""Hedged cold starts: the censored start-up curve, the priced hedge count, and what they do to
the predictive policy's spares and to waits on a replayed trace."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from corral.api.v1alpha1.inferenceservice import Autoscaling
from corral.autoscaling.autoscaler import scaler_spec
from corral.autoscaling.metrics import MetricsWindow, Sample, Survival
from corral.autoscaling.policy import ScalerSpec, ScalerState, hedged_starts, predictive
from corral.autoscaling.replay import replay

# 40 % of start-ups find the model cached (2 s), 60 % load it (30 s): the shape of real model servers.
BIMODAL = [(2.0, True)] * 4 + [(30.0, True)] * 6
CONSTANT = [(30.0, True)] * 10
FAST = [(2.0, True)] * 10


def test_survival_is_kaplan_meier_with_removed_start_ups_censored() -> None:
    curve = Survival([(4.0, True), (2.0, True), (3.0, False), (10.0, True), (4.0, True)])
    # 5 at risk: one ready at 2 s → 4/5. One removed at 3 s (still starting: censored) → 3 at risk.
    # Two ready at 4 s → 4/5 · 1/3. The last ready at 10 s → 0.
    assert curve.times == [2.0, 4.0, 10.0]
    assert curve.values == pytest.approx([0.8, 0.8 / 3, 0.0])
    assert curve.above(3.9) == pytest.approx(0.8) and curve.above(4.0) == pytest.approx(0.8 / 3)
    assert curve.below(4.0) == pytest.approx(0.2)  # ready strictly within 4 s
    assert curve.mean_first(1) == pytest.approx(2 * 1 + 2 * 0.8 + 6 * 0.8 / 3)
    assert curve.mean_first(2) == pytest.approx(2 * 1 + 2 * 0.64 + 6 * (0.8 / 3) ** 2)
    # Dropping the censored start-up would make start-ups look faster than they are.
    assert Survival([(4.0, True), (2.0, True), (10.0, True), (4.0, True)]).above(4.0) < curve.above(4.0)


def test_hedge_count_is_priced_from_the_start_up_curve() -> None:
    spec = ScalerSpec(max_replicas=100, queue_wait=10.0, miss_cost=120.0, max_hedged_starts=4)
    # Bimodal: every extra start adds a 40 % chance of a 2 s start for little replica time.
    assert hedged_starts(Survival(BIMODAL), spec) == 4
    assert hedged_starts(Survival(BIMODAL), ScalerSpec(max_hedged_starts=2, miss_cost=120.0)) == 2
    # All start-ups alike: the first of several is no sooner than one, so one start.
    assert hedged_starts(Survival(CONSTANT), spec) == 1
    assert hedged_starts(Survival(FAST), spec) == 1
    assert hedged_starts(None, spec) == 1  # nothing measured yet
    assert hedged_starts(Survival(BIMODAL), ScalerSpec(miss_cost=0.0)) == 1  # a miss is free
    # A cheap miss does not pay for the extra replica time of even one more start.
    assert hedged_starts(Survival(BIMODAL), ScalerSpec(miss_cost=5.0)) == 1


@given(st.lists(st.tuples(st.floats(0.1, 120.0), st.booleans()), min_size=1, max_size=40),
       st.integers(1, 8), st.floats(0.0, 1000.0))
def test_hedge_count_stays_in_bounds_and_first_of_more_is_never_later(observations, most, cost) -> None:
    curve = Survival(observations)
    starts = hedged_starts(curve, ScalerSpec(max_hedged_starts=most, miss_cost=cost))
    assert 1 <= starts <= most
    means = [curve.mean_first(n) for n in range(1, 6)]
    assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(means))


def window(start_ups: list[tuple[float, bool]], *, in_flight: int, queued: int, every: int = 1) -> MetricsWindow:
    """Thirty 2-s ticks with one 60-s request every ``every`` ticks, ending with ``in_flight``/``queued``."""
    metrics = MetricsWindow(max_age=900)
    for i in range(30):
        last = i == 29
        arrivals = 1 if i % every == 0 else 0
        metrics.add(Sample(time=(i + 1) * 2.0, duration=2.0, concurrency=1.0, arrivals=arrivals,
                           completions=arrivals, service_seconds=60.0 * arrivals,
                           in_flight=in_flight if last else 0, queued=queued if last else 0,
                           ready_observations=tuple(start_ups) if i == 0 else ()))
    return metrics


def test_a_waiting_request_gets_hedged_starts_only_when_start_ups_vary() -> None:
    spec = ScalerSpec(max_replicas=100, miss_cost=120.0, max_hedged_starts=4)
    # Light traffic (one request a minute): few spares, so the hedge is what adds replicas.
    hedged = predictive(window(BIMODAL, in_flight=2, queued=1, every=30), 2, 2, spec, ScalerState())
    assert hedged.replicas >= 2 + 4
    plain = predictive(window(CONSTANT, in_flight=2, queued=1, every=30), 2, 2, spec, ScalerState())
    assert 3 <= plain.replicas < hedged.replicas
    capped = predictive(window(BIMODAL, in_flight=2, queued=1, every=30), 2, 2,
                        ScalerSpec(max_replicas=5, miss_cost=120.0), ScalerState())
    assert capped.replicas == 5  # maxReplicas still bounds it


def test_fast_start_ups_make_warm_spares_worth_less() -> None:
    # A request that finds no spare is only late if every start-up made for it misses the wait.
    spec = ScalerSpec(max_replicas=100, miss_cost=120.0)
    slow = predictive(window(CONSTANT, in_flight=1, queued=0), 1, 1, spec, ScalerState()).replicas
    mixed = predictive(window(BIMODAL, in_flight=1, queued=0), 1, 1, spec, ScalerState()).replicas
    fast = predictive(window(FAST, in_flight=1, queued=0), 1, 1, spec, ScalerState()).replicas
    assert slow > mixed >= fast
    assert fast == 1  # start-ups beat the queue wait: no spare is worth its replica time


def test_hedging_buys_more_attainment_for_fewer_replica_hours_when_cold_starts_are_bimodal() -> None:
    rng = random.Random(7)
    arrivals = sorted(rng.uniform(0, 12 * 3600) for _ in range(1000))
    exec_times = [rng.uniform(5, 40) for _ in arrivals]

    def run(most: int, miss_cost: float) -> tuple[float, float]:
        draws = random.Random(11)
        result = replay(arrivals, exec_times, lambda: draws.choice([2.0, 2.5, 30.0, 35.0, 40.0]), predictive,
                        ScalerSpec(max_replicas=100, miss_cost=miss_cost, max_hedged_starts=most))
        assert len(result.waits) == len(arrivals)
        return result.slo_attainment, result.replica_hours

    # Compared as trade-off points: hedged at a higher miss price beats unhedged on both counts.
    plain_attained, plain_hours = run(1, 120.0)
    hedged_attained, hedged_hours = run(4, 300.0)
    assert hedged_attained > plain_attained
    assert hedged_hours < 0.95 * plain_hours


def test_max_hedged_starts_is_an_api_field_with_a_clear_error() -> None:
    assert Autoscaling.model_validate({}).max_hedged_starts == 4
    with pytest.raises(ValidationError, match="maxHedgedStarts"):
        Autoscaling.model_validate({"maxHedgedStarts": 0})
    service = {"spec": {"minReplicas": 0, "maxReplicas": 3, "autoscaling": {"maxHedgedStarts": 2}}}
    _, spec = scaler_spec(service)
    assert spec.max_hedged_starts == 2 and spec.miss_cost == Autoscaling.model_validate({}).miss_cost_seconds
