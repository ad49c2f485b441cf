"""QueueAdmission: the scheduler's admission seam, driven with groups and placements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.scheduler.quota import Workload
from corral.scheduler.quota.cycle import Policy
from corral.scheduler.quota.live import QueueAdmission
from corral.testing import FakeClock

from .helpers import GPU, queue_obj

H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB"}
A100 = {"nvidia.com/gpu.product": "NVIDIA-A100-80GB"}
NODES = {"h1": H100, "h2": H100, "a1": A100}


@dataclass(frozen=True)
class Group:
    key: str
    namespace: str
    priority: int
    queue: str | None
    pod_objs: tuple[dict[str, Any], ...] = field(default=())


@dataclass(frozen=True)
class Place:
    pod: str
    node: str


def pod(name: str, gpus: int, *, ns: str = "team-a", queue: str | None = None, created: str = "2026-01-01T00:00:00Z",
        group: str | None = None, node: str | None = None, phase: str = "Pending") -> dict[str, Any]:
    labels: dict[str, str] = {}
    if queue:
        labels["corral.dev/queue"] = queue
    if group:
        labels["corral.dev/pod-group"] = group
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"limits": {GPU: str(gpus)}}}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "namespace": ns, "labels": labels, "creationTimestamp": created},
            "spec": spec, "status": {"phase": phase}}


def group_of(key: str, pods: list[dict[str, Any]], priority: int = 0, queue: str | None = None) -> Group:
    return Group(key, pods[0]["metadata"]["namespace"], priority, queue, tuple(pods))


def places(pods: list[dict[str, Any]], node: str) -> list[Place]:
    return [Place(f"{p['metadata']['namespace']}/{p['metadata']['name']}", node) for p in pods]


def two_flavor_queues(**a_kwargs: Any) -> list[dict[str, Any]]:
    flavors_a = [("h100", H100, {"name": GPU, "nominalQuota": 4}), ("a100", A100, {"name": GPU, "nominalQuota": 0})]
    flavors_b = [("h100", H100, {"name": GPU, "nominalQuota": 4}), ("a100", A100, {"name": GPU, "nominalQuota": 8})]
    return [queue_obj("qa", flavors=flavors_a, namespaces=["team-a"], default=True, **a_kwargs),
            queue_obj("qb", flavors=flavors_b, namespaces=["team-b"], default=True)]


def make(**a_kwargs: Any) -> tuple[QueueAdmission, FakeClock]:
    clock = FakeClock()
    admission = QueueAdmission(clock, NODES.get, policy=Policy(starvation_seconds=60))
    admission.set_queues(two_flavor_queues(**a_kwargs))
    return admission, clock


def test_flavor_comes_from_the_placement_and_quota_is_booked() -> None:
    admission, _ = make()
    pods = [pod("w0", 2, group="g"), pod("w1", 2, group="g")]
    verdict = admission.admit(group_of("group:team-a/g", pods), places(pods, "h1"))
    assert verdict.allowed and "h100" in verdict.message
    assert admission.book.used("qa", ("h100", GPU)) == 4000
    # qa has no a100 quota, but qb lends 8: borrowing
    more = [pod("x", 4)]
    verdict = admission.admit(group_of("pod:team-a/x", more), places(more, "a1"))
    assert verdict.allowed and "borrows 4" in verdict.message
    admission.book.check_invariants()


def test_denied_names_the_queue_flavor_and_resource() -> None:
    admission, _ = make()
    first = [pod("a", 4)]
    assert admission.admit(group_of("pod:team-a/a", first), places(first, "h1")).allowed
    second = [pod("b", 4, ns="team-b")]
    assert admission.admit(group_of("pod:team-b/b", second), places(second, "h2")).allowed
    third = [pod("c", 1)]
    verdict = admission.admit(group_of("pod:team-a/c", third), places(third, "h1"))
    assert not verdict.allowed and verdict.reason == "QuotaExceeded"
    assert 'queue "qa" flavor "h100" nvidia.com/gpu: requests 1, more than is free' in verdict.message
    assert "pod:team-a/c" not in admission.book.admitted
    lines = admission.explain("pod:team-a/c")
    assert lines[0].startswith('queue "qa": position 1 of 1') and "QuotaExceeded" in lines[1]


def test_no_queue_is_unlimited_and_unknown_queue_is_denied() -> None:
    admission, _ = make()
    free = [pod("f", 100, ns="elsewhere")]
    assert admission.admit(group_of("pod:elsewhere/f", free), places(free, "h1")).allowed
    lost = [pod("l", 1, queue="nope")]
    verdict = admission.admit(group_of("pod:team-a/l", lost), places(lost, "h1"))
    assert not verdict.allowed and verdict.reason == "QueueNotFound"


def test_node_of_no_flavor_is_denied() -> None:
    admission, _ = make()
    pods = [pod("z", 1)]
    verdict = admission.admit(group_of("pod:team-a/z", pods), [Place("team-a/z", "cpu-node")])
    assert not verdict.allowed and verdict.reason == "NoFlavor" and "cpu-node" in verdict.message


def test_reclaim_nominates_victims_and_reserves_their_room() -> None:
    admission, _ = make(reclaim="Any")
    # team-b borrows all of qa's h100 quota
    for i in range(2):
        pods = [pod(f"b{i}", 4, ns="team-b", created=f"2026-01-01T00:00:0{i}Z")]
        assert admission.admit(group_of(f"pod:team-b/b{i}", pods), places(pods, "h1")).allowed
    mine = [pod("a", 4)]
    verdict = admission.admit(group_of("pod:team-a/a", mine), places(mine, "h2"))
    assert not verdict.allowed and verdict.reason == "Preempting"
    evictions = admission.take_evictions()
    assert len(evictions) == 1 and evictions[0][1] == "pod:team-a/a"
    victim = evictions[0][0].key
    # asked again while the victim terminates: waits, no second victim
    verdict = admission.admit(group_of("pod:team-a/a", mine), places(mine, "h2"))
    assert verdict.reason == "WaitingForVictims" and not admission.take_evictions()
    admission.release(victim)
    # someone else cannot take the room reserved for the preemptor
    other = [pod("sneak", 4, ns="team-b")]
    assert not admission.admit(group_of("pod:team-b/sneak", other), places(other, "h1")).allowed
    assert admission.admit(group_of("pod:team-a/a", mine), places(mine, "h2")).allowed
    admission.book.check_invariants()


def occupy_b(admission: QueueAdmission) -> None:
    pods = [pod("b-own", 4, ns="team-b")]
    assert admission.admit(group_of("pod:team-b/b-own", pods), places(pods, "h2")).allowed


def test_strict_fifo_and_ageing() -> None:
    admission, clock = make(strategy="StrictFIFO")
    occupy_b(admission)
    big = [pod("big", 6, created="2026-01-01T00:00:00Z")]
    assert not admission.admit(group_of("pod:team-a/big", big), places(big, "h1")).allowed
    small = [pod("small", 1, created="2026-01-01T00:00:05Z")]
    verdict = admission.admit(group_of("pod:team-a/small", small), places(small, "h1"))
    assert verdict.reason == "QueueOrder" and "waiting behind pod:team-a/big" in verdict.message

    admission, clock = make()  # BestEffortFIFO
    occupy_b(admission)
    assert not admission.admit(group_of("pod:team-a/big", big), places(big, "h1")).allowed
    assert admission.admit(group_of("pod:team-a/small", small), places(small, "h1")).allowed
    clock.advance(61)
    assert not admission.admit(group_of("pod:team-a/big", big), places(big, "h1")).allowed
    later = [pod("later", 1, created="2026-01-01T00:00:09Z")]
    verdict = admission.admit(group_of("pod:team-a/later", later), places(later, "h1"))
    assert verdict.reason == "QueueOrder" and "holds for pod:team-a/big" in verdict.message
    # a head larger than the queue may ever use holds no one back
    admission, clock = make(strategy="StrictFIFO")
    huge = [pod("huge", 9, created="2026-01-01T00:00:00Z")]
    assert "may use at most 8" in admission.admit(group_of("pod:team-a/huge", huge), places(huge, "h1")).message
    assert admission.admit(group_of("pod:team-a/small", small), places(small, "h1")).allowed


def test_stop_policy_hold() -> None:
    admission, _ = make(stop="Hold")
    pods = [pod("h", 1)]
    verdict = admission.admit(group_of("pod:team-a/h", pods), places(pods, "h1"))
    assert not verdict.allowed and verdict.reason == "QueueHeld"


def test_resync_books_running_pods_and_releases_finished() -> None:
    admission, clock = make()
    running = [pod("r0", 2, group="g", node="h1", phase="Running"), pod("r1", 2, group="g", node="h2", phase="Running")]
    admission.resync(running)
    assert admission.book.used("qa", ("h100", GPU)) == 4000
    clock.advance(100)
    finished = [dict(p, status={"phase": "Succeeded"}) for p in running]
    admission.resync(finished)
    assert not admission.book.admitted
    # a fresh admission whose binding is in flight is not released by a resync
    pods = [pod("n", 1)]
    assert admission.admit(group_of("pod:team-a/n", pods), places(pods, "h1")).allowed
    admission.resync([])
    assert "pod:team-a/n" in admission.book.admitted


def test_fair_share_yields_to_the_queue_further_below() -> None:
    clock = FakeClock()
    admission = QueueAdmission(clock, lambda node: {})
    admission.set_queues([queue_obj("x", nominal=0, namespaces=["x"]), queue_obj("y", nominal=0, namespaces=["y"]),
                          queue_obj("lender", nominal=10)])
    for i in range(3):
        pods = [pod(f"x{i}", 2, ns="x", queue="x")]
        assert admission.admit(group_of(f"pod:x/x{i}", pods), places(pods, "n")).allowed
    # y's head was denied a moment ago (the lender was full then) and waits for its retry
    y_pods = [pod("y0", 2, ns="y", queue="y")]
    admission.note_pending(Workload("pod:y/y0", "y"), "QuotaExceeded", "", {("default", GPU): 2000})
    x_more = [pod("x9", 2, ns="x", queue="x")]
    verdict = admission.admit(group_of("pod:x/x9", x_more), places(x_more, "n"))
    assert not verdict.allowed and verdict.reason == "FairShare" and 'queue "y"' in verdict.message
    assert admission.admit(group_of("pod:y/y0", y_pods), places(y_pods, "n")).allowed
    assert admission.admit(group_of("pod:x/x9", x_more), places(x_more, "n")).allowed
