"""Printer columns for the core kinds: the cells ``kubectl get`` shows.

Each function takes the object dict and returns a cell. Columns of type ``date``
return an RFC 3339 timestamp; the API server turns it into an age (``5m``) when it
builds the Table, as Kubernetes does for custom resources.
"""

from __future__ import annotations

from typing import Any

from corral.api.registry import Obj, PrinterColumn


def _get(obj: Obj, *path: str) -> Any:
    value: Any = obj
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def age_column() -> PrinterColumn:
    """The ``AGE`` column every kind shows last."""
    return PrinterColumn("Age", "date", lambda o: _get(o, "metadata", "creationTimestamp"),
                         description="Time since the object was created.", json_path=".metadata.creationTimestamp")


def field_column(name: str, *path: str, type: str = "string", priority: int = 0, description: str = "") -> PrinterColumn:
    """A column that shows one field, ``<none>`` when absent."""

    def value(obj: Obj) -> Any:
        found = _get(obj, *path)
        if found is None or found == "":
            return "<none>" if type == "string" else None
        return found

    return PrinterColumn(name, type, value, priority=priority, description=description)


def pod_ready(pod: Obj) -> str:
    containers = _get(pod, "spec", "containers") or []
    statuses = _get(pod, "status", "containerStatuses") or []
    ready = sum(1 for status in statuses if isinstance(status, dict) and status.get("ready"))
    return f"{ready}/{len(containers)}"


def pod_status(pod: Obj) -> str:
    """What ``kubectl get pods`` prints in STATUS: a waiting/terminated reason, the phase, or Terminating."""
    if _get(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    reason = _get(pod, "status", "reason")
    phase = _get(pod, "status", "phase") or "Pending"
    for status in _get(pod, "status", "containerStatuses") or []:
        state = status.get("state") or {} if isinstance(status, dict) else {}
        for key in ("waiting", "terminated"):
            detail = state.get(key)
            if isinstance(detail, dict) and detail.get("reason") and phase != "Succeeded":
                return str(detail["reason"])
    return str(reason or phase)


def pod_restarts(pod: Obj) -> int:
    return sum(int(s.get("restartCount") or 0) for s in _get(pod, "status", "containerStatuses") or [] if isinstance(s, dict))


def node_status(node: Obj) -> str:
    state = "Unknown"
    for condition in _get(node, "status", "conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            state = "Ready" if condition.get("status") == "True" else "NotReady"
    if _get(node, "spec", "unschedulable"):
        state += ",SchedulingDisabled"
    return state


def node_roles(node: Obj) -> str:
    labels = _get(node, "metadata", "labels") or {}
    roles = sorted(key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/"))
    return ",".join(role for role in roles if role) or "<none>"


def node_address(kind: str) -> Any:
    def value(node: Obj) -> str:
        for address in _get(node, "status", "addresses") or []:
            if isinstance(address, dict) and address.get("type") == kind:
                return str(address.get("address"))
        return "<none>"

    return value


def node_gpus(node: Obj) -> str:
    capacity = _get(node, "status", "capacity") or {}
    gpus = capacity.get("nvidia.com/gpu")
    migs = sum(int(v) for k, v in capacity.items() if k.startswith("nvidia.com/mig-") and str(v).isdigit())
    text = str(gpus) if gpus is not None else "0"
    return f"{text}+{migs}mig" if migs else text


def count_keys(*fields: str) -> Any:
    def value(obj: Obj) -> int:
        return sum(len(obj.get(field) or {}) for field in fields)

    return value


def service_ports(service: Obj) -> str:
    ports = []
    for port in _get(service, "spec", "ports") or []:
        if isinstance(port, dict):
            text = f"{port.get('port')}/{port.get('protocol') or 'TCP'}"
            if port.get("nodePort"):
                text = f"{port.get('port')}:{port['nodePort']}/{port.get('protocol') or 'TCP'}"
            ports.append(text)
    return ",".join(ports) or "<none>"


def service_selector(service: Obj) -> str:
    selector = _get(service, "spec", "selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


def event_object(event: Obj) -> str:
    involved = event.get("involvedObject") or {}
    return f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}"


def event_last_seen(event: Obj) -> Any:
    return event.get("lastTimestamp") or event.get("eventTime") or _get(event, "metadata", "creationTimestamp")
