"""Kinds' own semantic checks, and the ``scale`` subresource (``autoscaling/v1`` Scale).

``check_semantics`` runs a kind's ``ResourceType.check`` after its model validated the
object and turns the problems into one 422 Invalid naming every field, as Kubernetes'
registry strategies do.

The Scale object is a view of a Deployment or ReplicaSet: ``spec.replicas`` is the
owner's, ``status.replicas`` what its controller last counted, ``status.selector`` its
selector as a string. Writing a Scale (PUT, or any PATCH type applied to the Scale)
writes only ``spec.replicas`` of the owner, with the Scale's ``resourceVersion`` as a
precondition when it carries one — how ``kubectl scale`` and autoscalers resize.
"""

from __future__ import annotations

from typing import Any

from corral.api.registry import Obj, ResourceType
from corral.apiserver.errors import invalid


def check_semantics(rt: ResourceType, new: Obj, old: Obj | None) -> None:
    """Raise 422 Invalid with every problem ``rt.check`` finds in ``new``."""
    if rt.check is None:
        return
    problems = rt.check(new, old)
    if problems:
        raise invalid(rt.kind, str((new.get("metadata") or {}).get("name") or ""), problems, rt.group)


def selector_text(selector: Any) -> str:
    """A LabelSelector as the string a Scale's ``status.selector`` carries."""
    if not isinstance(selector, dict):
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        operator = str(expression.get("operator"))
        key = str(expression.get("key"))
        values = ",".join(sorted(str(v) for v in expression.get("values") or []))
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}.get(operator, key))
    return ",".join(parts)


def scale_of(obj: Obj) -> Obj:
    """The ``autoscaling/v1`` Scale of a scalable object."""
    metadata = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {key: metadata[key] for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if key in metadata},
        "spec": {"replicas": int(spec.get("replicas") or 0)},
        "status": {"replicas": int(status.get("replicas") or 0), "selector": selector_text(spec.get("selector"))},
    }


def replicas_of_scale(rt: ResourceType, name: str, scale: Any) -> int:
    """``spec.replicas`` of a Scale a client sent; 422 naming the field when it is not a count."""
    replicas = ((scale.get("spec") if isinstance(scale, dict) else None) or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise invalid("Scale", name, [("spec.replicas", f"Invalid value: {replicas!r}: must be an integer")], "autoscaling")
    if replicas < 0:
        raise invalid("Scale", name, [("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")],
                      "autoscaling")
    return replicas
