"""Waits that run out: PodGroup ``scheduleTimeoutSeconds`` and nominations that expire."""

from __future__ import annotations

from typing import Any

from corral.scheduler.cycle import BindDecision, PreemptDecision, Scheduler, UnschedulableDecision
from corral.testing import FakeClock

from .schedlive_build import brain, nodes, pod, podgroup


def terminating(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "deletionTimestamp": "2026-01-01T00:00:01Z"}}


def clock_of(sched: Scheduler) -> FakeClock:
    assert isinstance(sched.clock, FakeClock)
    return sched.clock


def preempting(sched: Scheduler) -> PreemptDecision:
    for p in (pod("low-a", gpus=1, priority=1, node_name="n-0", devices="0"),
              pod("low-b", gpus=1, priority=1, node_name="n-1", devices="0")):
        sched.pod_upsert(p)
    sched.pod_upsert(pod("urgent", gpus=1, priority=10))
    decision = sched.schedule_next()
    assert isinstance(decision, PreemptDecision)
    return decision


def test_a_nomination_whose_victim_never_goes_expires_and_is_evaluated_again() -> None:
    sched = brain(nodes(2, gpus=1), nomination_timeout=60)
    first = preempting(sched)
    victim = first.victims[0]
    sched.pod_upsert(terminating(victim))  # the eviction started, but the pod never goes away
    clock_of(sched).advance(30)
    assert sched.expire() == []
    assert sched.nominations()
    clock_of(sched).advance(31)
    expired = sched.expire()
    assert [e.kind for e in expired] == ["NominationExpired"]
    assert [b.key for b in expired[0].released] == ["default/urgent"]
    assert not sched.nominations()
    # the stuck victim holds its node again; the preemptor lost its reservation
    held = sched.held()
    assert victim["metadata"]["name"] in {k.partition("/")[2] for k in held}
    assert "default/urgent" not in held
    # evaluated afresh: the terminating victim is not chosen again, the other low pod is
    again = sched.schedule_next()
    assert isinstance(again, PreemptDecision)
    other = {"low-a", "low-b"} - {victim["metadata"]["name"]}
    assert [v["metadata"]["name"] for v in again.victims] == sorted(other)
    assert sched.expire() == []  # a fresh nomination starts a fresh lifetime


def test_no_expiry_while_victims_go_in_time() -> None:
    sched = brain(nodes(2, gpus=1), nomination_timeout=60)
    first = preempting(sched)
    sched.pod_delete(first.victims[0])
    clock_of(sched).advance(120)
    assert sched.expire() == []
    ready = sched.schedule_next()
    assert isinstance(ready, BindDecision) and ready.nominated


def test_only_terminating_victims_left_means_wait_not_preempt_twice() -> None:
    sched = brain(nodes(1, gpus=1), nomination_timeout=10)
    sched.pod_upsert(pod("low", gpus=1, priority=1, node_name="n-0", devices="0"))
    sched.pod_upsert(pod("urgent", gpus=1, priority=10))
    first = sched.schedule_next()
    assert isinstance(first, PreemptDecision)
    sched.pod_upsert(terminating(first.victims[0]))
    clock_of(sched).advance(11)
    assert [e.kind for e in sched.expire()] == ["NominationExpired"]
    again = sched.schedule_next()
    assert isinstance(again, UnschedulableDecision)  # nothing left to evict: it waits for the node
    sched.pod_delete(first.victims[0])
    clock_of(sched).advance(2)  # past the retry backoff
    placed = sched.schedule_next()
    assert isinstance(placed, BindDecision) and placed.bindings[0].key == "default/urgent"


def test_podgroup_schedule_timeout_is_reported_once_per_wait() -> None:
    sched = brain(nodes(2, gpus=8))
    group = podgroup("g", 3)
    group["spec"]["scheduleTimeoutSeconds"] = 30
    sched.podgroup_upsert(group)
    for i in range(2):  # one member short: it waits
        sched.pod_upsert(pod(f"g-{i}", gpus=1, group="g"))
    waiting = sched.schedule_next()
    assert isinstance(waiting, UnschedulableDecision) and waiting.reason == "WaitingForMembers"
    clock_of(sched).advance(29)
    assert sched.expire() == []
    clock_of(sched).advance(2)
    expired = sched.expire()
    assert [(e.kind, e.group) for e in expired] == [("ScheduleTimeout", "group:default/g")]
    assert "scheduleTimeoutSeconds=30" in expired[0].message and expired[0].podgroup is not None
    assert sched.expire() == []  # once
    sched.pod_upsert(pod("g-2", gpus=1, group="g"))
    sched.q.move_all_to_active()
    placed = sched.schedule_next()
    assert isinstance(placed, BindDecision) and len(placed.bindings) == 3
    assert sched.expire() == []


def test_groups_without_a_timeout_never_time_out() -> None:
    sched = brain(nodes(1, gpus=8))
    sched.podgroup_upsert(podgroup("g", 2))
    sched.pod_upsert(pod("g-0", gpus=1, group="g"))
    sched.schedule_next()
    clock_of(sched).advance(10**6)
    assert sched.expire() == []


def test_a_timed_out_group_gives_up_its_nomination() -> None:
    sched = brain(nodes(1, gpus=2), nomination_timeout=10**6)
    for i in range(2):
        sched.pod_upsert(pod(f"low-{i}", gpus=1, priority=1, node_name="n-0", devices=str(i)))
    group = podgroup("g", 2, priority=10)
    group["spec"]["scheduleTimeoutSeconds"] = 60
    sched.podgroup_upsert(group)
    for i in range(2):
        sched.pod_upsert(pod(f"g-{i}", gpus=1, group="g"))
    decision = sched.schedule_next()
    assert isinstance(decision, PreemptDecision) and len(decision.victims) == 2
    for victim in decision.victims:
        sched.pod_upsert(terminating(victim))
    clock_of(sched).advance(61)
    expired = sched.expire()
    assert [e.kind for e in expired] == ["ScheduleTimeout"]
    assert {b.key for b in expired[0].released} == {"default/g-0", "default/g-1"}
    assert "nomination is released" in expired[0].message
    assert not sched.nominations()
    assert {"default/low-0", "default/low-1"} <= set(sched.held())
