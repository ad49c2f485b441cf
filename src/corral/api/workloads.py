"""The standard workload kinds: ``apps/v1`` Deployment and ReplicaSet, ``batch/v1`` Job.

Each kind is a lenient model (unknown fields round-trip, as for the core kinds), plus two
pure functions the API server calls on every write, as Kubernetes' registry strategies do:

- ``default_*`` fills in what Kubernetes defaults (a Deployment's RollingUpdate 25%/25%,
  ``revisionHistoryLimit`` 10, ``progressDeadlineSeconds`` 600; a Job's completions,
  parallelism, ``backoffLimit`` 6, ``completionMode`` and its generated selector);
- ``check_*`` returns the semantic problems the models cannot express, as
  ``(field, problem)`` pairs worded as Kubernetes words them (the selector must match
  the template's labels, counts are non-negative, a Job's template and selector are
  immutable, ...). ``old`` is the stored object on an update, ``None`` on a create.

The controllers live in ``corral.controllers.{replicaset,deployment,job}``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import Field

from corral.api import columns as c
from corral.api.core import KubeObject, PodSpec
from corral.api.meta import Condition, LabelSelector, LenientModel, ObjectMeta
from corral.api.registry import Obj, PrinterColumn, ResourceType
from corral.api.selectors import labels_match, selector_from_dict
from corral.api.v1alpha1.trainingjob import human_duration
from corral.util.clock import parse_timestamp

Problems = list[tuple[str, str]]

JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
MIN_GE_0 = "must be greater than or equal to 0"
_PERCENT = re.compile(r"^(\d+)%$")


class PodTemplateSpec(LenientModel):
    metadata: ObjectMeta | None = Field(default=None, description="Labels and annotations of the pods.")
    spec: PodSpec | None = Field(default=None, description="The pods' spec.")


class RollingUpdateDeployment(LenientModel):
    max_surge: int | str | None = Field(default=None, alias="maxSurge",
                                        description="Pods above replicas during an update (count or percentage, rounded up).")
    max_unavailable: int | str | None = Field(default=None, alias="maxUnavailable",
                                              description="Pods below replicas during an update (count or percentage, rounded down).")


class DeploymentStrategy(LenientModel):
    type: Literal["RollingUpdate", "Recreate"] | None = Field(default=None, description="RollingUpdate (default) or Recreate.")
    rolling_update: RollingUpdateDeployment | None = Field(default=None, alias="rollingUpdate")


class DeploymentSpec(LenientModel):
    replicas: int | None = Field(default=None, description="Desired pods (default 1).")
    selector: LabelSelector = Field(description="Which pods belong to the deployment; must match the template's labels.")
    template: PodTemplateSpec = Field(description="The pods to run.")
    strategy: DeploymentStrategy | None = None
    min_ready_seconds: int | None = Field(default=None, alias="minReadySeconds")
    revision_history_limit: int | None = Field(default=None, alias="revisionHistoryLimit")
    paused: bool | None = None
    progress_deadline_seconds: int | None = Field(default=None, alias="progressDeadlineSeconds")


class DeploymentStatus(LenientModel):
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    replicas: int | None = None
    updated_replicas: int | None = Field(default=None, alias="updatedReplicas")
    ready_replicas: int | None = Field(default=None, alias="readyReplicas")
    available_replicas: int | None = Field(default=None, alias="availableReplicas")
    unavailable_replicas: int | None = Field(default=None, alias="unavailableReplicas")
    collision_count: int | None = Field(default=None, alias="collisionCount")
    conditions: list[Condition] | None = None


class Deployment(KubeObject):
    """Declarative updates of a set of identical pods, through ReplicaSets."""

    spec: DeploymentSpec
    status: DeploymentStatus | None = None


class ReplicaSetSpec(LenientModel):
    replicas: int | None = Field(default=None, description="Desired pods (default 1).")
    selector: LabelSelector = Field(description="Which pods belong to the set; must match the template's labels.")
    template: PodTemplateSpec | None = None
    min_ready_seconds: int | None = Field(default=None, alias="minReadySeconds")


class ReplicaSetStatus(LenientModel):
    replicas: int | None = None
    fully_labeled_replicas: int | None = Field(default=None, alias="fullyLabeledReplicas")
    ready_replicas: int | None = Field(default=None, alias="readyReplicas")
    available_replicas: int | None = Field(default=None, alias="availableReplicas")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    conditions: list[Condition] | None = None


class ReplicaSet(KubeObject):
    """Keeps ``replicas`` pods matching its selector running."""

    spec: ReplicaSetSpec
    status: ReplicaSetStatus | None = None


class JobSpec(LenientModel):
    parallelism: int | None = Field(default=None, description="Pods running at once (default 1).")
    completions: int | None = Field(default=None, description="Successful pods needed (default 1).")
    completion_mode: Literal["NonIndexed", "Indexed"] | None = Field(default=None, alias="completionMode")
    backoff_limit: int | None = Field(default=None, alias="backoffLimit", description="Pod failures before the job fails (default 6).")
    active_deadline_seconds: int | None = Field(default=None, alias="activeDeadlineSeconds")
    ttl_seconds_after_finished: int | None = Field(default=None, alias="ttlSecondsAfterFinished")
    suspend: bool | None = None
    manual_selector: bool | None = Field(default=None, alias="manualSelector")
    selector: LabelSelector | None = None
    template: PodTemplateSpec = Field(description="The pods to run; restartPolicy must be Never or OnFailure.")


class JobStatus(LenientModel):
    active: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    ready: int | None = None
    terminating: int | None = None
    start_time: str | None = Field(default=None, alias="startTime")
    completion_time: str | None = Field(default=None, alias="completionTime")
    completed_indexes: str | None = Field(default=None, alias="completedIndexes")
    failed_indexes: str | None = Field(default=None, alias="failedIndexes")
    conditions: list[Condition] | None = None


class Job(KubeObject):
    """Runs pods until ``completions`` of them succeed."""

    spec: JobSpec
    status: JobStatus | None = None


# --- helpers ----------------------------------------------------------------------------------

def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _non_negative(spec: Obj, field: str, problems: Problems) -> None:
    value = _int(spec.get(field))
    if value is not None and value < 0:
        problems.append((f"spec.{field}", f"Invalid value: {value}: {MIN_GE_0}"))


def _selector_matches_template(spec: Obj, problems: Problems) -> None:
    selector = _dict(spec.get("selector"))
    labels = _dict(_dict(_dict(spec.get("template")).get("metadata")).get("labels"))
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        problems.append(("spec.selector", "Invalid value: {}: empty selector is invalid for deployment"))
        return
    try:
        requirements = selector_from_dict(selector)
    except (KeyError, TypeError):
        problems.append(("spec.selector", f"Invalid value: {_shown(selector)}: not a valid label selector"))
        return
    if not labels_match(requirements, {str(k): str(v) for k, v in labels.items()}):
        problems.append(("spec.template.metadata.labels",
                         f"Invalid value: {_shown(labels)}: selector does not match template labels"))


def _immutable(new: Obj, old: Obj | None, path: str, problems: Problems) -> None:
    if old is None:
        return
    parts = path.split(".")
    new_value: Any = new
    old_value: Any = old
    for part in parts:
        new_value, old_value = _dict(new_value).get(part), _dict(old_value).get(part)
    if new_value != old_value:
        problems.append((path, f"Invalid value: {_shown(new_value)}: field is immutable"))


def int_or_percent(value: int | str | None, total: int, *, round_up: bool) -> int:
    """``maxSurge``/``maxUnavailable`` as a count: percentages of ``total`` rounded as Kubernetes does
    (surge up, unavailable down)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    match = _PERCENT.match(value)
    if match is None:
        return int(value) if value.isdigit() else 0
    scaled = int(match.group(1)) * total
    return -(-scaled // 100) if round_up else scaled // 100


def _check_int_or_percent(value: Any, field: str, problems: Problems) -> None:
    if value is None:
        return
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            problems.append((field, f"Invalid value: {value}: {MIN_GE_0}"))
        return
    if not isinstance(value, str) or not (_PERCENT.match(value) or value.isdigit()):
        problems.append((field, f"Invalid value: {_shown(value)}: a valid percent string must be a numeric string "
                         "followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"))


def _default_template(template: Any, restart_policy: str | None) -> None:
    spec = _dict(template).get("spec")
    if isinstance(spec, dict):
        if restart_policy is not None:
            spec.setdefault("restartPolicy", restart_policy)
        spec.setdefault("terminationGracePeriodSeconds", 30)


# --- Deployment -------------------------------------------------------------------------------

def default_deployment(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxSurge", "25%")
                rolling.setdefault("maxUnavailable", "25%")
    _default_template(spec.get("template"), "Always")


def check_deployment(new: Obj, old: Obj | None) -> Problems:
    spec = _dict(new.get("spec"))
    problems: Problems = []
    for field in ("replicas", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        _non_negative(spec, field, problems)
    _selector_matches_template(spec, problems)
    strategy = _dict(spec.get("strategy"))
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type") == "Recreate" and rolling is not None:
        problems.append(("spec.strategy.rollingUpdate", "Forbidden: may not be specified when strategy `type` is 'Recreate'"))
    if isinstance(rolling, dict):
        surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
        _check_int_or_percent(surge, "spec.strategy.rollingUpdate.maxSurge", problems)
        _check_int_or_percent(unavailable, "spec.strategy.rollingUpdate.maxUnavailable", problems)
        if isinstance(unavailable, str) and _PERCENT.match(unavailable) and int(unavailable[:-1]) > 100:
            problems.append(("spec.strategy.rollingUpdate.maxUnavailable",
                             f"Invalid value: {_shown(unavailable)}: must not be greater than 100%"))
        if int_or_percent(surge, 100, round_up=True) == 0 and int_or_percent(unavailable, 100, round_up=True) == 0:
            problems.append(("spec.strategy.rollingUpdate.maxUnavailable",
                             f"Invalid value: {_shown(unavailable)}: may not be 0 when `maxSurge` is 0"))
    deadline, min_ready = _int(spec.get("progressDeadlineSeconds")), _int(spec.get("minReadySeconds")) or 0
    if deadline is not None and deadline <= min_ready:
        problems.append(("spec.progressDeadlineSeconds",
                         f"Invalid value: {deadline}: must be greater than minReadySeconds"))
    _immutable(new, old, "spec.selector", problems)
    return problems


# --- ReplicaSet -------------------------------------------------------------------------------

def default_replicaset(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        _default_template(spec.get("template"), "Always")


def check_replicaset(new: Obj, old: Obj | None) -> Problems:
    spec = _dict(new.get("spec"))
    problems: Problems = []
    for field in ("replicas", "minReadySeconds"):
        _non_negative(spec, field, problems)
    _selector_matches_template(spec, problems)
    _immutable(new, old, "spec.selector", problems)
    return problems


# --- Job --------------------------------------------------------------------------------------

def default_job(obj: Obj) -> None:
    """Kubernetes' Job defaults, and its generated selector (``batch.kubernetes.io/controller-uid``)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("completionMode", "NonIndexed")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("suspend", False)
    _default_template(spec.get("template"), None)
    metadata = _dict(obj.get("metadata"))
    uid, name = metadata.get("uid"), metadata.get("name")
    if spec.get("manualSelector") is True or not uid or spec.get("selector") is not None:
        return
    spec["selector"] = {"matchLabels": {JOB_UID_LABEL: uid}}
    template = spec.get("template")
    if isinstance(template, dict):
        template_meta = template.setdefault("metadata", {})
        if isinstance(template_meta, dict):
            labels = template_meta.get("labels")
            labels = labels if isinstance(labels, dict) else {}
            labels.update({LEGACY_JOB_UID_LABEL: uid, JOB_UID_LABEL: uid,
                           LEGACY_JOB_NAME_LABEL: name, JOB_NAME_LABEL: name})
            template_meta["labels"] = labels


def check_job(new: Obj, old: Obj | None) -> Problems:
    spec = _dict(new.get("spec"))
    problems: Problems = []
    for field in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
        _non_negative(spec, field, problems)
    deadline = _int(spec.get("activeDeadlineSeconds"))
    if deadline is not None and deadline <= 0:
        problems.append(("spec.activeDeadlineSeconds", f"Invalid value: {deadline}: must be greater than 0"))
    if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
        problems.append(("spec.completions", "Required value: when completion mode is Indexed"))
    restart = _dict(_dict(spec.get("template")).get("spec")).get("restartPolicy")
    if restart not in ("Never", "OnFailure"):
        problems.append(("spec.template.spec.restartPolicy",
                         f'Unsupported value: {_shown(restart)}: supported values: "OnFailure", "Never"'))
    if spec.get("manualSelector") is not True and old is None:
        uid = _dict(new.get("metadata")).get("uid")
        if _dict(spec.get("selector")) != {"matchLabels": {JOB_UID_LABEL: uid}}:
            problems.append(("spec.selector",
                             f"Invalid value: {_shown(spec.get('selector'))}: `selector` not auto-generated "
                             "(set spec.manualSelector: true to choose your own)"))
            return problems
    _selector_matches_template(spec, problems)
    for path in ("spec.selector", "spec.template", "spec.completionMode"):
        _immutable(new, old, path, problems)
    return problems


# --- table columns ----------------------------------------------------------------------------

def _get(obj: Obj, *path: str) -> Any:
    value: Any = obj
    for part in path:
        value = _dict(value).get(part)
    return value


def _containers(obj: Obj) -> list[dict[str, Any]]:
    return [x for x in _get(obj, "spec", "template", "spec", "containers") or [] if isinstance(x, dict)]


def _selector_text(obj: Obj) -> str:
    selector = _dict(_get(obj, "spec", "selector"))
    parts = [f"{k}={v}" for k, v in sorted(_dict(selector.get("matchLabels")).items())]
    for expression in selector.get("matchExpressions") or []:
        if isinstance(expression, dict):
            values = ",".join(str(v) for v in expression.get("values") or [])
            parts.append(f"{expression.get('key')} {str(expression.get('operator')).lower()} ({values})")
    return ",".join(parts) or "<none>"


def _wide_columns() -> tuple[PrinterColumn, ...]:
    return (
        PrinterColumn("Containers", "string", lambda o: ",".join(str(x.get("name")) for x in _containers(o)), priority=1),
        PrinterColumn("Images", "string", lambda o: ",".join(str(x.get("image")) for x in _containers(o)), priority=1),
        PrinterColumn("Selector", "string", _selector_text, priority=1),
    )


def _count(*path: str) -> Any:
    return lambda o: int(_get(o, *path) or 0)


def job_state(job: Obj) -> str:
    """What ``kubectl get jobs`` prints in STATUS."""
    conditions = {str(x.get("type")): x for x in _get(job, "status", "conditions") or [] if isinstance(x, dict)}
    for kind in ("Complete", "Failed", "Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _dict(conditions.get(kind)).get("status") == "True":
            return {"FailureTarget": "FailureTarget", "SuccessCriteriaMet": "SuccessCriteriaMet"}.get(kind, kind)
    return "Running"


def _job_completions(job: Obj) -> str:
    completions = _get(job, "spec", "completions")
    succeeded = int(_get(job, "status", "succeeded") or 0)
    return f"{succeeded}/{completions}" if completions is not None else f"{succeeded}/1 of {_get(job, 'spec', 'parallelism')}"


def _job_duration(job: Obj) -> str:
    start, end = _get(job, "status", "startTime"), _get(job, "status", "completionTime")
    if not start or not end:
        return ""
    return human_duration(int((parse_timestamp(end) - parse_timestamp(start)).total_seconds()))


def workload_kinds() -> list[ResourceType]:
    age = c.age_column()
    scaled = frozenset({"status", "scale"})
    return [
        ResourceType(
            group="apps", version="v1", kind="Deployment", plural="deployments", namespaced=True, model=Deployment,
            short_names=("deploy",), categories=("all",), subresources=scaled,
            columns=(
                PrinterColumn("Ready", "string",
                              lambda o: f"{int(_get(o, 'status', 'readyReplicas') or 0)}/{int(_get(o, 'spec', 'replicas') or 0)}"),
                PrinterColumn("Up-to-date", "integer", _count("status", "updatedReplicas")),
                PrinterColumn("Available", "integer", _count("status", "availableReplicas")),
                age, *_wide_columns(),
            ),
            default=default_deployment, check=check_deployment,
        ),
        ResourceType(
            group="apps", version="v1", kind="ReplicaSet", plural="replicasets", namespaced=True, model=ReplicaSet,
            short_names=("rs",), categories=("all",), subresources=scaled,
            columns=(
                PrinterColumn("Desired", "integer", _count("spec", "replicas")),
                PrinterColumn("Current", "integer", _count("status", "replicas")),
                PrinterColumn("Ready", "integer", _count("status", "readyReplicas")),
                age, *_wide_columns(),
            ),
            default=default_replicaset, check=check_replicaset,
        ),
        ResourceType(
            group="batch", version="v1", kind="Job", plural="jobs", namespaced=True, model=Job,
            categories=("all",), subresources=frozenset({"status"}),
            columns=(
                PrinterColumn("Status", "string", job_state),
                PrinterColumn("Completions", "string", _job_completions),
                PrinterColumn("Duration", "string", _job_duration),
                age, *_wide_columns(),
            ),
            default=default_job, check=check_job,
        ),
    ]
