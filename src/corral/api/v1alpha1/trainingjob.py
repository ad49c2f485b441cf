"""``TrainingJob`` (corral.dev/v1alpha1): distributed training as one gang of worker pods.

A TrainingJob names a pod template and how many workers run it — a fixed ``replicas`` or an
elastic range ``minReplicas``..``maxReplicas`` — and the controller turns it into one
PodGroup (the unit of queueing and gang scheduling) and one pod per worker, wired for
``torch.distributed`` (``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``…).

Policies on the spec:

- ``restartPolicy``: ``RestartGang`` (a failed worker restarts the whole gang from the last
  checkpoint, at most ``backoffLimit`` times, waiting ``backoff`` between attempts) or
  ``Never`` (the first failure fails the job).
- ``successPolicy``: ``AllWorkers`` (every worker exits 0) or ``RankZero`` (rank 0 exits 0).
- ``activeDeadlineSeconds``, ``ttlSecondsAfterFinished``, ``suspend`` as in a batch/v1 Job.
- ``checkpoint.dir``: a directory that survives restarts, exported as
  ``CORRAL_CHECKPOINT_DIR``; by default one per job under the controller's data dir.

Status carries the phase (Pending, Admitted, Running, Restarting, Succeeded, Failed,
Suspended), conditions, one entry per worker, the restart and failure counts, the world
size, and start/admission/completion times. The model is strict: unknown fields are an
error naming the field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from corral.api.columns import age_column
from corral.api.meta import Condition, CorralObject, StrictModel
from corral.api.registry import Obj, PrinterColumn, ResourceType

GROUP = "corral.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TrainingJob"
PLURAL = "trainingjobs"

PHASES = ("Pending", "Admitted", "Running", "Restarting", "Succeeded", "Failed", "Suspended")
Phase = Literal["Pending", "Admitted", "Running", "Restarting", "Succeeded", "Failed", "Suspended"]


class Backoff(StrictModel):
    """Exponential wait between gang restarts: ``initialSeconds * 2**(n-1)``, capped."""

    initial_seconds: float = Field(default=1.0, alias="initialSeconds", ge=0)
    max_seconds: float = Field(default=60.0, alias="maxSeconds", ge=0)


class Checkpoint(StrictModel):
    """Where the workers keep checkpoints (``CORRAL_CHECKPOINT_DIR``)."""

    dir: str | None = None


class TrainingJobSpec(StrictModel):
    replicas: int | None = Field(default=None, ge=1)
    min_replicas: int | None = Field(default=None, alias="minReplicas", ge=1)
    max_replicas: int | None = Field(default=None, alias="maxReplicas", ge=1)
    template: dict[str, Any]
    queue: str | None = None
    priority_class_name: str | None = Field(default=None, alias="priorityClassName")
    priority: int | None = None
    restart_policy: Literal["RestartGang", "Never"] = Field(default="RestartGang", alias="restartPolicy")
    backoff_limit: int = Field(default=3, alias="backoffLimit", ge=0)
    backoff: Backoff = Field(default_factory=Backoff)
    active_deadline_seconds: int | None = Field(default=None, alias="activeDeadlineSeconds", ge=1)
    ttl_seconds_after_finished: int | None = Field(default=None, alias="ttlSecondsAfterFinished", ge=0)
    suspend: bool = False
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    success_policy: Literal["AllWorkers", "RankZero"] = Field(default="AllWorkers", alias="successPolicy")
    master_port: int | None = Field(default=None, alias="masterPort", ge=1, le=65535)
    nproc_per_node: int | None = Field(default=None, alias="nprocPerNode", ge=1)
    schedule_timeout_seconds: int | None = Field(default=None, alias="scheduleTimeoutSeconds", ge=1)

    @field_validator("template")
    @classmethod
    def _template_has_containers(cls, template: dict[str, Any]) -> dict[str, Any]:
        spec = template.get("spec")
        if not isinstance(spec, dict):
            raise ValueError("spec.template.spec is required (a pod spec)")
        containers = spec.get("containers")
        if not isinstance(containers, list) or not containers:
            raise ValueError("spec.template.spec.containers must list at least one container")
        for index, container in enumerate(containers):
            if not isinstance(container, dict) or not container.get("name"):
                raise ValueError(f"spec.template.spec.containers[{index}].name is required")
        extra = set(template) - {"metadata", "spec"}
        if extra:
            raise ValueError(f"spec.template: unknown field(s) {sorted(extra)}; a pod template has metadata and spec")
        return template

    @model_validator(mode="after")
    def _replicas_or_range(self) -> TrainingJobSpec:
        elastic = self.min_replicas is not None or self.max_replicas is not None
        if elastic and self.replicas is not None:
            raise ValueError("spec.replicas and spec.minReplicas/maxReplicas are exclusive: give one or the other")
        if elastic:
            if self.min_replicas is None or self.max_replicas is None:
                raise ValueError("spec.minReplicas and spec.maxReplicas must be given together for an elastic job")
            if self.max_replicas < self.min_replicas:
                raise ValueError(
                    f"spec.maxReplicas ({self.max_replicas}) must be >= spec.minReplicas ({self.min_replicas})"
                )
        return self


class ReplicaStatus(StrictModel):
    index: int
    pod: str
    uid: str | None = None
    phase: str = "Pending"
    node: str | None = None
    pod_ip: str | None = Field(default=None, alias="podIP")
    exit_code: int | None = Field(default=None, alias="exitCode")
    reason: str | None = None


class TrainingJobStatus(StrictModel):
    phase: Phase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    replicas: list[ReplicaStatus] = Field(default_factory=list)
    world_size: int | None = Field(default=None, alias="worldSize")
    attempt: int = 0
    created_attempt: int | None = Field(default=None, alias="createdAttempt")
    restarts: int = 0
    failures: int = 0
    preemptions: int = 0
    last_restart_reason: str | None = Field(default=None, alias="lastRestartReason")
    last_restart_time: str | None = Field(default=None, alias="lastRestartTime")
    create_time: str | None = Field(default=None, alias="createTime")
    admitted_time: str | None = Field(default=None, alias="admittedTime")
    start_time: str | None = Field(default=None, alias="startTime")
    running_since: str | None = Field(default=None, alias="runningSince")
    completion_time: str | None = Field(default=None, alias="completionTime")
    queue_wait_seconds: float | None = Field(default=None, alias="queueWaitSeconds")
    run_seconds: float = Field(default=0.0, alias="runSeconds")
    checkpoint_dir: str | None = Field(default=None, alias="checkpointDir")
    master_addr: str | None = Field(default=None, alias="masterAddr")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class TrainingJob(CorralObject):
    api_version: Literal["corral.dev/v1alpha1"] = Field(default="corral.dev/v1alpha1", alias="apiVersion")
    kind: Literal["TrainingJob"] = "TrainingJob"
    spec: TrainingJobSpec
    status: TrainingJobStatus | None = None


def _workers(obj: Obj) -> str:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    running = sum(1 for replica in status.get("replicas") or [] if replica.get("phase") == "Running")
    if spec.get("replicas") is not None:
        wanted = str(spec["replicas"])
    elif spec.get("minReplicas") is not None:
        wanted = f"{spec.get('minReplicas')}-{spec.get('maxReplicas')}"
    else:
        wanted = "1"
    return f"{running}/{wanted}"


def human_duration(seconds: float) -> str:
    """Kubernetes' short ages: ``42s``, ``5m10s``, ``3h``, ``2d``."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 600:
        return f"{seconds // 60}m{seconds % 60}s"
    if seconds < 3 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def resource_type() -> ResourceType:
    return ResourceType(
        group=GROUP,
        version=VERSION,
        kind=KIND,
        plural=PLURAL,
        singular="trainingjob",
        namespaced=True,
        model=TrainingJob,
        short_names=("tj",),
        categories=("all", "corral"),
        strict=True,
        columns=(
            PrinterColumn("Queue", "string", lambda obj: (obj.get("spec") or {}).get("queue") or "<default>",
                          json_path=".spec.queue"),
            PrinterColumn("Workers", "string", _workers),
            PrinterColumn("Phase", "string", lambda obj: (obj.get("status") or {}).get("phase") or "Pending",
                          json_path=".status.phase"),
            PrinterColumn("Restarts", "integer", lambda obj: (obj.get("status") or {}).get("restarts") or 0,
                          json_path=".status.restarts"),
            age_column(),
        ),
    )
