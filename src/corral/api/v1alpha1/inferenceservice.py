"""``InferenceService`` and ``InferenceRevision`` (corral.dev/v1alpha1): model servers behind the gateway.

An InferenceService names a pod template with one serving port, a replica range
(``minReplicas`` may be 0: scale to zero), how to autoscale (policy, metric,
target, windows, grace, rates), how to roll out a new template (as a canary
with ``canaryTrafficPercent``, promoted after ``rollout.promoteAfter*`` healthy
requests/seconds, rolled back on readiness failure, crash loops or
``rollout.maxErrorRate``), where the gateway routes it (``route``: host, path
prefix, OpenAI ``model``) and the gateway's limits for it (``gateway``).

Every template change makes a new, immutable ``InferenceRevision`` (named
``<service>-<n>``, owned by the service); replicas are pods labelled
``corral.dev/inference-service`` and ``corral.dev/revision`` and owned by their
revision. Status carries the URL, the traffic split, each revision's replicas,
conditions and — after a rollback — which revision failed and why.

Both models are strict: unknown fields are an error naming the field.
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
KIND = "InferenceService"
PLURAL = "inferenceservices"
REVISION_KIND = "InferenceRevision"
REVISION_PLURAL = "inferencerevisions"
SERVICE_LABEL = "corral.dev/inference-service"
REVISION_LABEL = "corral.dev/revision"


class Autoscaling(StrictModel):
    policy: Literal["predictive", "kpa", "hpa"] = Field(
        default="predictive", description="predictive (corral's, queue-aware), kpa (Knative) or hpa (ratio).")
    metric: Literal["concurrency", "rps"] = "concurrency"
    target: float = Field(default=1.0, gt=0, description="Per-replica concurrent requests (or requests/s).")
    target_utilization_percent: float = Field(default=70.0, gt=0, le=100, alias="targetUtilizationPercent")
    stable_window_seconds: float = Field(default=60.0, gt=0, alias="stableWindowSeconds")
    panic_window_seconds: float = Field(default=6.0, gt=0, alias="panicWindowSeconds")
    panic_threshold_percent: float = Field(default=200.0, gt=100, alias="panicThresholdPercent")
    scale_to_zero_grace_period_seconds: float = Field(default=30.0, ge=0, alias="scaleToZeroGracePeriodSeconds")
    max_scale_up_rate: float = Field(default=1000.0, gt=1, alias="maxScaleUpRate")
    max_scale_down_rate: float = Field(default=2.0, gt=1, alias="maxScaleDownRate")
    queue_wait_seconds: float = Field(
        default=10.0, ge=0, alias="queueWaitSeconds",
        description="predictive: how long a request may wait at the gateway for a replica (latency objective).")
    miss_cost_seconds: float = Field(
        default=120.0, ge=0, alias="missCostSeconds",
        description="predictive: replica-seconds one request waiting longer than queueWaitSeconds is worth.")
    max_hedged_starts: int = Field(
        default=4, ge=1, le=16, alias="maxHedgedStarts",
        description="predictive: at most this many replicas started at once for a request that waits with no "
                    "replica free, when measured start-up times vary (the first ready serves; 1 = no hedging).")

    @model_validator(mode="after")
    def _windows(self) -> Autoscaling:
        if self.panic_window_seconds > self.stable_window_seconds:
            raise ValueError("spec.autoscaling.panicWindowSeconds must not exceed stableWindowSeconds")
        return self


class Rollout(StrictModel):
    max_error_rate: float = Field(default=0.1, ge=0, le=1, alias="maxErrorRate",
                                  description="A canary whose 5xx share exceeds this is rolled back.")
    min_requests: int = Field(default=20, ge=1, alias="minRequests",
                              description="Requests a canary must have seen before its error rate counts.")
    promote_after_requests: int = Field(default=100, ge=1, alias="promoteAfterRequests")
    promote_after_seconds: float = Field(default=60.0, ge=0, alias="promoteAfterSeconds",
                                         description="Healthy time (with minRequests served) that also promotes.")
    ready_timeout_seconds: float = Field(default=300.0, gt=0, alias="readyTimeoutSeconds",
                                         description="A canary without a ready replica after this is rolled back.")
    max_restarts: int = Field(default=3, ge=0, alias="maxRestarts",
                              description="Container restarts of one canary replica that count as a crash loop.")


class Route(StrictModel):
    host: str | None = None
    path_prefix: str | None = Field(default=None, alias="pathPrefix",
                                    description="Default /v1/models/<name>; must start with '/'.")
    model: str | None = Field(default=None, description="Match OpenAI-style requests by their body's model field.")
    strip_prefix: bool = Field(default=False, alias="stripPrefix")

    @field_validator("path_prefix")
    @classmethod
    def _slash(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("spec.route.pathPrefix must start with '/'")
        if value is not None and value.startswith("/_corral/"):
            raise ValueError("spec.route.pathPrefix: /_corral/ is reserved for the gateway")
        return value


class GatewayOptions(StrictModel):
    timeout_seconds: float = Field(default=300.0, gt=0, alias="timeoutSeconds")
    max_queued_requests: int = Field(default=1000, ge=0, alias="maxQueuedRequests")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1, alias="maxBodyBytes")
    container_concurrency: int = Field(default=0, ge=0, alias="containerConcurrency",
                                       description="Requests one replica takes at once (0 = no limit).")
    activation_timeout_seconds: float = Field(default=300.0, gt=0, alias="activationTimeoutSeconds")
    idempotent_post: bool = Field(default=False, alias="idempotentPost",
                                  description="Retry POSTs on another replica after a connection failure.")


def _check_template(template: dict[str, Any]) -> dict[str, Any]:
    extra = set(template) - {"metadata", "spec"}
    if extra:
        raise ValueError(f"spec.template: unknown field(s) {sorted(extra)}; a pod template has metadata and spec")
    spec = template.get("spec")
    if not isinstance(spec, dict):
        raise ValueError("spec.template.spec is required (a pod spec)")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise ValueError("spec.template.spec.containers must list at least one container")
    ports = []
    for index, container in enumerate(containers):
        if not isinstance(container, dict) or not container.get("name"):
            raise ValueError(f"spec.template.spec.containers[{index}].name is required")
        for port in container.get("ports") or []:
            if isinstance(port, dict) and port.get("containerPort"):
                ports.append(port["containerPort"])
    if not ports:
        raise ValueError("spec.template.spec.containers[*].ports: declare the serving port (containerPort)")
    return template


class InferenceServiceSpec(StrictModel):
    template: dict[str, Any]
    min_replicas: int = Field(default=1, ge=0, alias="minReplicas")
    max_replicas: int = Field(default=10, ge=1, alias="maxReplicas")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    canary_traffic_percent: int | None = Field(
        default=None, ge=0, le=100, alias="canaryTrafficPercent",
        description="Share of traffic a new revision gets as a canary; unset or 100 rolls out directly.")
    rollout: Rollout = Field(default_factory=Rollout)
    route: Route = Field(default_factory=Route)
    gateway: GatewayOptions = Field(default_factory=GatewayOptions)
    queue: str | None = Field(default=None, description="The corral Queue that admits the replicas.")
    priority_class_name: str | None = Field(default=None, alias="priorityClassName")

    _template = field_validator("template")(classmethod(lambda cls, v: _check_template(v)))

    @model_validator(mode="after")
    def _range(self) -> InferenceServiceSpec:
        if self.max_replicas < max(1, self.min_replicas):
            raise ValueError(f"spec.maxReplicas ({self.max_replicas}) must be >= max(1, minReplicas "
                             f"({self.min_replicas}))")
        return self


class TrafficTarget(StrictModel):
    revision: str
    percent: int = Field(ge=0, le=100)
    tag: Literal["stable", "canary", "latest"] | None = None


class RevisionStatusEntry(StrictModel):
    name: str
    replicas: int = 0
    ready_replicas: int = Field(default=0, alias="readyReplicas")
    desired_replicas: int = Field(default=0, alias="desiredReplicas")
    failed: bool | None = None


class RollbackInfo(StrictModel):
    revision: str
    reason: str
    message: str
    time: str | None = None


class TrafficStats(StrictModel):
    """What the gateway saw over the autoscaler's last tick (for people and dashboards)."""

    requests_per_second: float = Field(default=0.0, alias="requestsPerSecond")
    mean_latency_ms: float | None = Field(default=None, alias="meanLatencyMs")
    in_flight: int = Field(default=0, alias="inFlight")
    window_seconds: float = Field(default=0.0, alias="windowSeconds")


