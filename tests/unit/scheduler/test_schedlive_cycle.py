"""The live scheduler's brain: decisions from events, without I/O."""

from __future__ import annotations

from corral.scheduler.cycle import BindDecision, PreemptDecision, Scheduler, UnschedulableDecision

from .schedlive_build import bound, brain, nodes, pod, podgroup


def run_all(sched: Scheduler) -> list[object]:
    """Drain the queue, confirming every binding as the API would."""
    out = []
    while (decision := sched.schedule_next()) is not None:
        out.append(decision)
        if isinstance(decision, BindDecision):
            for b in decision.bindings:
                sched.bind_succeeded(b.key)
                sched.pod_upsert(bound(b.pod, b.node, b.devices))
    return out


def test_whole_gpus_land_on_exact_devices() -> None:
    sched = brain(nodes(2, gpus=8))
    sched.pod_upsert(pod("a", gpus=3))
    sched.pod_upsert(pod("b", gpus=8))
    decisions = run_all(sched)
    assert all(isinstance(d, BindDecision) for d in decisions)
    held = sched.held()
    assert len(held["default/a"][1].split(",")) == 3
    assert held["default/b"][1] == "0,1,2,3,4,5,6,7"
    assert held["default/a"][0] != held["default/b"][0]


def test_fraction_and_mig_devices() -> None:
    sched = brain(nodes(1, gpus=2, prefix="f") + nodes(1, gpus=2, prefix="m", mig="1g.10gb"))
    sched.pod_upsert(pod("half", fraction="0.5", gpus=1))
    sched.pod_upsert(pod("slice", mig="1g.10gb"))
    run_all(sched)
    held = sched.held()
    assert held["default/half"][0] == "f-0" and held["default/half"][1].endswith(":0.5")
    assert held["default/slice"][0] == "m-0" and ":mig-1g.10gb:" in held["default/slice"][1]


def test_other_schedulers_pods_are_left_alone_but_counted() -> None:
    sched = brain(nodes(1, gpus=8))
    sched.pod_upsert(pod("theirs", gpus=1, scheduler="default-scheduler"))
    assert sched.schedule_next() is None
    sched.pod_upsert(pod("placed-by-them", gpus=8, scheduler="default-scheduler", node_name="n-0", devices="0,1,2,3,4,5,6,7"))
    sched.pod_upsert(pod("ours", gpus=1))
    decision = sched.schedule_next()
    assert isinstance(decision, UnschedulableDecision)
    assert decision.message == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu." or "Insufficient" in decision.message


def test_gang_waits_for_members_then_places_all_or_nothing() -> None:
    sched = brain(nodes(2, gpus=8))
    sched.podgroup_upsert(podgroup("g", 4))
    for i in range(3):
        sched.pod_upsert(pod(f"g-{i}", gpus=4, group="g"))
    decision = sched.schedule_next()
    assert isinstance(decision, UnschedulableDecision) and decision.reason == "WaitingForMembers"
    assert "3/4" in decision.message
    sched.pod_upsert(pod("g-3", gpus=4, group="g"))
    decision = sched.schedule_next()
    assert isinstance(decision, BindDecision) and len(decision.bindings) == 4
    # a second gang of 4 x 4 GPUs cannot fit: nothing of it is placed
    sched.podgroup_upsert(podgroup("h", 2))
    sched.pod_upsert(pod("h-0", gpus=4, group="h"))
    sched.pod_upsert(pod("h-1", gpus=4, group="h"))
    decision = sched.schedule_next()
    assert isinstance(decision, UnschedulableDecision) and decision.reason == "Unschedulable"
    assert not any(k.startswith("default/h-") for k in sched.held())


def test_bind_failure_midway_unreserves_and_retries() -> None:
    sched = brain(nodes(1, gpus=8))
    sched.podgroup_upsert(podgroup("g", 2))
    sched.pod_upsert(pod("g-0", gpus=4, group="g"))
    sched.pod_upsert(pod("g-1", gpus=4, group="g"))
    decision = sched.schedule_next()
    assert isinstance(decision, BindDecision)
    first, second = decision.bindings
    sched.bind_succeeded(first.key)
    sched.pod_upsert(bound(first.pod, first.node, first.devices))
    sched.bind_failed("group:default/g", [second.key])
    assert second.key not in sched.held()
    assert sched.snapshot.gpu_free[0].sum() == 4000  # only the bound member holds GPUs
    sched.q.clock.advance(5)  # type: ignore[attr-defined]
    retry = sched.schedule_next()
    assert isinstance(retry, BindDecision) and [b.key for b in retry.bindings] == [second.key]


