"""Pure facts about pods and groups that the live scheduler keys its work on.

- Which pods are ours: ``spec.schedulerName`` empty or ``corral`` (the API server
  defaults empty to ``corral``); pods naming another scheduler are left alone, so
  corral runs beside kube-scheduler.
- Which group a pod is in: label ``corral.dev/pod-group`` names a PodGroup in the pod's
  namespace; a pod without it is a group of one, keyed by the pod itself.
- A pod's priority: ``spec.priority`` when set, else its ``priorityClassName`` resolved
  through the PriorityClass objects, else the global-default class, else 0. A group's
  priority is its PodGroup's ``priority``/``priorityClassName`` when set, else the
  highest priority among its pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from corral.api.registry import Obj
from corral.api.v1alpha1.podgroup import POD_GROUP_LABEL, PodGroupSpec
from corral.util.clock import parse_timestamp

SCHEDULER_NAME = "corral"
GPU_DEVICES_ANNOTATION = "corral.dev/gpu-devices"


def meta(obj: Obj) -> dict[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def spec(obj: Obj) -> dict[str, Any]:
    value = obj.get("spec")
    return value if isinstance(value, dict) else {}


def status(obj: Obj) -> dict[str, Any]:
    value = obj.get("status")
    return value if isinstance(value, dict) else {}


def labels(obj: Obj) -> dict[str, Any]:
    """``metadata.labels``, or empty when it is missing or malformed (the parse of the pod says so)."""
    value = meta(obj).get("labels")
    return value if isinstance(value, dict) else {}


def obj_key(obj: Obj) -> str:
    """``namespace/name`` or ``name``, as informers key objects."""
    md = meta(obj)
    namespace = md.get("namespace")
    return f"{namespace}/{md.get('name')}" if namespace else str(md.get("name"))


def is_ours(pod: Obj, scheduler_name: str = SCHEDULER_NAME) -> bool:
    """Whether this scheduler is responsible for the pod (empty schedulerName counts as ours)."""
    name = spec(pod).get("schedulerName")
    return not name or name == scheduler_name


def is_terminal(pod: Obj) -> bool:
    return status(pod).get("phase") in ("Succeeded", "Failed")


def is_pending(pod: Obj, scheduler_name: str = SCHEDULER_NAME) -> bool:
    """Needs a node: ours, unbound, not terminating, not finished."""
    return (
        is_ours(pod, scheduler_name)
        and not spec(pod).get("nodeName")
        and not meta(pod).get("deletionTimestamp")
        and not is_terminal(pod)
    )


def holds_resources(pod: Obj) -> bool:
    """A bound pod that still occupies its node (not finished; terminating pods still hold)."""
    return bool(spec(pod).get("nodeName")) and not is_terminal(pod)


def group_name(pod: Obj) -> str | None:
    name = labels(pod).get(POD_GROUP_LABEL)
    return str(name) if name else None


def group_key(pod: Obj) -> str:
    """``group:ns/name`` for gang members, ``pod:ns/name`` for a bare pod (a group of one)."""
    md = meta(pod)
    namespace = md.get("namespace") or "default"
    name = group_name(pod)
    if name:
        return f"group:{namespace}/{name}"
    return f"pod:{namespace}/{md.get('name')}"


def split_group_key(key: str) -> tuple[str, str, str]:
    """``(kind, namespace, name)`` from a group key; kind is ``group`` or ``pod``."""
    kind, _, rest = key.partition(":")
    namespace, _, name = rest.partition("/")
    return kind, namespace, name


def creation_seconds(obj: Obj) -> float:
    stamp = meta(obj).get("creationTimestamp")
    if not stamp:
        return 0.0
    try:
        return parse_timestamp(str(stamp)).timestamp()
    except ValueError:
        return 0.0


def class_value(klass: Obj) -> int | None:
    """A PriorityClass's ``value``, or None when it is not a 32-bit integer (the class is then ignored)."""
    value = klass.get("value", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        return None
    return value


def class_priority(name: object, classes: Mapping[str, Obj]) -> int | None:
    """Priority of a PriorityClass by name; with no name, the global-default class (if any).

    Classes with a malformed ``value`` are never in ``classes`` (the scheduler ignores them on
    arrival); a name that is not a string names no class.
    """
    if name:
        found = classes.get(name) if isinstance(name, str) else None
        if found is not None:
            return class_value(found)
        return None
    for klass in classes.values():
        if klass.get("globalDefault"):
            return class_value(klass)
    return None


def pod_priority(pod: Obj, classes: Mapping[str, Obj]) -> int:
    value = spec(pod).get("priority")
    if isinstance(value, int):
        return value
    found = class_priority(spec(pod).get("priorityClassName"), classes)
    return found if found is not None else 0


def group_priority(group: Obj | None, pods: list[Obj], classes: Mapping[str, Obj]) -> int:
    if group is not None:
        gspec = spec(group)
        if isinstance(gspec.get("priority"), int):
            return int(gspec["priority"])
        if gspec.get("priorityClassName"):
            found = class_priority(gspec["priorityClassName"], classes)
            if found is not None:
                return found
    if not pods:
        return 0
    return max(pod_priority(p, classes) for p in pods)


def min_member(group: Obj | None) -> int:
    if group is None:
        return 1
    value = spec(group).get("minMember", 1)
    return int(value) if isinstance(value, int) and value >= 1 else 1


def podgroup_problem(group: Obj) -> str | None:
    """What is wrong with a PodGroup's spec (``spec.field: problem (value)``), or None.

    The API server validates PodGroups on write; this check is for objects it did not (stored
    by an older version, or a real cluster's CRD with a looser schema): the scheduler
    quarantines such a group rather than fail on it later.
    """
    raw = group.get("spec")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        return f"spec: expected an object, not {raw!r:.60}"
    try:
        PodGroupSpec.model_validate(raw)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"spec.{where}: {first['msg']} ({first.get('input')!r:.60})"
    return None
