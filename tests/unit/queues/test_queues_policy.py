"""Quota accounting, flavor assignment, preemption and ordering: the pure admission policy."""

from __future__ import annotations

from corral.scheduler.quota import (
    ADMIT,
    BLOCKED,
    HELD,
    PREEMPT,
    UNPLACEABLE,
    WAIT,
    Admitted,
    Mode,
    Policy,
    QuotaBook,
    candidates,
    find_victims,
    plan_cycle,
    resolve_queue,
)
from corral.scheduler.quota.workload import pod_sets_of

from .helpers import GPU, queue, wl

H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB"}
A100 = {"nvidia.com/gpu.product": "NVIDIA-A100-80GB"}


def admit(book: QuotaBook, key: str, queue_name: str, amount: float, *, priority: int = 0, at: float = 0.0,
          flavor: str = "default") -> None:
    book.add(Admitted(key, queue_name, priority, at, {(flavor, GPU): int(amount * 1000)}, at))


def test_borrowing_within_limit_and_cohort() -> None:
    book = QuotaBook.build([queue("a", nominal=4, borrowing=2), queue("b", nominal=4)])
    assert book.fits("a", {("default", GPU): 4000}).mode == Mode.FIT
    assert book.fits("a", {("default", GPU): 6000}).mode == Mode.BORROW
    fit = book.fits("a", {("default", GPU): 7000})
    assert fit.mode == Mode.NOFIT
    assert 'queue "a" flavor "default" nvidia.com/gpu' in fit.reason and "borrowing limit 2" in fit.reason
    admit(book, "b/x", "b", 3)
    fit = book.fits("a", {("default", GPU): 6000})
    assert fit.mode == Mode.PREEMPT
    assert 'available 5' in fit.reason and 'cohort "c" has 5 unused' in fit.reason
    book.check_invariants()


def test_lending_limit_keeps_the_guaranteed_part() -> None:
    book = QuotaBook.build([queue("a", nominal=4, lending=1), queue("b", nominal=4)])
    # b can borrow only the 1 GPU a lends.
    assert book.available("b", ("default", GPU)) == 5000
    admit(book, "b/x", "b", 5)
    assert book.available("a", ("default", GPU)) == 3000
    assert book.fits("a", {("default", GPU): 3000}).mode == Mode.FIT
    assert book.fits("a", {("default", GPU): 4000}).mode == Mode.PREEMPT
    book.check_invariants()


def test_no_cohort_means_no_borrowing() -> None:
    book = QuotaBook.build([queue("solo", cohort=None, nominal=2)])
    assert book.fits("solo", {("default", GPU): 2000}).mode == Mode.FIT
    fit = book.fits("solo", {("default", GPU): 3000})
    assert fit.mode == Mode.NOFIT and "no cohort to borrow from" in fit.reason


def test_flavors_in_order_and_node_selector() -> None:
    flavors = [("h100", H100, {"name": GPU, "nominalQuota": 2}), ("a100", A100, {"name": GPU, "nominalQuota": 8})]
    book = QuotaBook.build([queue("a", cohort=None, flavors=flavors)])
    first = candidates(book, wl("ns/j", "a", 2)).best
    assert first is not None and first.describe() == "h100" and first.node_labels() == H100
    # too big for h100: a100 is offered
    best = candidates(book, wl("ns/k", "a", 4)).best
    assert best is not None and best.describe() == "a100"
    # a pod pinned to H100 by nodeSelector never gets a100
    pinned = candidates(book, wl("ns/p", "a", 4, selector=H100))
    assert pinned.best is None and any("may use at most 2" in reason for reason in pinned.reasons)


def test_reclaim_evicts_borrowers_minimally() -> None:
    book = QuotaBook.build([queue("a", nominal=4, reclaim="Any"), queue("b", nominal=4)])
    for i in range(4):
        admit(book, f"b/{i}", "b", 2, priority=100, at=float(i))  # b uses 8: borrows a's 4
    victims = find_victims(book, wl("a/new", "a", 3, priority=0), {("default", GPU): 3000})
    assert victims is not None and len(victims) == 2
    # newest admitted go first; b stays at its nominal 4
    assert sorted(v.key for v in victims) == ["b/2", "b/3"]


def test_reclaim_never_takes_from_a_queue_within_nominal() -> None:
    book = QuotaBook.build([queue("a", nominal=4, reclaim="Any"), queue("b", nominal=4)])
    admit(book, "b/0", "b", 4)
    admit(book, "a/0", "a", 4)
    assert find_victims(book, wl("a/new", "a", 1), {("default", GPU): 1000}) is None


def test_reclaim_lower_priority_only() -> None:
    book = QuotaBook.build([queue("a", nominal=4, reclaim="LowerPriority"), queue("b", nominal=0)])
    admit(book, "b/hi", "b", 4, priority=10)
    assert find_victims(book, wl("a/x", "a", 4, priority=5), {("default", GPU): 4000}) is None
    assert [v.key for v in find_victims(book, wl("a/y", "a", 4, priority=20), {("default", GPU): 4000}) or []] == ["b/hi"]


