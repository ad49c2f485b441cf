"""What the workload controllers (ReplicaSet, Deployment, Job) ask of pods and owners.

Pure functions over object dicts: whether a pod is active, ready, available (ready for
``minReadySeconds``), who controls an object, the ``ownerReference`` a controller puts on
what it creates, and a pod made from a template. They follow Kubernetes' ``controller_utils``
so the controllers count pods as kube-controller-manager does.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from corral.api.registry import Obj
from corral.api.selectors import labels_match, selector_from_dict
from corral.util.clock import parse_timestamp

FINISHED_PHASES = ("Succeeded", "Failed")


def metadata(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def uid(obj: Obj) -> str:
    return str(metadata(obj).get("uid") or "")


def name(obj: Obj) -> str:
    return str(metadata(obj).get("name") or "")


def is_terminating(pod: Obj) -> bool:
    return bool(metadata(pod).get("deletionTimestamp"))


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_active(pod: Obj) -> bool:
    """Counts toward a controller's replicas: not finished and not being deleted."""
    return phase(pod) not in FINISHED_PHASES and not is_terminating(pod)


def _ready_condition(pod: Obj) -> dict[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return condition
    return None


def is_ready(pod: Obj) -> bool:
    condition = _ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def ready_for(pod: Obj, now: datetime) -> float | None:
    """Seconds the pod has been ready, or ``None`` when it is not ready."""
    condition = _ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return None
    since = condition.get("lastTransitionTime")
    if not since:
        return float("inf")
    return (now - parse_timestamp(str(since))).total_seconds()


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least ``min_ready_seconds`` (Kubernetes' ``IsPodAvailable``)."""
    seconds = ready_for(pod, now)
    return seconds is not None and (min_ready_seconds <= 0 or seconds >= min_ready_seconds)


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: datetime) -> float | None:
    """When a ready pod that is not yet available becomes so (for a requeue), else ``None``."""
    seconds = ready_for(pod, now)
    if seconds is None or min_ready_seconds <= 0 or seconds >= min_ready_seconds:
        return None
    return min_ready_seconds - seconds


def restarts(pod: Obj) -> int:
    return sum(int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or []
               if isinstance(s, dict))


def controller_of(obj: Obj) -> dict[str, Any] | None:
    """The ``ownerReference`` with ``controller: true``, if any."""
    for reference in metadata(obj).get("ownerReferences") or []:
        if isinstance(reference, dict) and reference.get("controller"):
            return reference
    return None


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    reference = controller_of(obj)
    return reference is not None and reference.get("uid") == uid(owner)


def controller_reference(owner: Obj) -> dict[str, Any]:
    """The reference a controller puts on what it creates or adopts."""
    return {"apiVersion": owner.get("apiVersion"), "kind": owner.get("kind"), "name": name(owner), "uid": uid(owner),
            "controller": True, "blockOwnerDeletion": True}


def selector_matches(selector: Any, obj: Obj) -> bool:
    """Whether ``obj``'s labels match a LabelSelector dict; an empty selector matches nothing."""
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    try:
        requirements = selector_from_dict(selector)
    except (KeyError, TypeError):
        return False
    return labels_match(requirements, metadata(obj).get("labels") or {})


def claims(owner: Obj, objects: list[Obj]) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """Split ``objects`` as Kubernetes' ``ClaimPods`` does: (owned and matching, orphans to adopt,
    owned but no longer matching, to release). Objects being deleted are never adopted."""
    selector = (owner.get("spec") or {}).get("selector")
    owned: list[Obj] = []
    adopt: list[Obj] = []
    release: list[Obj] = []
    for obj in objects:
        reference = controller_of(obj)
        matches = selector_matches(selector, obj)
        if reference is not None:
            if reference.get("uid") != uid(owner):
                continue
            (owned if matches else release).append(obj)
        elif matches and not is_terminating(obj) and not metadata(owner).get("deletionTimestamp"):
            adopt.append(obj)
    return owned, adopt, release


def claimant_keys(obj: Obj, owner_kind: str, candidates: list[Obj]) -> list[str]:
    """Which controllers to wake for a change of ``obj``: its controller when it has one of kind
    ``owner_kind``; when it has no controller, every candidate in its namespace whose selector
    matches it (an orphan to adopt, as Kubernetes' ``getPodReplicaSets`` finds them)."""
    namespace = metadata(obj).get("namespace")
    reference = controller_of(obj)
    if reference is not None:
        return [f"{namespace}/{reference['name']}"] if reference.get("kind") == owner_kind else []
    return [f"{namespace}/{name(owner)}" for owner in candidates
            if metadata(owner).get("namespace") == namespace
            and selector_matches((owner.get("spec") or {}).get("selector"), obj)]


def pod_from_template(template: Any, owner: Obj, *, generate_name: str = "", pod_name: str = "",
                      labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> Obj:
    """A pod of ``owner`` made from its pod template (Kubernetes' ``GetPodFromTemplate``)."""
    template = template if isinstance(template, dict) else {}
    template_meta = template.get("metadata") or {}
    meta: dict[str, Any] = {
        "namespace": metadata(owner).get("namespace") or "default",
        "labels": {**(template_meta.get("labels") or {}), **(labels or {})},
        "annotations": {**(template_meta.get("annotations") or {}), **(annotations or {})},
        "ownerReferences": [controller_reference(owner)],
    }
    if pod_name:
        meta["name"] = pod_name
    else:
        meta["generateName"] = generate_name
    if template_meta.get("finalizers"):
        meta["finalizers"] = list(template_meta["finalizers"])
    if not meta["annotations"]:
        del meta["annotations"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


def condition(obj: Obj, kind: str) -> dict[str, Any] | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(item, dict) and item.get("type") == kind:
            return item
    return None


def set_condition(conditions: list[dict[str, Any]], kind: str, status: str, reason: str, message: str, *,
                  now: str, update_time: bool = False) -> list[dict[str, Any]]:
    """``conditions`` with ``kind`` set; ``lastTransitionTime`` changes only when the status does
    (``lastUpdateTime``/``lastProbeTime``, for kinds that have them, when ``update_time``)."""
    result = [dict(c) for c in conditions if c.get("type") != kind]
    old = next((c for c in conditions if c.get("type") == kind), None)
    new: dict[str, Any] = {"type": kind, "status": status, "reason": reason, "message": message}
    same = old is not None and old.get("status") == status
    new["lastTransitionTime"] = old.get("lastTransitionTime") if same and old is not None else now
    if update_time:
        unchanged = same and old is not None and old.get("reason") == reason and old.get("message") == message
        new["lastUpdateTime"] = old.get("lastUpdateTime", now) if unchanged and old is not None else now
    result.append(new)
    return result
