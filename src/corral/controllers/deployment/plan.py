"""The Deployment controller's decisions, as a pure function of a snapshot.

``plan(deployment, replicasets, now)`` returns the ReplicaSets to create, adopt, release,
rescale or delete, the deployment's revision annotation and its status. It follows
kube-controller-manager's ``deployment`` package:

- Each pod template gets its own ReplicaSet ``<deployment>-<hash>``, where the hash (also the
  pods' ``pod-template-hash`` label, which keeps the sets' pods apart) is an FNV-1a hash of the
  template and ``status.collisionCount``. The ReplicaSet whose template equals the deployment's
  is the *new* one; its ``deployment.kubernetes.io/revision`` is one more than any other's
  (so a rollback to an old template gives that old set the newest revision, as in Kubernetes).
- **RollingUpdate** scales the new set up while the total stays within
  ``replicas + maxSurge`` and old sets down while the available pods stay at least
  ``replicas - maxUnavailable`` (percentages of ``replicas``: surge rounded up, unavailable
  down; both zero means one unavailable). Old sets' unhealthy pods go first. One step per
  reconcile: a scale-up waits for the next look before anything is scaled down.
- **Recreate** scales every old set to zero, waits until their pods are gone, then scales
  the new set up.
- ``spec.paused``: no new ReplicaSet and no rollout step; a changed ``replicas`` still resizes
  the newest set. Old sets at zero beyond ``revisionHistoryLimit`` are deleted, oldest first.
- Status: ``replicas`` (all sets' pods), ``updatedReplicas`` (the new set's), ``readyReplicas``,
  ``availableReplicas``, ``unavailableReplicas``, ``observedGeneration``, ``collisionCount``
  and the conditions ``kubectl rollout status`` reads — ``Available``
  (MinimumReplicasAvailable/Unavailable) and ``Progressing`` (NewReplicaSetCreated,
  FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded,
  DeploymentPaused, DeploymentResumed) with Kubernetes' messages.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from corral.api.registry import Obj
from corral.api.workloads import int_or_percent
from corral.controllers import podutil
from corral.util.clock import format_timestamp, parse_timestamp

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
# Annotations of the deployment that are not copied to its sets (Kubernetes' skipCopyAnnotation).
NOT_COPIED = frozenset({"kubectl.kubernetes.io/last-applied-configuration", REVISION, DESIRED_REPLICAS, MAX_REPLICAS,
                        "deployment.kubernetes.io/revision-history", "deprecated.deployment.rollback.to"})
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass
class Plan:
    create: Obj | None = None
    adopt: list[str] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    revision: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    requeue_after: float | None = None


def template_hash(template: Any, collision_count: int) -> str:
    """Kubernetes' ``ComputeHash``: FNV-1a (32 bits) of the template and the collision count,
    written with the alphabet of ``rand.SafeEncodeString`` (no vowels, no look-alikes)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(SAFE_ALPHABET[int(digit) % len(SAFE_ALPHABET)] for digit in str(value))


def _without_nulls(value: Any) -> Any:
    """``value`` without null members: Go reads a JSON null as the zero value, as it reads an
    absent field, so ``"creationTimestamp": null`` (what Go clients write for a template's zero
    time, e.g. ``kubectl rollout undo``) and no ``creationTimestamp`` are one template."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def without_hash(template: Any) -> Any:
    """The template with the ``pod-template-hash`` label and null members removed (to compare
    sets' templates as Kubernetes' ``EqualIgnoreHash`` compares Go structs)."""
    result = _without_nulls(template) if isinstance(template, dict) else {}
    labels = (result.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
        if not labels:
            result["metadata"].pop("labels")
    return result


def revision_of(rs: Obj) -> int:
    text = (podutil.metadata(rs).get("annotations") or {}).get(REVISION)
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


def spec_replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return int(value) if value is not None else 1


def _stat(rs: Obj, name: str) -> int:
    return int((rs.get("status") or {}).get(name) or 0)


def surge_and_unavailable(deployment: Obj) -> tuple[int, int]:
    """``maxSurge`` and ``maxUnavailable`` as counts (Kubernetes' ``ResolveFenceposts``)."""
    spec = deployment.get("spec") or {}
    rolling = ((spec.get("strategy") or {}).get("rollingUpdate")) or {}
    replicas = spec_replicas(deployment)
    surge = int_or_percent(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _sort_oldest_first(sets: list[Obj]) -> list[Obj]:
    return sorted(sets, key=lambda rs: (str(podutil.metadata(rs).get("creationTimestamp") or ""), podutil.name(rs)))


def new_replicaset(deployment: Obj, revision: int, collision_count: int, replicas: int) -> Obj:
    """The ReplicaSet for the deployment's current template."""
    spec = deployment.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    pod_hash = template_hash(template, collision_count)
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), HASH_LABEL: pod_hash}
    selector = copy.deepcopy(spec.get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
    surge, _ = surge_and_unavailable(deployment)
    annotations = {**copied_annotations(deployment), REVISION: str(revision),
                   DESIRED_REPLICAS: str(spec_replicas(deployment)), MAX_REPLICAS: str(spec_replicas(deployment) + surge)}
    name = f"{podutil.name(deployment)}-{pod_hash}"
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": podutil.metadata(deployment).get("namespace") or "default",
                     "labels": dict(meta["labels"]), "annotations": annotations,
                     "ownerReferences": [podutil.controller_reference(deployment)]},
        "spec": {"replicas": replicas, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                 "selector": selector, "template": template},
    }


