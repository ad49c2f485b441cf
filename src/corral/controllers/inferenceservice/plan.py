"""Pure decisions of the InferenceService controller.

Given snapshots — the service, its revisions, its pods, the gateway's
per-revision request/error counters, the time and the autoscaler's desired
replica count — these functions say which revision is stable and which is the
canary, how traffic splits, whether the canary is promoted or rolled back (and
why, in words), how many replicas each revision gets, and which pods to create
or delete. The reconciler applies the answer; the unit tests check it on plain
dicts.

Rollout rules (``spec.rollout``):

- The first revision becomes stable directly.
- A new revision with ``canaryTrafficPercent`` p (0 < p < 100) is a canary: it
  gets p % of traffic and at least one replica while the service runs.
  It is **promoted** after ``promoteAfterRequests`` requests, or after
  ``promoteAfterSeconds`` with at least ``minRequests``, with an error rate within
  ``maxErrorRate``. It is **rolled back** when its error rate exceeds
  ``maxErrorRate`` over at least ``minRequests`` requests (``ErrorRate``), when one
  of its replicas restarts ``maxRestarts`` times or fails (``CrashLoop``), or
  when it has no ready replica ``readyTimeoutSeconds`` after it started
  (``ReadinessTimeout``). A rolled-back revision is marked failed and never
  gets traffic again; the next template change makes a new revision.
- Without a canary percentage (or with 100) a new revision replaces the stable
  one as soon as it has a ready replica — and is rolled back by the same
  failure rules while it has none.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from corral.api.registry import Obj
from corral.api.v1alpha1.inferenceservice import (
    API_VERSION,
    REVISION_KIND,
    REVISION_LABEL,
    SERVICE_LABEL,
)
from corral.util.clock import format_timestamp, parse_timestamp


def template_hash(template: dict[str, Any]) -> str:
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def revision_number(revision: Obj) -> int:
    return int((revision.get("spec") or {}).get("number") or 0)


def revision_name(revision: Obj) -> str:
    return str((revision.get("metadata") or {}).get("name"))


def revision_failed(revision: Obj) -> bool:
    return bool((revision.get("status") or {}).get("failed"))


def owner_reference(obj: Obj) -> dict[str, Any]:
    metadata = obj.get("metadata") or {}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": metadata.get("name"),
            "uid": metadata.get("uid"), "controller": True, "blockOwnerDeletion": True}


def new_revision(service: Obj, number: int) -> Obj:
    metadata = service.get("metadata") or {}
    spec = service.get("spec") or {}
    template = spec.get("template") or {}
    name = str(metadata.get("name"))
    return {
        "apiVersion": API_VERSION,
        "kind": REVISION_KIND,
        "metadata": {
            "name": f"{name}-{number}",
            "namespace": metadata.get("namespace") or "default",
            "labels": {SERVICE_LABEL: name},
            "ownerReferences": [owner_reference(service)],
        },
        "spec": {"service": name, "number": number, "templateHash": template_hash(template), "template": template},
    }


# ---- pods ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodHealth:
    ready: bool
    terminating: bool
    finished: bool
    restarts: int
    crash_looping: bool
    ready_since: datetime | None = None


def pod_health(pod: Obj) -> PodHealth:
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = status.get("phase")
    ready_since = None
    ready = False
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            ready = phase == "Running" and bool(status.get("podIP"))
            if condition.get("lastTransitionTime"):
                ready_since = parse_timestamp(condition["lastTransitionTime"])
    restarts = 0
    crash = False
    for container in status.get("containerStatuses") or []:
        restarts = max(restarts, int(container.get("restartCount") or 0))
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            crash = True
    terminating = bool(metadata.get("deletionTimestamp"))
    return PodHealth(ready=ready and not terminating, terminating=terminating,
                     finished=phase in ("Succeeded", "Failed"), restarts=restarts, crash_looping=crash,
                     ready_since=ready_since)


def time_to_ready(pods: list[Obj]) -> float | None:
    """Mean creation-to-ready seconds of the pods that became ready (the measured cold start)."""
    total = 0.0
    count = 0
    for pod in pods:
        health = pod_health(pod)
        created = (pod.get("metadata") or {}).get("creationTimestamp")
        if health.ready and health.ready_since is not None and created:
            total += max(0.0, (health.ready_since - parse_timestamp(created)).total_seconds())
            count += 1
    return total / count if count else None


def start_up(pod: Obj, now: datetime) -> tuple[float, bool] | None:
    """How a replica pod's start-up ended, or None while it is still starting (pure).

    ``(Ready lastTransitionTime − creationTimestamp, True)`` once the pod is Ready;
    ``(now − creationTimestamp, False)`` when it is terminating or finished without having
    become ready (a censored observation: its time to ready is only known to be longer).
    """
    metadata = pod.get("metadata") or {}
    created_text = metadata.get("creationTimestamp")
    if not created_text:
        return None
    created = parse_timestamp(created_text)
    health = pod_health(pod)
    if health.ready_since is not None:
        return max(0.0, (health.ready_since - created).total_seconds()), True
    if health.terminating or health.finished:
        return max(0.0, (now - created).total_seconds()), False
    return None


def replica_pod(service: Obj, revision: Obj, suffix: str) -> Obj:
    """A replica pod of ``revision``: its template, labels, owner, a default readiness probe."""
    service_meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    template = json.loads(json.dumps((revision.get("spec") or {}).get("template") or {}))
    pod_meta = template.get("metadata") or {}
    pod_spec = template.get("spec") or {}
    name = str(service_meta.get("name"))
    labels = dict(pod_meta.get("labels") or {})
    labels[SERVICE_LABEL] = name
    labels[REVISION_LABEL] = revision_name(revision)
    if spec.get("queue"):
        labels.setdefault("corral.dev/queue", spec["queue"])
    if spec.get("priorityClassName") and not pod_spec.get("priorityClassName"):
        pod_spec["priorityClassName"] = spec["priorityClassName"]
    pod_spec.setdefault("restartPolicy", "Always")
    port = None
    for container in pod_spec.get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("containerPort"):
                port = int(declared["containerPort"])
                break
        if port is not None:
            if not container.get("readinessProbe"):
                container["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 1}
            env = list(container.get("env") or [])
            if not any(e.get("name") == "PORT" for e in env):
                env.append({"name": "PORT", "value": str(port)})
            container["env"] = env
            break
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{revision_name(revision)}-{suffix}",
            "namespace": service_meta.get("namespace") or "default",
            "labels": labels,
            "annotations": dict(pod_meta.get("annotations") or {}),
            "ownerReferences": [owner_reference(revision)],
        },
        "spec": pod_spec,
    }


@dataclass(frozen=True)
class PodChanges:
    create: int
    delete: tuple[str, ...]


def pod_changes(pods: list[Obj], desired: int, outstanding: dict[str, int] | None = None) -> PodChanges:
    """Create/delete to get ``desired`` live pods; finished pods are replaced.

    Surplus goes not-ready first, then the ready pods with the fewest requests in flight at
    the gateway (``outstanding``, by pod name), newest first among equals — so scale-down
    rarely cuts a request off.
    """
    load = outstanding or {}
    live: list[tuple[Obj, PodHealth]] = []
    delete: list[str] = []
    for pod in pods:
        health = pod_health(pod)
        if health.terminating:
            continue
        if health.finished:
            delete.append(str(pod["metadata"]["name"]))
            continue
        live.append((pod, health))
    surplus = len(live) - desired
    if surplus > 0:
        not_ready = [p for p, h in live if not h.ready]
        ready = [p for p, h in live if h.ready]
        ready.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
        ready.sort(key=lambda p: load.get(str(p["metadata"]["name"]), 0))  # stable: newest first among equals
        for pod in (not_ready + ready)[:surplus]:
            delete.append(str(pod["metadata"]["name"]))
    return PodChanges(create=max(0, -surplus), delete=tuple(delete))


# ---- rollout ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevisionCounters:
    requests: int = 0
    errors: int = 0


@dataclass
class RolloutPlan:
    stable: str | None
    canary: str | None
    latest: str | None
    traffic: list[dict[str, Any]]
    canary_since: str | None = None
    canary_baseline: dict[str, int] | None = None
    promoted: str | None = None
    rolled_back: dict[str, str] | None = None
    """``{"revision", "reason", "message"}`` when this step rolls a revision back."""
    waiting: str | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, reason, message)."""