def test_within_queue_policies() -> None:
    for policy, expected in [("Never", None), ("LowerPriority", None), ("LowerOrNewerEqualPriority", ["a/newer"])]:
        book = QuotaBook.build([queue("a", cohort=None, nominal=4, within=policy)])
        admit(book, "a/newer", "a", 4, priority=5, at=10.0)
        preemptor = wl("a/old", "a", 4, priority=5, created=1.0)
        # admitted_at is not creation: make the victim newer by creation time
        book.remove("a/newer")
        book.add(Admitted("a/newer", "a", 5, 10.0, {("default", GPU): 4000}, 10.0))
        found = find_victims(book, preemptor, {("default", GPU): 4000})
        assert (None if found is None else [v.key for v in found]) == expected, policy
    book = QuotaBook.build([queue("a", cohort=None, nominal=4, within="LowerPriority")])
    admit(book, "a/low", "a", 2, priority=1)
    admit(book, "a/high", "a", 2, priority=9)
    found = find_victims(book, wl("a/mid", "a", 2, priority=5), {("default", GPU): 2000})
    assert [v.key for v in found or []] == ["a/low"]


def test_victims_already_evicting_are_not_chosen_twice() -> None:
    book = QuotaBook.build([queue("a", cohort=None, nominal=4, within="LowerPriority")])
    admit(book, "a/low1", "a", 2, priority=1)
    admit(book, "a/low2", "a", 2, priority=1)
    first = find_victims(book, wl("a/p1", "a", 2, priority=5), {("default", GPU): 2000})
    assert first is not None and len(first) == 1
    second = find_victims(book, wl("a/p2", "a", 2, priority=5), {("default", GPU): 2000}, evicting={first[0].key})
    assert second is not None and len(second) == 1 and second[0].key != first[0].key


def test_gang_is_admitted_whole() -> None:
    book = QuotaBook.build([queue("a", cohort=None, nominal=8)])
    result = plan_cycle(book, [wl("ns/gang", "a", 3, count=3)], now=0.0)
    assert result.of(BLOCKED) and not book.admitted  # 9 > 8: nothing of it is admitted
    result = plan_cycle(book, [wl("ns/gang2", "a", 2, count=4)], now=0.0)
    assert [d.workload.key for d in result.of(ADMIT)] == ["ns/gang2"]
    assert book.used("a", ("default", GPU)) == 8000


def test_strict_fifo_blocks_behind_the_head_best_effort_passes() -> None:
    for strategy, admitted in [("StrictFIFO", []), ("BestEffortFIFO", ["ns/small"])]:
        book = QuotaBook.build([queue("a", cohort=None, nominal=4, strategy=strategy)])
        admit(book, "ns/running", "a", 2)
        pending = [wl("ns/big", "a", 4, created=1.0), wl("ns/small", "a", 1, created=2.0)]
        result = plan_cycle(book, pending, now=10.0)
        assert [d.workload.key for d in result.of(ADMIT)] == admitted, strategy
        reasons = result.by_key()
        assert "available 2" in reasons["ns/big"].reason
        if strategy == "StrictFIFO":
            assert reasons["ns/small"].reason == 'waiting behind ns/big at the head of queue "a"'


def test_aged_head_stops_being_passed() -> None:
    book = QuotaBook.build([queue("a", cohort=None, nominal=4)])
    admit(book, "ns/running", "a", 2)
    pending = [wl("ns/big", "a", 4, created=1.0), wl("ns/small", "a", 1, created=2.0)]
    policy = Policy(starvation_seconds=60)
    young = plan_cycle(book.copy(), pending, now=30.0, blocked_since={"ns/big": 0.0}, policy=policy)
    assert young.by_key()["ns/small"].kind == ADMIT
    old = plan_cycle(book.copy(), pending, now=90.0, blocked_since={"ns/big": 0.0}, policy=policy)
    assert old.by_key()["ns/small"].kind == BLOCKED


def test_priority_then_creation_order_in_a_queue() -> None:
    book = QuotaBook.build([queue("a", cohort=None, nominal=2, strategy="StrictFIFO")])
    pending = [wl("ns/old-low", "a", 2, priority=1, created=0.0), wl("ns/new-high", "a", 2, priority=9, created=5.0),
               wl("ns/old-high", "a", 2, priority=9, created=1.0)]
    result = plan_cycle(book, pending, now=10.0)
    assert [d.workload.key for d in result.of(ADMIT)] == ["ns/old-high"]
    assert result.by_key()["ns/new-high"].position == 1


def test_fair_share_orders_queues_in_a_cohort() -> None:
    # Three queues; c is idle and lends 12. a already borrows 4; b borrows nothing.
    book = QuotaBook.build([queue("a", nominal=0), queue("b", nominal=0, weight=1.0), queue("c", nominal=12)])
    admit(book, "a/0", "a", 4)
    pending = [wl("a/1", "a", 4, created=0.0), wl("b/1", "b", 4, created=5.0), wl("b/2", "b", 4, created=6.0)]
    result = plan_cycle(book, pending, now=10.0)
    admitted = [d.workload.key for d in result.of(ADMIT)]
    # b (share 0) goes first; then a/1 and b/2 would leave equal shares: the older goes; the pool is full
    assert admitted == ["b/1", "a/1"]