def test_unschedulable_message_counts_reasons() -> None:
    big = nodes(2, gpus=8, prefix="big")
    big[0]["spec"]["taints"] = [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]
    big[1]["spec"]["unschedulable"] = True
    sched = brain(nodes(3, gpus=2) + big)
    sched.pod_upsert(pod("wide", gpus=4))
    decision = sched.schedule_next()
    assert isinstance(decision, UnschedulableDecision) and decision.reason == "Unschedulable"
    print(decision.message)
    assert decision.message.startswith("0/5 nodes are available: ")
    assert "3 Insufficient nvidia.com/gpu" in decision.message
    assert "taint" in decision.message and "unschedulable" in decision.message


def test_preemption_picks_cheapest_victims_and_never_twice() -> None:
    sched = brain(nodes(2, gpus=2))
    # node n-0: two priority-1 pods; node n-1: one priority-5 pod holding 2 GPUs
    for p in (pod("low-a", gpus=1, priority=1, node_name="n-0", devices="0"),
              pod("low-b", gpus=1, priority=1, node_name="n-0", devices="1"),
              pod("mid", gpus=2, priority=5, node_name="n-1", devices="0,1")):
        sched.pod_upsert(p)
    sched.pod_upsert(pod("urgent", gpus=1, priority=10))
    decision = sched.schedule_next()
    assert isinstance(decision, PreemptDecision)
    assert [v["metadata"]["name"] for v in decision.victims] in (["low-a"], ["low-b"])
    assert decision.preemptors[0].node == "n-0"
    # a second urgent pod must not evict the same victim: it takes the other low one
    sched.pod_upsert(pod("urgent-2", gpus=1, priority=10))
    second = sched.schedule_next()
    assert isinstance(second, PreemptDecision)
    assert {v["metadata"]["name"] for v in second.victims} | {v["metadata"]["name"] for v in decision.victims} == {"low-a", "low-b"}
    # the preemptor binds once its victim is gone
    sched.pod_delete(decision.victims[0])
    ready = sched.schedule_next()
    assert isinstance(ready, BindDecision) and ready.nominated and ready.bindings[0].key == "default/urgent"


def test_preemption_never_evicts_equal_or_higher_priority() -> None:
    sched = brain(nodes(1, gpus=1))
    sched.pod_upsert(pod("same", gpus=1, priority=10, node_name="n-0", devices="0"))
    sched.pod_upsert(pod("want", gpus=1, priority=10))
    decision = sched.schedule_next()
    assert isinstance(decision, UnschedulableDecision)


def test_running_gang_counts_whole() -> None:
    sched = brain(nodes(2, gpus=2))
    sched.podgroup_upsert(podgroup("old", 2))
    sched.pod_upsert(pod("old-0", gpus=1, priority=1, group="old", node_name="n-0", devices="0"))
    sched.pod_upsert(pod("old-1", gpus=1, priority=1, group="old", node_name="n-1", devices="0"))
    sched.pod_upsert(pod("solo", gpus=1, priority=2, node_name="n-0", devices="1"))
    sched.pod_upsert(pod("mid", gpus=1, priority=3, node_name="n-1", devices="1"))
    sched.pod_upsert(pod("urgent", gpus=2, priority=10))
    decision = sched.schedule_next()
    assert isinstance(decision, PreemptDecision)
    names = sorted(v["metadata"]["name"] for v in decision.victims)
    # evicting the gang frees one GPU per node, not two on one node; the cheapest single-node
    # set is {old-*, solo} on n-0 (max priority 2) rather than {old-*, mid} on n-1 (3)
    assert names == ["old-0", "old-1", "solo"]


def test_explain_names_nearest_misses_and_preemption() -> None:
    from corral.scheduler.explain import explain_group

    sched = brain(nodes(3, gpus=8))
    sched.pod_upsert(pod("r0", gpus=6, priority=1, node_name="n-0", devices="0,1,2,3,4,5"))
    sched.pod_upsert(pod("r1", gpus=7, priority=1, node_name="n-1", devices="0,1,2,3,4,5,6"))
    sched.pod_upsert(pod("r2", gpus=8, priority=1, node_name="n-2", devices="0,1,2,3,4,5,6,7"))
    sched.pod_upsert(pod("big", gpus=4, priority=5))
    text = explain_group(sched, "pod:default/big").render()
    assert "0/3 nodes are available: 3 Insufficient nvidia.com/gpu." in text
    lines = text.splitlines()
    nearest = lines.index("nearest misses:")
    assert lines[nearest + 1].strip().startswith("n-0:") and "2 whole GPU(s) free, needs 4" in lines[nearest + 1]
    assert any("preempt 1 lower-priority pod(s): default/r0" in line for line in lines)