class InferenceServiceStatus(StrictModel):
    url: str | None = None
    traffic_stats: TrafficStats | None = Field(default=None, alias="trafficStats")
    latest_revision: str | None = Field(default=None, alias="latestRevision")
    stable_revision: str | None = Field(default=None, alias="stableRevision")
    canary_revision: str | None = Field(default=None, alias="canaryRevision")
    canary_since: str | None = Field(default=None, alias="canarySince")
    canary_baseline: dict[str, int] | None = Field(default=None, alias="canaryBaseline")
    traffic: list[TrafficTarget] | None = None
    revisions: list[RevisionStatusEntry] | None = None
    replicas: int | None = None
    ready_replicas: int | None = Field(default=None, alias="readyReplicas")
    desired_replicas: int | None = Field(default=None, alias="desiredReplicas")
    autoscaler_reason: str | None = Field(default=None, alias="autoscalerReason")
    last_scale_time: str | None = Field(default=None, alias="lastScaleTime")
    rolled_back: RollbackInfo | None = Field(default=None, alias="rolledBack")
    conditions: list[Condition] | None = None
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class InferenceService(CorralObject):
    """A model server: replicas from a template, routed, autoscaled, rolled out as canaries."""

    api_version: Literal["corral.dev/v1alpha1"] = Field(default="corral.dev/v1alpha1", alias="apiVersion")
    kind: Literal["InferenceService"] = "InferenceService"
    spec: InferenceServiceSpec
    status: InferenceServiceStatus | None = None


