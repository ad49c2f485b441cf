"""Property tests: whatever the cluster and the requests, placements never over-commit a
device, a MIG slice or a node; required affinity and taints hold; groups are all or nothing."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.scheduler.cache import DeviceSpec, MigSlice, NodeSpec, Snapshot
from corral.scheduler.framework import (
    Framework,
    PodRequest,
    Profile,
    SelectorRequirement,
    SelectorTerm,
    Taint,
    Toleration,
    schedule_group,
)
from corral.scheduler.plugins import POLICIES, default_registry

MIG_PROFILES = ("1g.10gb", "3g.40gb")


@st.composite
def nodes(draw: st.DrawFn) -> list[NodeSpec]:
    out = []
    for i in range(draw(st.integers(1, 6))):
        gpus = draw(st.integers(0, 4))
        model = draw(st.sampled_from(["A", "B"]))  # a node has one GPU model
        devices = []
        for d in range(gpus):
            mig = ()
            if draw(st.booleans()) and d == gpus - 1:
                mig = tuple(MigSlice(draw(st.sampled_from(MIG_PROFILES)), s) for s in range(draw(st.integers(1, 3))))
            devices.append(DeviceSpec(d, model, 40960, nvlink_island=d // 2, mig=mig))
        taints = (Taint("dedicated", "x", "NoSchedule"),) if draw(st.integers(0, 3)) == 0 else ()
        out.append(NodeSpec(
            f"n{i}", cpu_milli=draw(st.sampled_from([2000, 8000, 32000])), memory=draw(st.sampled_from([2**32, 2**36])),
            pods=draw(st.integers(1, 8)), devices=tuple(devices), labels={"zone": draw(st.sampled_from(["a", "b"]))},
            taints=taints, unschedulable=draw(st.integers(0, 5)) == 0,
        ))
    return out


@st.composite
def pods(draw: st.DrawFn, name: str) -> PodRequest:
    kind = draw(st.sampled_from(["cpu", "whole", "share", "memshare", "mig"]))
    extra: dict[str, object] = {}
    if kind == "whole":
        extra = {"gpu_count": draw(st.integers(1, 3))}
    elif kind == "share":
        extra = {"gpu_count": 1, "gpu_milli": draw(st.sampled_from([100, 250, 500, 810]))}
    elif kind == "memshare":
        extra = {"gpu_count": 1, "gpu_memory_mib": draw(st.sampled_from([4096, 20480]))}
    elif kind == "mig":
        extra = {"mig": {draw(st.sampled_from(MIG_PROFILES)): draw(st.integers(1, 2))}}
    if draw(st.booleans()):
        extra["gpu_models"] = frozenset(draw(st.sets(st.sampled_from(["A", "B"]), min_size=1)))
    if draw(st.integers(0, 3)) == 0:
        extra["required_terms"] = (SelectorTerm((SelectorRequirement("zone", "In", ("a",)),)),)
    if draw(st.integers(0, 3)) == 0:
        extra["tolerations"] = (Toleration("dedicated", "Equal", "x", "NoSchedule"),)
    return PodRequest(name, cpu_milli=draw(st.sampled_from([0, 500, 4000])), memory=draw(st.sampled_from([0, 2**30])), **extra)  # type: ignore[arg-type]


@st.composite
def workload(draw: st.DrawFn) -> list[list[PodRequest]]:
    groups = []
    for g in range(draw(st.integers(1, 10))):
        size = draw(st.integers(1, 3))
        groups.append([draw(pods(f"g{g}-{i}")) for i in range(size)])
    return groups


def check(snap: Snapshot) -> None:
    assert (snap.gpu_free >= 0).all() and (snap.gpu_free <= snap.gpu_cap).all()
    assert (snap.mig_free >= 0).all()
    assert (snap.cpu_used <= snap.cpu_cap).all() and (snap.mem_used <= snap.mem_cap).all()
    assert (snap.pods_used <= snap.pods_cap).all()
    per_device: dict[tuple[int, int], int] = defaultdict(int)
    slices: set[tuple[int, int, str, int]] = set()
    for pod, node, devices in snap.assumed_pods():
        spec = snap.specs[node]
        by_index = {d.index: d for d in spec.devices}
        if pod.gpu_count:
            assert sum(1 for d in devices if not d.mig_profile) == pod.gpu_count
        for d in devices:
            dev = by_index[d.index]
            if pod.gpu_models is not None:
                assert dev.model in pod.gpu_models
            if d.mig_profile:
                assert any(s.profile == d.mig_profile and s.slot == d.mig_slot for s in dev.mig)
                key = (node, d.index, d.mig_profile, d.mig_slot)
                assert key not in slices
                slices.add(key)
            else:
                assert not dev.mig
                per_device[(node, d.index)] += d.milli
        for profile, count in pod.mig.items():
            assert sum(1 for d in devices if d.mig_profile == profile) == count
        if pod.required_terms:
            assert spec.labels.get("zone") == "a"
        for t in spec.taints:
            assert any(tol.tolerates(t) for tol in pod.tolerations)
        assert not spec.unschedulable
    assert all(v <= 1000 for v in per_device.values())
    # the per-node GPU indexes the filters read agree with the device cells
    assert (snap.gpu_whole_free == (snap.gpu_free >= 1000).sum(axis=1)).all()
    assert (snap.gpu_max_free == (snap.gpu_free.max(axis=1) if snap.gpu_free.shape[1] else 0)).all()
    assert (snap.gpu_idle == snap.gpu_free.sum(axis=1)).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes(), workload(), st.sampled_from(POLICIES), st.integers(0, 2**16))
def test_placements_respect_capacity_constraints_and_groups(
    specs: list[NodeSpec], groups: list[list[PodRequest]], policy: str, seed: int
) -> None:
    snap = Snapshot(specs)
    fw = Framework(Profile.for_policy(policy) if policy != "corral" else Profile.default(), default_registry())
    rng = np.random.default_rng(seed)
    for group in groups:
        before = {k: snap.is_assumed(p.key) for p in group for k in [p.key]}
        assert not any(before.values())
        res = schedule_group(snap, group, fw, rng=rng)
        placed = [snap.is_assumed(p.key) for p in group]
        assert all(placed) if res.ok else not any(placed)
        if res.ok:
            assert [pl.pod for pl in res.placements] == [p.key for p in group]
        check(snap)
    # forgetting everything restores an empty cluster
    for pod, _, _ in list(snap.assumed_pods()):
        snap.forget(pod.key)
    assert (snap.gpu_free == snap.gpu_cap).all() and (snap.mig_free == snap.mig_cap).all()
    assert snap.cpu_used.sum() == 0 and snap.pods_used.sum() == 0
    check(snap)