def plan_rollout(
    service: Obj,
    revisions: list[Obj],
    pods_by_revision: dict[str, list[Obj]],
    counters: dict[str, RevisionCounters],
    now: datetime,
) -> RolloutPlan:
    spec = service.get("spec") or {}
    status = service.get("status") or {}
    rollout = spec.get("rollout") or {}
    max_error_rate = float(rollout.get("maxErrorRate", 0.1))
    min_requests = int(rollout.get("minRequests", 20))
    promote_requests = int(rollout.get("promoteAfterRequests", 100))
    promote_seconds = float(rollout.get("promoteAfterSeconds", 60.0))
    ready_timeout = float(rollout.get("readyTimeoutSeconds", 300.0))
    max_restarts = int(rollout.get("maxRestarts", 3))
    percent = spec.get("canaryTrafficPercent")

    by_name = {revision_name(r): r for r in revisions}
    current_hash = template_hash(spec.get("template") or {})
    latest_rev = next((r for r in sorted(revisions, key=revision_number, reverse=True)
                       if (r.get("spec") or {}).get("templateHash") == current_hash), None)
    latest = revision_name(latest_rev) if latest_rev is not None else None
    stable = status.get("stableRevision")
    if stable not in by_name or revision_failed(by_name[stable]):
        stable = None
    plan = RolloutPlan(stable=stable, canary=None, latest=latest, traffic=[])
    if latest is None:
        plan.traffic = [{"revision": stable, "percent": 100, "tag": "stable"}] if stable else []
        return plan
    if stable is None:
        if not revision_failed(by_name[latest]):
            # The first revision (or the only healthy one) is stable at once.
            plan.stable = latest
            plan.traffic = [{"revision": latest, "percent": 100, "tag": "stable"}]
        return plan
    if latest == stable or revision_failed(by_name[latest]):
        plan.traffic = [{"revision": stable, "percent": 100, "tag": "stable"}]
        return plan

    # A candidate: `latest` is not stable yet.
    since_text = status.get("canarySince") if status.get("canaryRevision") == latest else None
    since = parse_timestamp(since_text) if since_text else now
    plan.canary = latest
    plan.canary_since = format_timestamp(since)
    counter = counters.get(latest, RevisionCounters())
    baseline = status.get("canaryBaseline") if status.get("canaryRevision") == latest else None
    if not baseline or baseline.get("requests", 0) > counter.requests:
        baseline = {"requests": counter.requests, "errors": counter.errors}
    plan.canary_baseline = dict(baseline)
    requests = counter.requests - int(baseline.get("requests", 0))
    errors = counter.errors - int(baseline.get("errors", 0))
    elapsed = (now - since).total_seconds()
    pods = list(pods_by_revision.get(latest, []))
    healths = [pod_health(p) for p in pods]
    ready = sum(1 for h in healths if h.ready)

    def roll_back(reason: str, message: str) -> RolloutPlan:
        plan.rolled_back = {"revision": latest, "reason": reason, "message": message}
        plan.canary = None
        plan.canary_since = None
        plan.canary_baseline = None
        plan.traffic = [{"revision": stable, "percent": 100, "tag": "stable"}]
        plan.events.append(("Warning", "RolledBack", f"revision {latest} rolled back to {stable}: {message}"))
        return plan

    crashing = [h for h in healths if h.crash_looping or (max_restarts and h.restarts >= max_restarts)]
    failed = [p for p, h in zip(pods, healths, strict=True) if (p.get("status") or {}).get("phase") == "Failed"]
    if crashing:
        worst = max(h.restarts for h in crashing)
        return roll_back("CrashLoop", f"a replica restarted {worst} times (maxRestarts {max_restarts})")
    if failed:
        return roll_back("CrashLoop", f"replica {failed[0]['metadata']['name']} failed")
    if requests >= min_requests and errors / requests > max_error_rate:
        return roll_back("ErrorRate", f"{errors} of {requests} requests failed "
                                      f"({errors / requests:.0%} > maxErrorRate {max_error_rate:.0%})")
    created = [parse_timestamp(str(p["metadata"]["creationTimestamp"])) for p in pods
               if (p.get("metadata") or {}).get("creationTimestamp")]
    waited = (now - min(created)).total_seconds() if created else 0.0
    if ready == 0 and created and waited >= ready_timeout:
        return roll_back("ReadinessTimeout", f"no replica became ready within {ready_timeout:g}s")

    direct = percent is None or int(percent) >= 100
    if direct:
        if ready > 0:
            return _promote(plan, latest, stable, "it has a ready replica")
        plan.traffic = [{"revision": stable, "percent": 100, "tag": "stable"},
                        {"revision": latest, "percent": 0, "tag": "latest"}]
        plan.waiting = f"waiting for revision {latest} to become ready"
        return plan
    if requests >= promote_requests:
        return _promote(plan, latest, stable, f"{requests} requests served, {errors} failed")
    if elapsed >= promote_seconds and requests >= min_requests and ready > 0:
        return _promote(plan, latest, stable, f"healthy for {elapsed:.0f}s over {requests} requests")
    share = int(percent or 0)
    plan.traffic = [{"revision": stable, "percent": 100 - share, "tag": "stable"},
                    {"revision": latest, "percent": share, "tag": "canary"}]
    plan.waiting = f"canary {latest} at {share}%: {requests} requests, {errors} errors"
    return plan


def _promote(plan: RolloutPlan, latest: str, stable: str, why: str) -> RolloutPlan:
    plan.promoted = latest
    plan.stable = latest
    plan.canary = None
    plan.canary_since = None
    plan.canary_baseline = None
    plan.traffic = [{"revision": latest, "percent": 100, "tag": "stable"}]
    plan.events.append(("Normal", "Promoted", f"revision {latest} replaced {stable}: {why}"))
    return plan


def split_replicas(total: int, plan: RolloutPlan) -> dict[str, int]:
    """Replicas per revision: the canary gets its share (at least one while the service runs)."""
    out: dict[str, int] = {}
    if plan.canary is not None and plan.stable is not None:
        share = next((t["percent"] for t in plan.traffic if t["revision"] == plan.canary), 0)
        if total <= 0:
            return {plan.stable: 0, plan.canary: 0}
        canary = max(1, math.floor(total * share / 100 + 0.5))
        out[plan.canary] = canary
        out[plan.stable] = max(1, total - canary) if share < 100 else 0
        return out
    if plan.stable is not None:
        out[plan.stable] = max(0, total)
    return out
