"""The InferenceService controller's pure decisions: revisions, rollouts, replica split, pod choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from corral.controllers.inferenceservice.plan import (
    RevisionCounters,
    new_revision,
    plan_rollout,
    pod_changes,
    replica_pod,
    split_replicas,
    template_hash,
)
from corral.util.clock import format_timestamp

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T1 = {"spec": {"containers": [{"name": "s", "ports": [{"containerPort": 8080}]}]}}
T2 = {"spec": {"containers": [{"name": "s", "ports": [{"containerPort": 8080}], "args": ["v2"]}]}}


def service(template, status=None, **spec):
    return {"apiVersion": "corral.dev/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": "m", "namespace": "default", "uid": "u1"},
            "spec": {"template": template, **spec}, "status": status or {}}


def revision(number, template, failed=False):
    rev = new_revision(service(template), number)
    if failed:
        rev["status"] = {"failed": True}
    return rev


def pod(name, *, ready=True, restarts=0, created=NOW, phase="Running", waiting=None):
    status = {"phase": phase, "podIP": "127.0.0.2",
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
              "containerStatuses": [{"name": "s", "restartCount": restarts,
                                     "state": {"waiting": {"reason": waiting}} if waiting else {"running": {}}}]}
    return {"metadata": {"name": name, "creationTimestamp": format_timestamp(created)}, "status": status}


def test_revisions_are_named_numbered_owned_and_hashed() -> None:
    rev = new_revision(service(T1), 3)
    assert rev["metadata"]["name"] == "m-3"
    assert rev["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert rev["spec"]["templateHash"] == template_hash(T1) != template_hash(T2)
    created = replica_pod(service(T1, queue="q1"), rev, "abcde")
    labels = created["metadata"]["labels"]
    assert labels == {"corral.dev/inference-service": "m", "corral.dev/revision": "m-3", "corral.dev/queue": "q1"}
    assert created["metadata"]["ownerReferences"][0]["kind"] == "InferenceRevision"
    container = created["spec"]["containers"][0]
    assert container["readinessProbe"] == {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    assert {"name": "PORT", "value": "8080"} in container["env"]


def test_first_revision_is_stable_at_once() -> None:
    plan = plan_rollout(service(T1), [revision(1, T1)], {}, {}, NOW)
    assert plan.stable == "m-1" and plan.canary is None
    assert plan.traffic == [{"revision": "m-1", "percent": 100, "tag": "stable"}]


def test_canary_gets_its_share_and_is_promoted_after_enough_healthy_requests() -> None:
    svc = service(T2, {"stableRevision": "m-1"}, canaryTrafficPercent=20,
                  rollout={"promoteAfterRequests": 50, "minRequests": 10})
    revs = [revision(1, T1), revision(2, T2)]
    plan = plan_rollout(svc, revs, {"m-2": [pod("m-2-a")]}, {"m-2": RevisionCounters(5, 0)}, NOW)
    assert plan.canary == "m-2"
    assert {t["revision"]: t["percent"] for t in plan.traffic} == {"m-1": 80, "m-2": 20}
    assert split_replicas(4, plan) == {"m-2": 1, "m-1": 3}
    assert split_replicas(0, plan) == {"m-1": 0, "m-2": 0}
    svc["status"].update({"canaryRevision": "m-2", "canarySince": plan.canary_since,
                          "canaryBaseline": plan.canary_baseline})
    later = plan_rollout(svc, revs, {"m-2": [pod("m-2-a")]}, {"m-2": RevisionCounters(60, 1)}, NOW)
    assert later.promoted == "m-2" and later.stable == "m-2"
    assert later.events[0][1] == "Promoted"


def test_canary_rollbacks_say_why() -> None:
    base = {"stableRevision": "m-1", "canaryRevision": "m-2", "canarySince": format_timestamp(NOW),
            "canaryBaseline": {"requests": 0, "errors": 0}}
    svc = service(T2, base, canaryTrafficPercent=20,
                  rollout={"maxErrorRate": 0.1, "minRequests": 10, "readyTimeoutSeconds": 30, "maxRestarts": 3})
    revs = [revision(1, T1), revision(2, T2)]
    errors = plan_rollout(svc, revs, {"m-2": [pod("a")]}, {"m-2": RevisionCounters(20, 5)}, NOW)
    assert errors.rolled_back["reason"] == "ErrorRate" and "5 of 20" in errors.rolled_back["message"]
    assert errors.traffic == [{"revision": "m-1", "percent": 100, "tag": "stable"}]
    few = plan_rollout(svc, revs, {"m-2": [pod("a")]}, {"m-2": RevisionCounters(5, 5)}, NOW)
    assert few.rolled_back is None  # fewer than minRequests: no verdict yet
    crash = plan_rollout(svc, revs, {"m-2": [pod("a", ready=False, restarts=3)]}, {}, NOW)
    assert crash.rolled_back["reason"] == "CrashLoop"
    backoff = plan_rollout(svc, revs, {"m-2": [pod("a", ready=False, waiting="CrashLoopBackOff")]}, {}, NOW)
    assert backoff.rolled_back["reason"] == "CrashLoop"
    old = NOW - timedelta(seconds=31)
    slow = plan_rollout(svc, revs, {"m-2": [pod("a", ready=False, created=old)]}, {}, NOW)
    assert slow.rolled_back["reason"] == "ReadinessTimeout"
    waiting = plan_rollout(svc, revs, {"m-2": [pod("a", ready=False, created=NOW)]}, {}, NOW)
    assert waiting.rolled_back is None
    # A failed revision never gets traffic again.
    failed = plan_rollout(svc, [revision(1, T1), revision(2, T2, failed=True)], {}, {}, NOW)
    assert failed.canary is None and failed.traffic == [{"revision": "m-1", "percent": 100, "tag": "stable"}]


def test_without_canary_percent_the_new_revision_replaces_stable_once_ready() -> None:
    svc = service(T2, {"stableRevision": "m-1"})
    revs = [revision(1, T1), revision(2, T2)]
    starting = plan_rollout(svc, revs, {"m-2": [pod("a", ready=False)]}, {}, NOW)
    assert starting.canary == "m-2" and starting.promoted is None
    assert split_replicas(2, starting) == {"m-2": 1, "m-1": 1}
    ready = plan_rollout(svc, revs, {"m-2": [pod("a")]}, {}, NOW)
    assert ready.promoted == "m-2"


def test_scale_down_removes_not_ready_then_idle_replicas_first() -> None:
    pods = [pod("busy-old", created=NOW - timedelta(minutes=5)), pod("idle-new", created=NOW),
            pod("idle-old", created=NOW - timedelta(minutes=9)), pod("starting", ready=False)]
    changes = pod_changes(pods, 2, {"busy-old": 3, "idle-new": 0, "idle-old": 0})
    assert changes.delete == ("starting", "idle-new")
    changes = pod_changes(pods, 1, {"busy-old": 3})
    assert changes.delete == ("starting", "idle-new", "idle-old")
    assert pod_changes([pod("done", phase="Succeeded")], 1).create == 1


@given(live=st.integers(0, 12), desired=st.integers(0, 12))
def test_pod_changes_reach_the_desired_count(live: int, desired: int) -> None:
    pods = [pod(f"p{i}", ready=i % 3 != 0) for i in range(live)]
    changes = pod_changes(pods, desired)
    assert live - len(changes.delete) + changes.create == desired
    assert len(set(changes.delete)) == len(changes.delete)
