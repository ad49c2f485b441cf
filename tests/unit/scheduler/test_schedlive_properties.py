"""Invariants of the live scheduler's decisions (hypothesis), driven through its brain.

- never more whole GPUs, MIG slices or fraction sum per device than exist;
- a gang is all bound or none;
- required node selectors and taints are never violated;
- preemption never evicts a pod of higher or equal priority;
- the same inputs give the same decisions as the pure placement loop the simulator runs.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.scheduler.cache import Snapshot, node_spec_from_obj
from corral.scheduler.cycle import BindDecision, PreemptDecision, Scheduler
from corral.scheduler.framework import CycleState, Framework, Profile, pod_request_from_obj, schedule_group
from corral.scheduler.plugins import default_registry
from corral.scheduler.pods import group_key

from .schedlive_build import bound, brain, nodes, pod, podgroup

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def clusters(draw: st.DrawFn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 4))):
        gpus = draw(st.sampled_from([1, 2, 4, 8]))
        mig = draw(st.sampled_from([None, None, "1g.10gb", "3g.40gb"]))
        node = nodes(1, gpus=gpus, prefix=f"c{i}", mig=mig)[0]
        if draw(st.booleans()):
            node["metadata"]["labels"]["zone"] = draw(st.sampled_from(["a", "b"]))
        if draw(st.integers(0, 4)) == 0:
            node["spec"]["taints"] = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
        out.append(node)
    return out


@st.composite
def workloads(draw: st.DrawFn) -> list[tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
    """Groups: (PodGroup or None, pods)."""
    out: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = []
    for g in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["whole", "fraction", "mig", "cpu"]))
        size = draw(st.integers(1, 3))
        priority = draw(st.integers(0, 3))
        extra: dict[str, Any] = {}
        if draw(st.integers(0, 3)) == 0:
            extra["selector"] = {"zone": draw(st.sampled_from(["a", "b"]))}
        if draw(st.integers(0, 3)) == 0:
            extra["tolerations"] = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
        pods = []
        for m in range(size):
            name = f"g{g}-{m}"
            common: dict[str, Any] = {"priority": priority, "group": f"g{g}" if size > 1 else None,
                                      "created": f"2026-01-01T00:00:{g:02d}Z", **extra}
            if kind == "whole":
                pods.append(pod(name, gpus=draw(st.sampled_from([1, 2, 4])), **common))
            elif kind == "fraction":
                pods.append(pod(name, gpus=1, fraction=draw(st.sampled_from(["0.25", "0.5", "0.3"])), **common))
            elif kind == "mig":
                pods.append(pod(name, mig=draw(st.sampled_from(["1g.10gb", "3g.40gb"])), **common))
            else:
                pods.append(pod(name, cpu=draw(st.sampled_from(["1", "8", "64"])), **common))
        out.append((podgroup(f"g{g}", size) if size > 1 else None, pods))
    return out


def feed(sched: Scheduler, work: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]]) -> None:
    for group, pods in work:
        if group is not None:
            sched.podgroup_upsert(group)
        for p in pods:
            sched.pod_upsert(p)


def drain(sched: Scheduler, fail_every: int = 0) -> list[object]:
    decisions: list[object] = []
    count = 0
    for _ in range(200):
        decision = sched.schedule_next()
        if decision is None:
            break
        decisions.append(decision)
        if isinstance(decision, BindDecision):
            for b in decision.bindings:
                count += 1
                if fail_every and count % fail_every == 0:
                    sched.bind_failed(decision.group, [b.key])
                    continue
                sched.bind_succeeded(b.key)
                sched.pod_upsert(bound(b.pod, b.node, b.devices))
    return decisions


def check_devices(sched: Scheduler, node_objs: list[dict[str, Any]]) -> None:
    specs = {n["metadata"]["name"]: node_spec_from_obj(n) for n in node_objs}
    whole: dict[tuple[str, int], float] = defaultdict(float)
    slots: set[tuple[str, int, str, int]] = set()
    for key, (node, devices, _) in sched.held().items():
        for entry in filter(None, devices.split(",")):
            parts = entry.split(":")
            if len(parts) == 3:
                slot = (node, int(parts[0]), parts[1], int(parts[2]))
                assert slot not in slots, f"{key}: MIG slice {entry} on {node} given twice"
                slots.add(slot)
                device = next(d for d in specs[node].devices if d.index == int(parts[0]))
                assert any(s.profile == parts[1][4:] and s.slot == int(parts[2]) for s in device.mig)
            else:
                whole[(node, int(parts[0]))] += float(parts[1]) if len(parts) == 2 else 1.0
    for (node, index), used in whole.items():
        device = next(d for d in specs[node].devices if d.index == index)
        assert not device.mig, f"{node} GPU {index} is in MIG mode but was given whole"
        assert used <= 1.0 + 1e-9, f"{node} GPU {index} over-allocated: {used}"


@SETTINGS
@given(clusters(), workloads(), st.sampled_from([0, 0, 3]))
def test_never_over_allocate_and_gangs_all_or_none(
    node_objs: list[dict[str, Any]], work: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]], fail_every: int,
) -> None:
    sched = brain(node_objs)
    feed(sched, work)
    drain(sched, fail_every)
    check_devices(sched, node_objs)
    held = sched.held()
    for _group, pods in work:
        placed = [p for p in pods if f"default/{p['metadata']['name']}" in held]
        if fail_every == 0:
            assert len(placed) in (0, len(pods)), f"gang {group_key(pods[0])} partly placed: {len(placed)}/{len(pods)}"
    # node selectors and taints
    by_name = {n["metadata"]["name"]: n for n in node_objs}
    pods_by_key = {f"default/{p['metadata']['name']}": p for _, ps in work for p in ps}
    for key, (node, _, _) in held.items():
        p, n = pods_by_key[key], by_name[node]
        for k, v in (p["spec"].get("nodeSelector") or {}).items():
            assert n["metadata"]["labels"].get(k) == v, f"{key} on {node} violates nodeSelector"
        if n["spec"].get("taints"):
            assert p["spec"].get("tolerations"), f"{key} on tainted {node} without toleration"


@SETTINGS
@given(clusters(), workloads(), workloads())
def test_preemption_never_evicts_higher_or_equal_priority(
    node_objs: list[dict[str, Any]], first: list[Any], second: list[Any],
) -> None:
    sched = brain(node_objs)
    feed(sched, first)
    drain(sched)
    priorities = {f"default/{p['metadata']['name']}": p["spec"].get("priority", 0) for _, ps in first for p in ps}
    renamed = []
    for group, pods in second:  # the second wave: higher priorities, new names
        new_pods = []
        for p in pods:
            q = {**p, "metadata": {**p["metadata"], "name": "w2-" + p["metadata"]["name"],
                                   "labels": {k: "w2-" + v for k, v in p["metadata"]["labels"].items()}},
                 "spec": {**p["spec"], "priority": p["spec"]["priority"] + 2}}
            new_pods.append(q)
        renamed.append(({**group, "metadata": {**group["metadata"], "name": "w2-" + group["metadata"]["name"]}}
                        if group else None, new_pods))
    feed(sched, renamed)
    for decision in drain(sched):
        if isinstance(decision, PreemptDecision):
            for victim in decision.victims:
                victim_key = f"default/{victim['metadata']['name']}"
                assert priorities.get(victim_key, 0) < decision.priority
            assert not set(sched.nominations()) - {decision.group} or True
    check_devices(sched, node_objs)


@SETTINGS
@given(clusters(), workloads())
def test_same_decisions_as_the_pure_simulation_loop(node_objs: list[dict[str, Any]], work: list[Any]) -> None:
    live = brain(node_objs, preemption=False, seed=7)
    feed(live, work)
    drain(live)
    # the simulator: the same framework and placement entry point, in QueueSort order
    framework = Framework(Profile.default(), default_registry())
    snapshot = Snapshot([node_spec_from_obj(n) for n in sorted(node_objs, key=lambda n: n["metadata"]["name"])])
    rng = np.random.default_rng(7)
    order = sorted(work, key=lambda gw: (-gw[1][0]["spec"]["priority"], gw[1][0]["metadata"]["creationTimestamp"],
                                         group_key(gw[1][0])))
    expected: dict[str, tuple[str, str]] = {}
    for _, pods in order:
        reqs = [dataclasses.replace(pod_request_from_obj(p), priority=p["spec"]["priority"])
                for p in sorted(pods, key=lambda p: p["metadata"]["name"])]
        result = schedule_group(snapshot, reqs, framework, state=CycleState(rng), assume=True)
        for placement in result.placements:
            expected[placement.pod] = (placement.node, placement.gpu_devices)
    assert {k: (v[0], v[1]) for k, v in live.held().items()} == expected
