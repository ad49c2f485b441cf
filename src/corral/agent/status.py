"""Pod status as a pure function of the pod and what the runtime observed.

The pod worker keeps a :class:`PodRuntime` (one :class:`ContainerRuntime` per
init container and container); :func:`pod_status` turns it, together with the
pod's spec and previous status, into the ``status`` the agent writes. Phases and
conditions follow Kubernetes:

- ``Pending`` until every init container has succeeded and every container has
  been started once; ``Running`` while at least one container runs or will be
  restarted; ``Succeeded`` when all containers exited 0 and none will restart;
  ``Failed`` when all have exited, one failed, and none will restart (or an init
  container failed under ``restartPolicy: Never``).
- Conditions ``PodScheduled``, ``Initialized``, ``ContainersReady``, ``Ready``;
  a condition keeps its ``lastTransitionTime`` from the previous status unless
  its value changes, so timestamps are when things actually changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from corral.util.clock import format_timestamp

if TYPE_CHECKING:  # the runtime core stays free of pydantic (the GPU check runs it bare)
    from corral.api.registry import Obj

State = Literal["waiting", "running", "terminated"]


@dataclass
class Termination:
    exit_code: int
    reason: str
    started_at: datetime | None
    finished_at: datetime
    signal: int | None = None
    message: str | None = None
    container_id: str = ""


@dataclass
class ContainerRuntime:
    """What the worker knows about one container (init or regular)."""

    name: str
    image: str = ""
    state: State = "waiting"
    reason: str = "ContainerCreating"
    message: str | None = None
    started_at: datetime | None = None
    pid: int | None = None
    container_id: str = ""
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    last: Termination | None = None  # the current termination when state == "terminated"
    previous: Termination | None = None  # the termination before the current run (lastState)


@dataclass
class PodRuntime:
    pod_ip: str = ""
    host_ip: str = "127.0.0.1"
    start_time: datetime | None = None
    init: list[ContainerRuntime] = field(default_factory=list)
    containers: list[ContainerRuntime] = field(default_factory=list)
    initialized_at: datetime | None = None
    init_failed: bool = False
    message: str | None = None
    reason: str | None = None


def will_restart(policy: str, exit_code: int) -> bool:
    """Whether a container that exited with ``exit_code`` is restarted under ``policy``."""
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    return False


def _state_json(container: ContainerRuntime) -> dict[str, Any]:
    if container.state == "running":
        return {"running": {"startedAt": _ts(container.started_at)}}
    if container.state == "terminated" and container.last is not None:
        return {"terminated": _termination_json(container.last)}
    waiting: dict[str, Any] = {"reason": container.reason}
    if container.message:
        waiting["message"] = container.message
    return {"waiting": waiting}


def _termination_json(term: Termination) -> dict[str, Any]:
    out: dict[str, Any] = {"exitCode": term.exit_code, "reason": term.reason,
                           "finishedAt": format_timestamp(term.finished_at)}
    if term.started_at is not None:
        out["startedAt"] = format_timestamp(term.started_at)
    if term.signal is not None:
        out["signal"] = term.signal
    if term.message:
        out["message"] = term.message
    if term.container_id:
        out["containerID"] = term.container_id
    return out


def _ts(moment: datetime | None) -> str | None:
    return format_timestamp(moment) if moment is not None else None


def container_status_json(container: ContainerRuntime) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": container.name,
        "image": container.image,
        "imageID": "",
        "ready": container.ready,
        "restartCount": container.restart_count,
        "started": container.state == "running" and container.started,
        "state": _state_json(container),
        "lastState": {"terminated": _termination_json(container.previous)} if container.previous else {},
    }
    if container.container_id:
        status["containerID"] = container.container_id
    return status


def pod_phase(restart_policy: str, runtime: PodRuntime) -> str:
    if runtime.init_failed:
        return "Failed"
    if runtime.initialized_at is None:
        return "Pending"
    containers = runtime.containers
    if not containers:
        return "Succeeded"
    if any(c.state == "waiting" and c.restart_count == 0 and c.last is None and c.previous is None
           for c in containers):
        return "Pending"
    if any(c.state == "running" for c in containers):
        return "Running"
    if any(c.state == "waiting" for c in containers):
        return "Running"  # crashed and waiting to be restarted
    # every container is terminated
    codes = [c.last.exit_code if c.last else 0 for c in containers]
    if any(will_restart(restart_policy, code) for code in codes):
        return "Running"
    return "Failed" if any(code != 0 for code in codes) else "Succeeded"


def _condition(previous: dict[str, dict[str, Any]], kind: str, value: bool, now: datetime, *,
               reason: str | None = None, since: datetime | None = None) -> dict[str, Any]:
    text = "True" if value else "False"
    old = previous.get(kind)
    if old is not None and old.get("status") == text and old.get("lastTransitionTime"):
        transition = old["lastTransitionTime"]
    else:
        transition = format_timestamp(since or now)
    condition: dict[str, Any] = {"type": kind, "status": text, "lastProbeTime": None,
                                 "lastTransitionTime": transition}
    if reason and not value:
        condition["reason"] = reason
    return condition


def pod_status(pod: Obj, runtime: PodRuntime, now: datetime) -> Obj:
    """The full ``status`` of ``pod`` from the runtime's observations (pure)."""
    spec = pod.get("spec", {})
    old_status = pod.get("status") or {}
    restart_policy = spec.get("restartPolicy", "Always")
    previous: dict[str, dict[str, Any]] = {str(c.get("type")): c for c in old_status.get("conditions") or [] if isinstance(c, dict)}
    phase = pod_phase(restart_policy, runtime)
    initialized = runtime.initialized_at is not None
    containers_ready = bool(runtime.containers) and all(c.ready for c in runtime.containers)
    if phase == "Succeeded":
        containers_ready = False
    not_ready_reason = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
    scheduled_at = previous.get("PodScheduled", {}).get("lastTransitionTime")
    conditions = [
        _condition(previous, "PodScheduled", True, now),
        _condition(previous, "Initialized", initialized, now,
                   reason="ContainersNotInitialized", since=runtime.initialized_at),
        _condition(previous, "ContainersReady", containers_ready, now, reason=not_ready_reason),
        _condition(previous, "Ready", containers_ready, now, reason=not_ready_reason),
    ]
    if scheduled_at:
        conditions[0]["lastTransitionTime"] = scheduled_at
    for kept in previous.values():  # conditions owned by others (DisruptionTarget, gates) survive
        if kept.get("type") not in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            conditions.append(kept)
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": runtime.host_ip,
        "hostIPs": [{"ip": runtime.host_ip}],
        "podIP": runtime.pod_ip or None,
        "podIPs": [{"ip": runtime.pod_ip}] if runtime.pod_ip else [],
        "startTime": _ts(runtime.start_time),
        "containerStatuses": [container_status_json(c) for c in runtime.containers],
        "qosClass": qos_class(spec),
    }
    if runtime.init:
        status["initContainerStatuses"] = [container_status_json(c) for c in runtime.init]
    if runtime.reason:
        status["reason"] = runtime.reason
    if runtime.message:
        status["message"] = runtime.message
    for key in ("nominatedNodeName",):
        if key in old_status:
            status[key] = old_status[key]
    return status


def qos_class(spec: dict[str, Any]) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        if limits or requests:
            any_set = True
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits.get(name)) != limits.get(name):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