def copied_annotations(deployment: Obj) -> dict[str, str]:
    """The deployment's annotations its new set carries too (``kubernetes.io/change-cause`` for
    ``kubectl rollout history``), kept in step as they change, as Kubernetes does."""
    annotations = podutil.metadata(deployment).get("annotations") or {}
    return {str(k): str(v) for k, v in annotations.items() if k not in NOT_COPIED}


def plan(deployment: Obj, replicasets: list[Obj], now: datetime) -> Plan:
    result = Plan()
    spec = deployment.get("spec") or {}
    meta = podutil.metadata(deployment)
    owned, adopt, release = podutil.claims(deployment, replicasets)
    result.adopt = [podutil.name(rs) for rs in adopt]
    result.release = [podutil.name(rs) for rs in release]
    sets = owned + adopt
    if meta.get("deletionTimestamp"):
        result.status = dict(deployment.get("status") or {})
        return result
    template = without_hash(spec.get("template"))
    new: Obj | None = next(
        (rs for rs in _sort_oldest_first(sets) if without_hash((rs.get("spec") or {}).get("template")) == template), None)
    olds = [rs for rs in sets if rs is not new]
    replicas = spec_replicas(deployment)
    old_status = deployment.get("status") or {}
    collisions = int(old_status.get("collisionCount") or 0)
    paused = bool(spec.get("paused"))
    max_old_revision = max((revision_of(rs) for rs in olds), default=0)
    # working copies: what the sets will look like after this plan
    scaled: dict[str, int] = {podutil.name(rs): int((rs.get("spec") or {}).get("replicas") or 0) for rs in sets}
    created = False
    strategy = (spec.get("strategy") or {}).get("type") or "RollingUpdate"

    if new is None and not paused:
        if strategy == "Recreate" and any(_stat(rs, "replicas") or scaled[podutil.name(rs)] for rs in olds):
            new_replicas = None  # created after the old pods are gone
        else:
            new_replicas = 0
            if strategy == "RollingUpdate":
                surge, _ = surge_and_unavailable(deployment)
                total = sum(scaled.values())
                new_replicas = replicas if not olds else max(0, min(replicas, replicas + surge - total))
            else:
                new_replicas = replicas
        if new_replicas is not None:
            candidate = new_replicaset(deployment, max_old_revision + 1, collisions, new_replicas)
            clash = next((rs for rs in replicasets if podutil.name(rs) == podutil.name(candidate)), None)
            if clash is not None:  # a set of that name with another template: hash again
                result.status = {**old_status, "collisionCount": collisions + 1}
                result.requeue_after = 0.0
                return result
            result.create = candidate
            new = candidate
            scaled[podutil.name(candidate)] = new_replicas
            created = True
    elif new is not None:
        wanted = copied_annotations(deployment)
        current = podutil.metadata(new).get("annotations") or {}
        stale_revision = not paused and revision_of(new) <= max_old_revision
        if stale_revision or any(current.get(k) != v for k, v in wanted.items()):
            updated = _copy_set(new)
            annotations = updated["metadata"].setdefault("annotations", {})
            annotations.update(wanted)
            if stale_revision:
                annotations[REVISION] = str(max_old_revision + 1)
            _mark(result, updated)

    new_name = podutil.name(new) if new is not None else None
    if paused:
        _scale_paused(deployment, new, olds, scaled)
    elif strategy == "Recreate":
        _recreate(deployment, new, olds, scaled)
    elif new is not None and not created:
        _rolling(deployment, new, olds, scaled)

    originals = {podutil.name(rs): rs for rs in sets}
    for set_name, want in scaled.items():
        rs = originals.get(set_name)
        if rs is None or int((rs.get("spec") or {}).get("replicas") or 0) == want:
            continue
        pending = [u for u in result.update if podutil.name(u) == set_name]
        updated = pending[0] if pending else _copy_set(rs)
        updated["spec"]["replicas"] = want
        annotations = updated["metadata"].setdefault("annotations", {})
        surge, _ = surge_and_unavailable(deployment)
        annotations[DESIRED_REPLICAS] = str(replicas)
        annotations[MAX_REPLICAS] = str(replicas + surge)
        _mark(result, updated)

    result.delete = _history_to_delete(deployment, olds, scaled)
    if new is not None:
        result.revision = str(max(revision_of(new), max_old_revision + 1 if created else revision_of(new)))
        for update in result.update:
            if podutil.name(update) == new_name:
                result.revision = str(revision_of(update))
    result.status, result.requeue_after = status(deployment, new if not created else None, olds, now,
                                                 created=created, new_name=new_name, collisions=collisions)
    return result


