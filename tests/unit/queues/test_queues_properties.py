"""Invariants of the admission policy under random queues, workloads, completions and cycles."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.scheduler.quota import ADMIT, PREEMPT, Mode, QueueConfig, QuotaBook, Workload, plan_cycle
from corral.scheduler.quota.preemption import within_nominal

from .helpers import GPU, queue, wl

STATS: dict[str, int] = {}
queue_params = st.fixed_dictionaries({
    "nominal": st.integers(0, 8) | st.integers(4, 8),
    "borrowing": st.one_of(st.none(), st.integers(0, 6)),
    "lending": st.one_of(st.none(), st.integers(0, 8)),
    "within": st.sampled_from(["Never", "LowerPriority", "LowerOrNewerEqualPriority"]),
    "reclaim": st.sampled_from(["Never", "LowerPriority", "Any"]),
    "borrow_policy": st.sampled_from(["Never", "LowerPriority"]),
    "strategy": st.sampled_from(["BestEffortFIFO", "StrictFIFO"]),
    "weight": st.sampled_from([0.5, 1.0, 2.0]),
    "cohort": st.sampled_from(["c", "c", None]),
})
def make_configs(params: list[dict[str, Any]]) -> list[QueueConfig]:
    configs = []
    for index, raw in enumerate(params):
        p = dict(raw)
        if p["lending"] is not None:
            p["lending"] = min(p["lending"], p["nominal"])
        configs.append(queue(f"q{index}", **p))
    return configs


submit = st.tuples(st.just("submit"), st.integers(0, 3), st.integers(1, 4), st.integers(1, 2), st.integers(0, 3))
operation = st.one_of(
    submit, submit, submit,
    st.tuples(st.just("finish"), st.integers(0, 1000)),
    st.tuples(st.just("cycle"), st.booleans()),
    st.tuples(st.just("cycle"), st.booleans()),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(queue_params, min_size=1, max_size=4), st.lists(operation, min_size=10, max_size=60))
def test_invariants_hold_through_any_sequence(params: list[dict[str, Any]], ops: list[tuple[Any, ...]]) -> None:
    configs = make_configs(params)
    book = QuotaBook.build(configs)
    pending: dict[str, Workload] = {}
    evicting: set[str] = set()
    nominated: dict[str, list[str]] = {}
    clock = 0.0
    for op in ops:
        clock += 1.0
        if op[0] == "submit":
            _, q, amount, count, priority = op
            key = f"ns/w{len(pending) + len(book.admitted)}-{clock}"
            pending[key] = wl(key, f"q{q % len(configs)}", amount, count=count, priority=priority, created=clock)
        elif op[0] == "finish" and book.admitted:
            keys = sorted(book.admitted)
            key = keys[op[1] % len(keys)]
            book.remove(key)
            evicting.discard(key)
        elif op[0] == "cycle":
            before = book.copy()
            result = plan_cycle(book, list(pending.values()), now=clock, evicting=evicting, nominated=nominated)
            for decision in result.decisions:
                workload = decision.workload
                if decision.kind == ADMIT:
                    # a gang is admitted whole: its booked usage is its whole request
                    assert decision.assignment is not None
                    assert sum(book.admitted[workload.key].usage.values()) == sum(workload.total().values())
                    del pending[workload.key]
                    STATS["admit"] = STATS.get("admit", 0) + 1
                    nominated.pop(workload.key, None)
                elif decision.kind == PREEMPT:
                    assert decision.assignment is not None
                    usage = dict(decision.assignment.usage)
                    for victim in decision.victims:
                        assert victim.key not in evicting  # never preempted twice
                        if victim.priority > workload.priority or (
                                victim.priority == workload.priority and victim.queue != workload.queue):
                            # only when taking back the preemptor's own lent quota
                            assert victim.queue != workload.queue
                            assert within_nominal(before, workload.queue, usage)
                        if victim.queue == workload.queue:
                            assert victim.priority <= workload.priority
                    evicting.update(v.key for v in decision.victims)
                    STATS["preempt"] = STATS.get("preempt", 0) + 1
                    nominated[workload.key] = [v.key for v in decision.victims]
            if op[1]:  # evicted workloads end
                for key in list(evicting):
                    book.remove(key)
                evicting.clear()
        book.check_invariants()
        # a queue only ever lends what it may: others never eat into nominal - lendingLimit
        for config in configs:
            for fr in config.flavor_resources():
                quota = config.quota(*fr)
                assert book.available(config.name, fr) >= min(quota.guaranteed - book.used(config.name, fr), 0) + 0
                if book.used(config.name, fr) < quota.guaranteed:
                    room = quota.guaranteed - book.used(config.name, fr)
                    assert book.fits(config.name, {fr: room}).mode == Mode.FIT


@settings(max_examples=6, deadline=None)
@given(st.sampled_from([(1.0, 1.0), (1.0, 2.0), (1.0, 3.0), (2.0, 3.0)]), st.integers(0, 2**31))
def test_fair_share_converges_under_steady_demand(weights: tuple[float, float], seed: int) -> None:
    """Two queues with no quota of their own borrow from an idle lender; both always want
    more. Work ends at random; each cycle refills. Borrowed capacity converges to the weights."""
    rng = random.Random(seed)
    configs = [queue("a", nominal=0, weight=weights[0]), queue("b", nominal=0, weight=weights[1]),
               queue("lender", nominal=60)]
    book = QuotaBook.build(configs)
    serial = 0
    pending: list[Workload] = []
    samples: list[tuple[int, int]] = []
    for step in range(200):
        for name in ("a", "b"):
            while sum(1 for w in pending if w.queue == name) < 30:
                serial += 1
                pending.append(wl(f"{name}/{serial}", name, 1, created=float(serial)))
        result = plan_cycle(book, pending, now=float(step))
        done = {d.workload.key for d in result.decisions if d.kind == ADMIT}
        pending = [w for w in pending if w.key not in done]
        if step > 50:
            samples.append((book.used("a", ("default", GPU)), book.used("b", ("default", GPU))))
        for key in list(book.admitted):
            if rng.random() < 0.2:
                book.remove(key)
    mean_a = sum(a for a, _ in samples) / len(samples)
    mean_b = sum(b for _, b in samples) / len(samples)
    expected = weights[1] / weights[0]
    assert abs(mean_b / mean_a - expected) / expected < 0.15, (mean_a, mean_b)


@settings(max_examples=200, deadline=None)
@given(st.lists(queue_params, min_size=1, max_size=3),
       st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4), st.integers(0, 3)), min_size=1, max_size=12),
       st.tuples(st.integers(0, 2), st.integers(1, 6), st.integers(0, 3)))
def test_victims_are_sufficient_minimal_and_allowed(params: list[dict[str, Any]],
                                                    running: list[tuple[int, int, int]],
                                                    preemptor_spec: tuple[int, int, int]) -> None:
    from corral.scheduler.quota import Admitted, find_victims

    configs = make_configs(params)
    book = QuotaBook.build(configs)
    fr = ("default", GPU)
    for i, (q, amount, priority) in enumerate(running):
        name = f"q{q % len(configs)}"
        if book.fits(name, {fr: amount * 1000}).mode <= Mode.BORROW:
            book.add(Admitted(f"ns/r{i}", name, priority, float(i), {fr: amount * 1000}, float(i)))
    q, amount, priority = preemptor_spec
    preemptor = wl("ns/p", f"q{q % len(configs)}", amount, priority=priority, created=5.0)
    usage = {fr: amount * 1000}
    victims = find_victims(book, preemptor, usage)
    if victims is None:
        return
    trial = book.copy()
    for victim in victims:
        trial.remove(victim.key)
    assert trial.fits(preemptor.queue, usage).mode <= Mode.BORROW  # sufficient
    for victim in victims:  # minimal: every victim is needed
        trial.add(victim)
        assert trial.fits(preemptor.queue, usage).mode > Mode.BORROW, victim.key
        trial.remove(victim.key)
    for victim in victims:  # allowed by the policy
        if victim.queue == preemptor.queue:
            assert victim.priority < preemptor.priority or (
                victim.priority == preemptor.priority and victim.created > preemptor.created)
        elif victim.priority >= preemptor.priority:
            assert within_nominal(book, preemptor.queue, usage)


fair_params = st.fixed_dictionaries({
    "nominal": st.integers(0, 6),
    "borrowing": st.one_of(st.none(), st.integers(0, 8)),
    "reclaim": st.sampled_from(["LowerPriority", "Any", "Any"]),
    "weight": st.sampled_from([0.5, 1.0, 2.0]),
    "fair": st.sampled_from(["LessThanOrEqualToFinalShare", "LessThanInitialShare"]),
})


@settings(max_examples=300, deadline=None)
@given(st.lists(fair_params, min_size=2, max_size=4),
       st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4), st.integers(0, 3)), min_size=4, max_size=16),
       st.tuples(st.integers(0, 3), st.integers(1, 5), st.integers(0, 3)))
def test_fair_share_preemption_never_pushes_a_queue_below_the_preemptor_nor_admits_past_quota(
        params: list[dict[str, Any]], running: list[tuple[int, int, int]], preemptor_spec: tuple[int, int, int]) -> None:
    from corral.scheduler.quota import Admitted
    from corral.scheduler.quota.preemption import fair_victims

    params = [{**params[0], "nominal": min(params[0]["nominal"], 2)}, *params[1:]]  # q0 borrows soon
    configs = [queue(f"q{i}", cohort="c", **p) for i, p in enumerate(params)]
    book = QuotaBook.build(configs)
    fr = ("default", GPU)
    for i, (q, amount, priority) in enumerate(running):
        name = f"q{q % len(configs) if i % 4 == 0 else 1 + q % (len(configs) - 1)}"  # mostly others than q0
        if book.fits(name, {fr: amount * 1000}).mode <= Mode.BORROW:
            book.add(Admitted(f"ns/r{i}", name, priority, float(i), {fr: amount * 1000}, float(i)))
    q, amount, priority = preemptor_spec
    preemptor = wl("ns/p", f"q{q % len(configs) if q == 3 else 0}", amount, priority=priority, created=50.0)
    config = book.queues[preemptor.queue]
    usage = {fr: amount * 1000}
    victims = fair_victims(book, preemptor, usage)
    if not victims:
        return
    STATS["fair-preempt"] = STATS.get("fair-preempt", 0) + 1
    trial = book.copy()
    for victim in victims:
        trial.remove(victim.key)
    # sufficient, and admitting the preemptor then keeps every quota invariant
    assert trial.fits(preemptor.queue, usage).mode <= Mode.BORROW
    mine = trial.share(preemptor.queue, usage)
    for name in {v.queue for v in victims}:
        if config.fair_preemption == "LessThanOrEqualToFinalShare":
            assert trial.share(name) >= mine, (name, trial.share(name), mine)  # not pushed below the preemptor
        else:
            assert book.share(name) > mine
        assert trial.share(name) > 0 or book.share(name) > 0  # it was borrowing
    after = trial.copy()
    after.add(Admitted(preemptor.key, preemptor.queue, preemptor.priority, preemptor.created, usage, 99.0))
    after.check_invariants()
    for victim in victims:  # never of higher priority, never of its own queue, allowed by reclaimWithinCohort
        assert victim.queue != preemptor.queue and victim.priority <= preemptor.priority
        if config.reclaim_within_cohort == "LowerPriority":
            assert victim.priority < preemptor.priority
    for victim in victims:  # minimal: every victim is needed
        trial.add(victim)
        assert trial.fits(preemptor.queue, usage).mode > Mode.BORROW, victim.key
        trial.remove(victim.key)