class InferenceRevisionSpec(StrictModel):
    service: str
    number: int = Field(ge=1)
    template_hash: str = Field(alias="templateHash")
    template: dict[str, Any]


class InferenceRevisionStatus(StrictModel):
    replicas: int | None = None
    ready_replicas: int | None = Field(default=None, alias="readyReplicas")
    failed: bool | None = None
    failure_reason: str | None = Field(default=None, alias="failureReason")
    failure_message: str | None = Field(default=None, alias="failureMessage")
    conditions: list[Condition] | None = None


class InferenceRevision(CorralObject):
    """One immutable template of an InferenceService; its replica pods are owned by it."""

    api_version: Literal["corral.dev/v1alpha1"] = Field(default="corral.dev/v1alpha1", alias="apiVersion")
    kind: Literal["InferenceRevision"] = "InferenceRevision"
    spec: InferenceRevisionSpec
    status: InferenceRevisionStatus | None = None


def _status(obj: Obj) -> Obj:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _ready(obj: Obj) -> str:
    for condition in _status(obj).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status", "Unknown"))
    return "Unknown"


def _replicas(obj: Obj) -> str:
    """Ready replicas / replicas wanted over all revisions (a canary adds its own)."""
    status = _status(obj)
    revisions = status.get("revisions") or []
    wanted = sum(int(r.get("desiredReplicas") or 0) for r in revisions) if revisions else status.get(
        "desiredReplicas", 0)
    return f"{status.get('readyReplicas', 0)}/{wanted}"


def _canary(obj: Obj) -> int:
    for target in _status(obj).get("traffic") or []:
        if target.get("tag") == "canary":
            return int(target.get("percent") or 0)
    return 0


def resource_type() -> ResourceType:
    return ResourceType(
        group=GROUP,
        version=VERSION,
        kind=KIND,
        plural=PLURAL,
        singular="inferenceservice",
        namespaced=True,
        model=InferenceService,
        short_names=("isvc",),
        categories=("all", "corral"),
        strict=True,
        columns=(
            PrinterColumn("URL", "string", lambda obj: _status(obj).get("url") or "", json_path=".status.url"),
            PrinterColumn("Ready", "string", _ready),
            PrinterColumn("Replicas", "string", _replicas),
            PrinterColumn("Latest", "string", lambda obj: _status(obj).get("latestRevision") or "",
                          json_path=".status.latestRevision"),
            PrinterColumn("Canary%", "integer", _canary),
            age_column(),
        ),
    )


def revision_resource_type() -> ResourceType:
    return ResourceType(
        group=GROUP,
        version=VERSION,
        kind=REVISION_KIND,
        plural=REVISION_PLURAL,
        singular="inferencerevision",
        namespaced=True,
        model=InferenceRevision,
        short_names=("irev",),
        categories=("corral",),
        strict=True,
        columns=(
            PrinterColumn("Service", "string", lambda obj: (obj.get("spec") or {}).get("service") or "",
                          json_path=".spec.service"),
            PrinterColumn("Ready", "string",
                          lambda obj: f"{_status(obj).get('readyReplicas', 0)}/{_status(obj).get('replicas', 0)}"),
            PrinterColumn("Failed", "string", lambda obj: _status(obj).get("failureReason") or "",
                          json_path=".status.failureReason"),
            age_column(),
        ),
    )