def _copy_set(rs: Obj) -> Obj:
    updated = copy.deepcopy(rs)
    updated.setdefault("metadata", {})
    updated.setdefault("spec", {})
    return updated


def _mark(result: Plan, updated: Obj) -> None:
    result.update = [u for u in result.update if podutil.name(u) != podutil.name(updated)] + [updated]


def _scale_paused(deployment: Obj, new: Obj | None, olds: list[Obj], scaled: dict[str, int]) -> None:
    """A paused deployment still follows ``replicas``: the newest set absorbs the difference."""
    candidates = [rs for rs in [new, *reversed(_sort_oldest_first(olds))] if rs is not None]
    active = [rs for rs in candidates if scaled[podutil.name(rs)] > 0] or candidates[:1]
    if not active:
        return
    difference = spec_replicas(deployment) - sum(scaled.values())
    target = podutil.name(active[0])
    scaled[target] = max(0, scaled[target] + difference)


def _recreate(deployment: Obj, new: Obj | None, olds: list[Obj], scaled: dict[str, int]) -> None:
    for rs in olds:
        scaled[podutil.name(rs)] = 0
    old_pods_running = any(_stat(rs, "replicas") for rs in olds)
    if new is not None and not old_pods_running:
        scaled[podutil.name(new)] = spec_replicas(deployment)


def _rolling(deployment: Obj, new: Obj, olds: list[Obj], scaled: dict[str, int]) -> None:
    """One RollingUpdate step (Kubernetes' ``rolloutRolling``)."""
    replicas = spec_replicas(deployment)
    surge, unavailable = surge_and_unavailable(deployment)
    new_name = podutil.name(new)
    current_new = scaled[new_name]
    if current_new > replicas:
        scaled[new_name] = replicas
    elif current_new < replicas:
        total = sum(scaled.values())
        room = replicas + surge - total
        if room > 0:
            scaled[new_name] = current_new + min(room, replicas - current_new)
            return  # one step: old sets shrink on a later look, once the new pods count
    old_total = sum(scaled[podutil.name(rs)] for rs in olds)
    if old_total == 0:
        return
    all_pods = sum(scaled.values())
    min_available = replicas - unavailable
    new_unavailable = scaled[new_name] - _stat(new, "availableReplicas")
    budget = all_pods - min_available - new_unavailable
    if budget <= 0:
        return
    ordered = _sort_oldest_first(olds)
    # first the old sets' pods that are not available anyway
    for rs in ordered:
        if budget <= 0:
            break
        set_name = podutil.name(rs)
        unhealthy = scaled[set_name] - _stat(rs, "availableReplicas")
        if unhealthy <= 0:
            continue
        cut = min(budget, unhealthy)
        scaled[set_name] -= cut
        budget -= cut
    # a set's pods above its (new) size are about to go: never count them as available
    available = sum(min(_stat(rs, "availableReplicas"), scaled[podutil.name(rs)]) for rs in [new, *olds])
    # then available old pods, while enough stay available
    removable = min(available - min_available, sum(scaled[podutil.name(rs)] for rs in olds))
    for rs in ordered:
        if removable <= 0:
            break
        set_name = podutil.name(rs)
        cut = min(scaled[set_name], removable)
        scaled[set_name] -= cut
        removable -= cut


def _history_to_delete(deployment: Obj, olds: list[Obj], scaled: dict[str, int]) -> list[str]:
    limit = (deployment.get("spec") or {}).get("revisionHistoryLimit")
    limit = 10 if limit is None else int(limit)
    idle = [rs for rs in olds if scaled[podutil.name(rs)] == 0 and _stat(rs, "replicas") == 0
            and not podutil.metadata(rs).get("deletionTimestamp")]
    excess = len(idle) - limit
    if excess <= 0:
        return []
    idle.sort(key=lambda rs: (revision_of(rs), str(podutil.metadata(rs).get("creationTimestamp") or "")))
    return [podutil.name(rs) for rs in idle[:excess]]