def test_weights_decide_shares() -> None:
    book = QuotaBook.build([queue("a", nominal=0, weight=2.0), queue("b", nominal=0), queue("c", nominal=12)])
    admit(book, "a/0", "a", 4)
    admit(book, "b/0", "b", 2)
    assert abs(book.share("a") - (4 / 12) / 2) < 1e-9
    assert abs(book.share("b") - 2 / 12) < 1e-9
    result = plan_cycle(book, [wl("b/1", "b", 2, created=0.0), wl("a/1", "a", 2, created=1.0)], now=0.0)
    # after admission a would have (6/12)/2 = 0.25 and b 4/12 = 0.33: a's weight lets it go first
    assert [d.workload.key for d in result.of(ADMIT)] == ["a/1", "b/1"]


def test_stop_policy_holds_the_queue() -> None:
    book = QuotaBook.build([queue("a", cohort=None, nominal=4, stop="Hold")])
    result = plan_cycle(book, [wl("ns/x", "a", 1)], now=0.0)
    assert result.decisions[0].kind == HELD and "stopPolicy Hold" in result.decisions[0].reason


def test_preemption_is_nominated_then_waits_then_admits() -> None:
    book = QuotaBook.build([queue("a", nominal=4, reclaim="Any"), queue("b", nominal=4)])
    admit(book, "b/0", "b", 4, at=0.0)
    admit(book, "b/1", "b", 4, at=1.0)
    first = plan_cycle(book, [wl("a/x", "a", 4)], now=0.0)
    decision = first.by_key()["a/x"]
    assert decision.kind == PREEMPT and [v.key for v in decision.victims] == ["b/1"]
    nominated = {"a/x": ["b/1"]}
    # victim still terminating: the preemptor waits and chooses no new victims
    second = plan_cycle(book, [wl("a/x", "a", 4)], now=1.0, evicting={"b/1"}, nominated=nominated)
    assert second.by_key()["a/x"].kind == WAIT
    book.remove("b/1")
    # the preemptor goes before an older workload of b that also wants the room
    third = plan_cycle(book, [wl("b/2", "b", 4, created=-5.0, priority=100), wl("a/x", "a", 4)], now=2.0,
                       nominated=nominated)
    assert third.by_key()["a/x"].kind == ADMIT and third.by_key()["b/2"].kind != ADMIT


def test_place_hook_tries_the_next_flavor_and_never_admits_unplaced() -> None:
    flavors = [("h100", H100, {"name": GPU, "nominalQuota": 8}), ("a100", A100, {"name": GPU, "nominalQuota": 8})]
    book = QuotaBook.build([queue("a", cohort=None, flavors=flavors)])
    tried: list[str] = []

    def place(workload: object, assignment: object) -> tuple[object, str]:
        name = assignment.describe()  # type: ignore[attr-defined]
        tried.append(name)
        return (None, "0/3 nodes: 3 Insufficient nvidia.com/gpu") if name == "h100" else ({"pod-0": "node-a"}, "")

    result = plan_cycle(book, [wl("ns/j", "a", 4)], now=0.0, place=place)
    decision = result.by_key()["ns/j"]
    assert tried == ["h100", "a100"] and decision.kind == ADMIT and decision.placement == {"pod-0": "node-a"}
    assert book.used("a", ("a100", GPU)) == 4000 and book.used("a", ("h100", GPU)) == 0

    book2 = QuotaBook.build([queue("a", cohort=None, flavors=flavors[:1])])
    result = plan_cycle(book2, [wl("ns/j", "a", 4)], now=0.0, place=lambda w, a: (None, "no nodes"))
    assert result.by_key()["ns/j"].kind == UNPLACEABLE and not book2.admitted


def test_workload_from_pods_and_queue_resolution() -> None:
    pod = {"metadata": {"namespace": "team-a", "annotations": {}},
           "spec": {"nodeSelector": H100, "containers": [
               {"resources": {"limits": {GPU: "2"}, "requests": {"cpu": "500m"}}}]}}
    share = {"metadata": {"annotations": {"corral.dev/gpu-fraction": "0.5"}}, "spec": {"containers": [{}]}}
    sets = pod_sets_of([pod, pod, share])
    assert sorted((s.count, dict(s.requests)) for s in sets) == [(1, {GPU: 500}), (2, {GPU: 2000, "cpu": 500})]
    queues = [queue("qa", namespaces=["team-a"], default=True), queue("qb", namespaces=["team-b"])]
    assert resolve_queue(pod, queues) == "qa"
    assert resolve_queue({"metadata": {"namespace": "team-a", "labels": {"corral.dev/queue": "qb"}}}, queues) == "qb"
    assert resolve_queue({"metadata": {"namespace": "team-b"}}, queues) is None
