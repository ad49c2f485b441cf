"""The brain survives pods it cannot handle: whatever JSON sits in a pod's fields, upserting
it and scheduling never raise, the pod is quarantined (``InvalidPod``, the field named) or
scheduled, and a good pod beside it is always placed."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.scheduler.admission import AllowAll
from corral.scheduler.cycle import BindDecision, UnschedulableDecision

from .schedlive_build import brain, nodes, pod, podgroup

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from(["abc", "1e5000", "-1", "100m", "1Gi", "In", ""]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)

PATHS = [
    ("spec", "overhead"), ("spec", "affinity"), ("spec", "affinity", "nodeAffinity"), ("spec", "tolerations"),
    ("spec", "nodeSelector"), ("spec", "priority"), ("spec", "priorityClassName"), ("spec", "containers"),
    ("spec", "initContainers"), ("metadata", "labels"), ("metadata", "annotations"),
    ("metadata", "annotations", "corral.dev/gpu-fraction"), ("metadata", "annotations", "corral.dev/gpu-memory"),
    ("spec", "containers", 0, "resources"), ("spec", "containers", 0, "resources", "limits"),
    ("spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"),
    ("spec", "containers", 0, "resources", "requests", "cpu"),
]


def poisoned(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    obj = pod("bad", gpus=1)
    node: Any = obj
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    node[path[-1]] = copy.deepcopy(value)
    return obj


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PATHS), JSON)
def test_any_value_in_a_pod_field_never_stops_the_scheduler(path: tuple[Any, ...], value: Any) -> None:
    sched = brain(nodes(1, gpus=8))
    sched.pod_upsert(poisoned(path, value))
    sched.pod_upsert(pod("good", gpus=1))
    decisions = []
    while (decision := sched.schedule_next()) is not None:
        decisions.append(decision)
    reports = sched.take_reports()
    assert any(isinstance(d, BindDecision) and d.bindings[0].key == "default/good" for d in decisions)
    bad = [d for d in decisions + reports if "default/bad" in d.group]
    assert bad, "the bad pod is either scheduled or reported"
    for d in bad:
        if isinstance(d, UnschedulableDecision) and d.reason == "InvalidPod":
            assert d.message and "default/bad" in sched.invalid()


def test_a_quarantined_pod_is_reported_once_and_retried_when_fixed() -> None:
    sched = brain(nodes(1, gpus=8))
    bad = pod("bad", gpus=1)
    bad["spec"]["overhead"] = {"cpu": "abc"}
    sched.pod_upsert(bad)
    [report] = sched.take_reports()
    assert report.reason == "InvalidPod" and "spec.overhead[cpu]: 'abc'" in report.message
    assert sched.schedule_next() is None
    with_condition = copy.deepcopy(bad)
    with_condition["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "InvalidPod"}]
    sched.pod_upsert(with_condition)  # our own status write: not reported again
    assert sched.take_reports() == []
    fixed = copy.deepcopy(bad)
    fixed["spec"]["overhead"] = {"cpu": "10m"}
    sched.pod_upsert(fixed)
    decision = sched.schedule_next()
    assert isinstance(decision, BindDecision) and decision.bindings[0].key == "default/bad"
    assert sched.invalid() == {}


def test_a_podgroup_with_a_malformed_spec_holds_its_pods_only() -> None:
    sched = brain(nodes(1, gpus=8))
    bad = podgroup("g", 2)
    bad["spec"]["scheduleTimeoutSeconds"] = "soon"
    sched.podgroup_upsert(bad)
    for i in range(2):
        sched.pod_upsert(pod(f"g-{i}", gpus=1, group="g"))
    sched.pod_upsert(pod("bare", gpus=1))
    decisions = []
    while (decision := sched.schedule_next()) is not None:
        decisions.append(decision)
    assert sched.expire() == []  # expiry does not read the malformed timeout
    kinds = {(d.group, type(d).__name__, getattr(d, "reason", "")) for d in decisions}
    assert ("pod:default/bare", "BindDecision", "") in kinds
    assert ("group:default/g", "UnschedulableDecision", "InvalidPodGroup") in kinds
    bad["spec"]["scheduleTimeoutSeconds"] = 60
    sched.podgroup_upsert(bad)
    decision = sched.schedule_next()
    assert isinstance(decision, BindDecision) and decision.group == "group:default/g"


class Exploding(AllowAll):
    """An admission seam with a bug for one group."""

    def admit(self, group: Any, placements: Any) -> Any:
        if group.key == "pod:default/boom":
            raise ZeroDivisionError("division by zero")
        return super().admit(group, placements)


def test_a_cycle_that_raises_is_reported_and_the_next_group_scheduled() -> None:
    sched = brain(nodes(1, gpus=2), admission=Exploding())
    sched.pod_upsert(pod("boom", gpus=2, created="2025-01-01T00:00:00Z"))  # first in the queue
    sched.pod_upsert(pod("fine", gpus=2))
    first = sched.schedule_next()
    assert isinstance(first, UnschedulableDecision) and first.reason == "InvalidPod"
    assert "ZeroDivisionError: division by zero" in first.message
    second = sched.schedule_next()
    # the failed cycle's tentative placement was given back: the next group gets the GPUs
    assert isinstance(second, BindDecision) and second.bindings[0].key == "default/fine"