def status(deployment: Obj, new: Obj | None, olds: list[Obj], now: datetime, *, created: bool, new_name: str | None,
           collisions: int) -> tuple[dict[str, Any], float | None]:
    """Kubernetes' ``calculateStatus`` and the Available/Progressing conditions."""
    spec = deployment.get("spec") or {}
    replicas = spec_replicas(deployment)
    sets = [rs for rs in [new, *olds] if rs is not None]
    total = sum(_stat(rs, "replicas") for rs in sets)
    available = sum(_stat(rs, "availableReplicas") for rs in sets)
    updated = _stat(new, "replicas") if new is not None else 0
    old = deployment.get("status") or {}
    result: dict[str, Any] = {
        "observedGeneration": int(podutil.metadata(deployment).get("generation") or 0),
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": sum(_stat(rs, "readyReplicas") for rs in sets),
        "availableReplicas": available,
        "unavailableReplicas": max(sum(spec_replicas(rs) for rs in sets) - available, 0) if sets else replicas,
    }
    if collisions:
        result["collisionCount"] = collisions
    stamp = format_timestamp(now)
    conditions: list[dict[str, Any]] = [dict(c) for c in old.get("conditions") or [] if isinstance(c, dict)]
    _, unavailable = surge_and_unavailable(deployment)
    if available >= replicas - unavailable:
        conditions = podutil.set_condition(conditions, "Available", "True", "MinimumReplicasAvailable",
                                           "Deployment has minimum availability.", now=stamp, update_time=True)
    else:
        conditions = podutil.set_condition(conditions, "Available", "False", "MinimumReplicasUnavailable",
                                           "Deployment does not have minimum availability.", now=stamp, update_time=True)
    progressing = next((c for c in conditions if c.get("type") == "Progressing"), None)
    reason = (progressing or {}).get("reason")
    deadline = spec.get("progressDeadlineSeconds")
    complete = (new is not None and updated == replicas and total == replicas and available == replicas
                and _stat(new, "availableReplicas") == replicas)
    described = f'ReplicaSet "{new_name}"'

    def set_progressing(state: str, why: str, message: str) -> None:
        nonlocal conditions
        conditions = podutil.set_condition(conditions, "Progressing", state, why, message, now=stamp, update_time=True)

    if spec.get("paused"):
        if reason != "DeploymentPaused":
            set_progressing("Unknown", "DeploymentPaused", "Deployment is paused")
    elif reason == "DeploymentPaused":
        set_progressing("Unknown", "DeploymentResumed", "Deployment is resumed")
    elif created:
        set_progressing("True", "NewReplicaSetCreated", f"Created new replica set \"{new_name}\"")
    elif complete:
        if reason != "NewReplicaSetAvailable":
            set_progressing("True", "NewReplicaSetAvailable", f"{described} has successfully progressed.")
    elif _made_progress(old, result) or progressing is None:
        set_progressing("True", "ReplicaSetUpdated", f"{described} is progressing.")
    elif deadline is not None and reason not in ("NewReplicaSetAvailable", "ProgressDeadlineExceeded"):
        last = progressing.get("lastUpdateTime") or progressing.get("lastTransitionTime") or stamp
        expires = parse_timestamp(str(last)) + timedelta(seconds=int(deadline))
        if now >= expires:
            set_progressing("False", "ProgressDeadlineExceeded", f"{described} has timed out progressing.")
    requeue: float | None = None
    current = next((c for c in conditions if c.get("type") == "Progressing"), None) or {}
    if (not complete and deadline is not None and current.get("status") == "True"
            and current.get("reason") != "NewReplicaSetAvailable"):
        last = current.get("lastUpdateTime") or stamp
        requeue = max((parse_timestamp(str(last)) + timedelta(seconds=int(deadline)) - now).total_seconds(), 0) + 0.05
    result["conditions"] = conditions
    return result, requeue


def _made_progress(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Kubernetes' ``DeploymentProgressing``: more updated, ready or available pods, or fewer old ones."""
    old_old = int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
    new_old = int(new.get("replicas") or 0) - int(new.get("updatedReplicas") or 0)
    return (int(new.get("updatedReplicas") or 0) > int(old.get("updatedReplicas") or 0)
            or int(new.get("readyReplicas") or 0) > int(old.get("readyReplicas") or 0)
            or int(new.get("availableReplicas") or 0) > int(old.get("availableReplicas") or 0)
            or new_old < old_old)
