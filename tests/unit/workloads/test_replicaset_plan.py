"""The ReplicaSet plan: create/delete to match replicas, adoption, release, deletion order, status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from corral.api.workloads import check_replicaset, default_replicaset
from corral.controllers.podutil import claimant_keys
from corral.controllers.podutil.apply import merge_difference
from corral.controllers.replicaset.plan import plan, with_create_failure
from corral.util.clock import format_timestamp
from tests.unit.workloads.sim import World

Obj = dict[str, Any]


def replicaset(replicas: int = 3, **spec: Any) -> Obj:
    obj: Obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 2},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web", "tier": "f"}},
                                      "spec": {"containers": [{"name": "c", "image": "i"}]}}, **spec}}
    default_replicaset(obj)
    return obj


def test_creates_named_owned_pods_from_the_template() -> None:
    world, rs = World(), replicaset(3)
    world.sync_set(rs)
    assert len(world.pods) == 3
    for pod in world.pods.values():
        assert pod["metadata"]["name"].startswith("web-abc-")
        assert pod["metadata"]["labels"] == {"app": "web", "tier": "f"}
        reference = pod["metadata"]["ownerReferences"][0]
        assert (reference["kind"], reference["uid"], reference["controller"]) == ("ReplicaSet", "rs-uid", True)
    world.sync_set(rs)
    assert rs["status"] == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 0, "availableReplicas": 0,
                            "observedGeneration": 2}


def test_scale_down_deletes_unscheduled_and_not_ready_pods_first() -> None:
    world, rs = World(), replicaset(3)
    world.sync_set(rs)
    names = sorted(world.pods)
    world.ready(names[0])
    world.pods[names[1]]["spec"]["nodeName"] = "n"  # scheduled, not ready
    rs["spec"]["replicas"] = 1
    todo = plan(rs, list(world.pods.values()), world.now)
    assert todo.delete == [names[2], names[1]]


def test_adopts_matching_orphans_and_releases_pods_that_stopped_matching() -> None:
    rs = replicaset(2)
    orphan = {"metadata": {"name": "orphan", "labels": {"app": "web"}}, "spec": {}, "status": {"phase": "Running"}}
    strayed = {"metadata": {"name": "strayed", "labels": {"app": "other"},
                            "ownerReferences": [{"uid": "rs-uid", "controller": True, "kind": "ReplicaSet"}]},
               "spec": {}, "status": {"phase": "Running"}}
    todo = plan(rs, [orphan, strayed], World().now)
    assert todo.adopt == ["orphan"]
    assert todo.release == ["strayed"]
    assert len(todo.create) == 1  # the adopted orphan counts
    assert todo.status["fullyLabeledReplicas"] == 0  # the orphan lacks tier=f


def test_min_ready_seconds_delays_availability_and_asks_for_a_requeue() -> None:
    world, rs = World(), replicaset(1, minReadySeconds=10)
    world.sync_set(rs)
    world.ready(next(iter(world.pods)))
    world.tick(4)
    todo = plan(rs, list(world.pods.values()), world.now)
    assert todo.status["readyReplicas"] == 1 and todo.status["availableReplicas"] == 0
    assert todo.requeue_after is not None and 5.9 < todo.requeue_after < 6.2
    assert plan(rs, list(world.pods.values()), world.now + timedelta(seconds=7)).status["availableReplicas"] == 1


def test_finished_and_terminating_pods_are_replaced() -> None:
    world, rs = World(), replicaset(2)
    world.sync_set(rs)
    first, second = sorted(world.pods)
    world.finish(first, "Failed")
    world.pods[second]["metadata"]["deletionTimestamp"] = format_timestamp(world.now)
    assert len(plan(rs, list(world.pods.values()), world.now).create) == 2


def test_validation_selector_must_match_template_and_replicas_non_negative() -> None:
    bad = replicaset(-1)
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "db"}
    assert dict(check_replicaset(bad, None)) == {
        "spec.replicas": "Invalid value: -1: must be greater than or equal to 0",
        "spec.template.metadata.labels": 'Invalid value: {"app":"db"}: selector does not match template labels',
    }
    moved = replicaset()
    moved["spec"]["selector"] = {"matchLabels": {"tier": "f"}}
    assert [f for f, _ in check_replicaset(moved, replicaset())] == ["spec.selector"]


def test_replica_failure_condition_comes_and_goes() -> None:
    now = World().now
    failing = with_create_failure({"replicas": 0}, 'Error creating: pods "x" is forbidden', now)
    (condition,) = failing["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("ReplicaFailure", "True", "FailedCreate")
    assert with_create_failure(failing, None, now) == {"replicas": 0}


def test_orphans_wake_the_sets_whose_selector_matches_and_owned_pods_their_owner() -> None:
    sets = [replicaset(), {**replicaset(), "metadata": {"name": "db", "namespace": "default"},
                           "spec": {"selector": {"matchLabels": {"app": "db"}}}},
            {**replicaset(), "metadata": {"name": "web-other-ns", "namespace": "team"}}]
    orphan = {"metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}}}
    assert claimant_keys(orphan, "ReplicaSet", sets) == ["default/web-abc"]
    owned = {"metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"},
                          "ownerReferences": [{"kind": "ReplicaSet", "name": "mine", "controller": True}]}}
    assert claimant_keys(owned, "ReplicaSet", sets) == ["default/mine"]
    by_job = {"metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"},
                           "ownerReferences": [{"kind": "Job", "name": "j", "controller": True}]}}
    assert claimant_keys(by_job, "ReplicaSet", sets) == []


def test_merge_difference_removes_with_null_and_replaces_lists() -> None:
    old = {"replicas": 2, "conditions": [{"type": "ReplicaFailure"}], "nested": {"a": 1, "b": 2}}
    new = {"replicas": 3, "nested": {"a": 1, "c": 3}}
    assert merge_difference(old, new) == {"replicas": 3, "conditions": None, "nested": {"b": None, "c": 3}}
    assert merge_difference(old, old) == {}
