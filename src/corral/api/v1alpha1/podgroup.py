"""``PodGroup`` (corral.dev/v1alpha1, namespaced): the unit of gang scheduling and admission.

Pods join a group with the label ``corral.dev/pod-group: <name>``. The scheduler places
a group in one decision: all ``minMember`` pods get nodes and devices, or none do. A group
whose pods are not all created yet waits. A bare pod (no label) is a group of one and
needs no PodGroup object.

``priorityClassName``/``priority`` give the group's priority (a pod's own priority wins
when set); ``queue`` names the corral ``Queue`` whose quota admits the group (the queues
issue). ``scheduleTimeoutSeconds`` bounds how long a group may wait before its status
says it timed out (it keeps waiting; the condition tells people).

Status is written by the scheduler: ``phase`` (Pending, Scheduled, Running, Succeeded,
Failed, Unschedulable), per-state pod counts and conditions (``Scheduled`` with reason
``Unschedulable`` and a message saying why, as pods carry ``PodScheduled``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from corral.api.meta import Condition, CorralObject, StrictModel
from corral.api.registry import Obj, PrinterColumn, ResourceType

POD_GROUP_LABEL = "corral.dev/pod-group"
"""The label by which a pod joins a PodGroup in its namespace."""

PodGroupPhase = Literal["Pending", "Scheduled", "Running", "Succeeded", "Failed", "Unschedulable"]


class PodGroupSpec(StrictModel):
    min_member: int = Field(default=1, ge=1, alias="minMember", description="Pods that must be placed together.")
    schedule_timeout_seconds: int | None = Field(
        default=None, ge=1, alias="scheduleTimeoutSeconds",
        description="How long the group may wait for placement before it is reported as timed out.",
    )
    priority_class_name: str | None = Field(default=None, alias="priorityClassName")
    priority: int | None = Field(default=None, description="Explicit priority; overrides priorityClassName.")
    queue: str | None = Field(default=None, description="The corral Queue that admits this group.")


class PodGroupStatus(StrictModel):
    phase: PodGroupPhase | None = None
    conditions: list[Condition] | None = None
    scheduled: int | None = Field(default=None, ge=0, description="Member pods bound to a node.")
    running: int | None = Field(default=None, ge=0)
    succeeded: int | None = Field(default=None, ge=0)
    failed: int | None = Field(default=None, ge=0)
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class PodGroup(CorralObject):
    """A gang of pods placed all-or-nothing."""

    api_version: Literal["corral.dev/v1alpha1"] = Field(default="corral.dev/v1alpha1", alias="apiVersion")
    kind: Literal["PodGroup"] = "PodGroup"
    spec: PodGroupSpec = Field(default_factory=PodGroupSpec)
    status: PodGroupStatus | None = None


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(obj: Obj) -> Obj:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def resource_type() -> ResourceType:
    return ResourceType(
        group="corral.dev",
        version="v1alpha1",
        kind="PodGroup",
        plural="podgroups",
        namespaced=True,
        model=PodGroup,
        short_names=("pg",),
        categories=("corral", "all"),
        strict=True,
        columns=(
            PrinterColumn("Min", "integer", lambda o: _spec(o).get("minMember", 1), json_path=".spec.minMember"),
            PrinterColumn("Phase", "string", lambda o: _status(o).get("phase", "Pending"), json_path=".status.phase"),
            PrinterColumn("Scheduled", "integer", lambda o: _status(o).get("scheduled", 0),
                          json_path=".status.scheduled"),
            PrinterColumn("Running", "integer", lambda o: _status(o).get("running", 0), json_path=".status.running"),
            PrinterColumn("Queue", "string", lambda o: _spec(o).get("queue") or "", priority=1,
                          json_path=".spec.queue"),
            PrinterColumn("Priority", "integer", lambda o: _spec(o).get("priority") or 0, priority=1,
                          json_path=".spec.priority"),
        ),
    )
