"""Core ``v1`` kinds: Namespace, Node, Pod, Event, ConfigMap, Secret, Service.

The models are *lenient* (:class:`corral.api.meta.LenientModel`): they describe the
fields corral reads and writes, validate their types on every write, and feed the
OpenAPI documents that ``kubectl explain`` and ``kubectl apply`` use — but any field
they do not model is kept as it was sent, as a Kubernetes server must round-trip it.

List fields that Kubernetes merges by key under strategic merge patch carry the same
``x-kubernetes-patch-merge-key`` / ``x-kubernetes-patch-strategy`` annotations here; the
API server derives its strategic-merge behaviour from them (see
``corral.apiserver.patch``), so a model is the one place that says how its lists merge.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from corral.api.meta import Condition, LabelSelector, LenientModel, ObjectMeta

Quantity = str | int | float
"""A resource quantity as sent: ``"500m"``, ``"1Gi"``, ``2``."""


def merge_key(key: str, *, description: str = "", alias: str | None = None) -> Any:
    """A list field that strategic merge patch merges by ``key`` (as Kubernetes' patchMergeKey)."""
    extra: dict[str, Any] = {"x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": "merge"}
    return Field(default=None, alias=alias, description=description, json_schema_extra=extra)


def merge_set(*, description: str = "") -> Any:
    """A list of scalars that strategic merge patch treats as a set (finalizers and the like)."""
    return Field(default=None, description=description, json_schema_extra={"x-kubernetes-patch-strategy": "merge"})


class KubeObject(LenientModel):
    """Fields every top-level object has."""

    api_version: str | None = Field(default=None, alias="apiVersion", description="Versioned schema of this object.")
    kind: str | None = Field(default=None, description="The REST resource this object represents.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")


# --- Pod -------------------------------------------------------------------------------------

class ResourceRequirements(LenientModel):
    limits: dict[str, Quantity] | None = Field(default=None, description="Maximum resources allowed (e.g. cpu, memory, nvidia.com/gpu).")
    requests: dict[str, Quantity] | None = Field(default=None, description="Minimum resources required; defaults to limits.")


class ObjectFieldSelector(LenientModel):
    field_path: str = Field(alias="fieldPath", description="Path of the field to select, e.g. status.podIP.")
    api_version: str | None = Field(default=None, alias="apiVersion")


class KeySelector(LenientModel):
    name: str | None = None
    key: str
    optional: bool | None = None


class EnvVarSource(LenientModel):
    field_ref: ObjectFieldSelector | None = Field(default=None, alias="fieldRef")
    config_map_key_ref: KeySelector | None = Field(default=None, alias="configMapKeyRef")
    secret_key_ref: KeySelector | None = Field(default=None, alias="secretKeyRef")
    resource_field_ref: dict[str, Any] | None = Field(default=None, alias="resourceFieldRef")


class EnvVar(LenientModel):
    name: str = Field(description="Name of the environment variable.")
    value: str | None = Field(default=None, description="Value of the variable; $(VAR) references are expanded.")
    value_from: EnvVarSource | None = Field(default=None, alias="valueFrom", description="Source for the value.")


class ContainerPort(LenientModel):
    container_port: int = Field(alias="containerPort", description="Port number to expose on the pod's IP.")
    name: str | None = Field(default=None, description="IANA_SVC_NAME of the port.")
    protocol: str | None = Field(default=None, description="TCP (default), UDP or SCTP.")
    host_port: int | None = Field(default=None, alias="hostPort")
    host_ip: str | None = Field(default=None, alias="hostIP")


class VolumeMount(LenientModel):
    name: str = Field(description="Name of the volume to mount.")
    mount_path: str = Field(alias="mountPath", description="Path within the container.")
    read_only: bool | None = Field(default=None, alias="readOnly")
    sub_path: str | None = Field(default=None, alias="subPath")


class ExecAction(LenientModel):
    command: list[str] | None = Field(default=None, description="Command to run; exit 0 is healthy.")


class HTTPGetAction(LenientModel):
    path: str | None = Field(default=None, description="Path to access on the HTTP server.")
    port: int | str = Field(description="Port number or name.")
    host: str | None = None
    scheme: str | None = None
    http_headers: list[dict[str, Any]] | None = Field(default=None, alias="httpHeaders")


class TCPSocketAction(LenientModel):
    port: int | str
    host: str | None = None


class Probe(LenientModel):
    exec_: ExecAction | None = Field(default=None, alias="exec", description="Run a command in the container.")
    http_get: HTTPGetAction | None = Field(default=None, alias="httpGet", description="Send an HTTP GET.")
    tcp_socket: TCPSocketAction | None = Field(default=None, alias="tcpSocket", description="Open a TCP connection.")
    initial_delay_seconds: int | None = Field(default=None, alias="initialDelaySeconds")
    period_seconds: int | None = Field(default=None, alias="periodSeconds")
    timeout_seconds: int | None = Field(default=None, alias="timeoutSeconds")
    success_threshold: int | None = Field(default=None, alias="successThreshold")
    failure_threshold: int | None = Field(default=None, alias="failureThreshold")


class Container(LenientModel):
    name: str = Field(description="Name of the container, unique within the pod (DNS_LABEL).")
    image: str | None = Field(default=None, description="Container image name; recorded by corral's process runtime.")
    command: list[str] | None = Field(default=None, description="Entrypoint array.")
    args: list[str] | None = Field(default=None, description="Arguments to the entrypoint.")
    working_dir: str | None = Field(default=None, alias="workingDir", description="Working directory.")
    env: list[EnvVar] | None = merge_key("name", description="Environment variables to set in the container.")
    env_from: list[dict[str, Any]] | None = Field(default=None, alias="envFrom")
    ports: list[ContainerPort] | None = merge_key("containerPort", description="Ports the container exposes.")
    resources: ResourceRequirements | None = Field(default=None, description="Compute resources (cpu, memory, GPUs).")
    volume_mounts: list[VolumeMount] | None = Field(
        default=None, alias="volumeMounts", description="Volumes to mount into the filesystem.",
        json_schema_extra={"x-kubernetes-patch-merge-key": "mountPath", "x-kubernetes-patch-strategy": "merge"},
    )
    liveness_probe: Probe | None = Field(default=None, alias="livenessProbe", description="Restart the container when it fails.")
    readiness_probe: Probe | None = Field(default=None, alias="readinessProbe", description="Ready for traffic when it passes.")
    startup_probe: Probe | None = Field(default=None, alias="startupProbe")
    image_pull_policy: str | None = Field(default=None, alias="imagePullPolicy")
    security_context: dict[str, Any] | None = Field(default=None, alias="securityContext")
    stdin: bool | None = None
    tty: bool | None = None
    termination_message_path: str | None = Field(default=None, alias="terminationMessagePath")
    termination_message_policy: str | None = Field(default=None, alias="terminationMessagePolicy")


class Toleration(LenientModel):
    key: str | None = None
    operator: Literal["Exists", "Equal", ""] | None = Field(default=None, description="Exists or Equal (default).")
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute", ""] | None = Field(
        default=None, description="NoSchedule, PreferNoSchedule or NoExecute (empty: all).")
    toleration_seconds: int | None = Field(default=None, alias="tolerationSeconds")


class Volume(LenientModel):
    name: str = Field(description="Name of the volume, unique within the pod.")
    empty_dir: dict[str, Any] | None = Field(default=None, alias="emptyDir")
    host_path: dict[str, Any] | None = Field(default=None, alias="hostPath")
    config_map: dict[str, Any] | None = Field(default=None, alias="configMap")
    secret: dict[str, Any] | None = None
    persistent_volume_claim: dict[str, Any] | None = Field(default=None, alias="persistentVolumeClaim")


class NodeSelectorRequirement(LenientModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[str] | None = None


class NodeSelectorTerm(LenientModel):
    match_expressions: list[NodeSelectorRequirement] | None = Field(default=None, alias="matchExpressions")
    match_fields: list[NodeSelectorRequirement] | None = Field(default=None, alias="matchFields")


class NodeSelector(LenientModel):
    node_selector_terms: list[NodeSelectorTerm] = Field(alias="nodeSelectorTerms", description="ORed terms.")


class PreferredSchedulingTerm(LenientModel):
    weight: int = Field(description="1-100, added to a node's score when the preference matches.")
    preference: NodeSelectorTerm


class NodeAffinity(LenientModel):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = Field(
        default=None, alias="requiredDuringSchedulingIgnoredDuringExecution")
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = Field(
        default=None, alias="preferredDuringSchedulingIgnoredDuringExecution")


class PodAffinityTerm(LenientModel):
    label_selector: LabelSelector | None = Field(default=None, alias="labelSelector")
    namespaces: list[str] | None = None
    topology_key: str = Field(alias="topologyKey")
    namespace_selector: LabelSelector | None = Field(default=None, alias="namespaceSelector")


class WeightedPodAffinityTerm(LenientModel):
    weight: int
    pod_affinity_term: PodAffinityTerm = Field(alias="podAffinityTerm")


class PodAffinity(LenientModel):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = Field(
        default=None, alias="requiredDuringSchedulingIgnoredDuringExecution")
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = Field(
        default=None, alias="preferredDuringSchedulingIgnoredDuringExecution")


class Affinity(LenientModel):
    node_affinity: NodeAffinity | None = Field(default=None, alias="nodeAffinity")
    pod_affinity: PodAffinity | None = Field(default=None, alias="podAffinity")
    pod_anti_affinity: PodAffinity | None = Field(default=None, alias="podAntiAffinity")


class PodSpec(LenientModel):
    containers: list[Container] = Field(
        description="Containers of the pod; corral runs each as a process.",
        json_schema_extra={"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
    )
    init_containers: list[Container] | None = Field(
        default=None, alias="initContainers", description="Run in order before the containers start.",
        json_schema_extra={"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
    )
    ephemeral_containers: list[dict[str, Any]] | None = Field(
        default=None, alias="ephemeralContainers",
        json_schema_extra={"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
    )
    restart_policy: Literal["Always", "OnFailure", "Never"] | None = Field(
        default=None, alias="restartPolicy", description="Always (default), OnFailure or Never.",
    )
    node_name: str | None = Field(default=None, alias="nodeName", description="The node the pod is bound to; set by the scheduler.")
    node_selector: dict[str, str] | None = Field(default=None, alias="nodeSelector", description="Labels a node must have.")
    affinity: Affinity | None = Field(default=None, description="Node and pod affinity rules.")
    tolerations: list[Toleration] | None = merge_key("key", description="Taints this pod tolerates.")
    scheduler_name: str | None = Field(default=None, alias="schedulerName", description="Scheduler that places the pod; corral by default.")
    priority_class_name: str | None = Field(default=None, alias="priorityClassName")
    priority: int | None = Field(default=None, description="Priority value, resolved from priorityClassName.")
    preemption_policy: str | None = Field(default=None, alias="preemptionPolicy")
    termination_grace_period_seconds: int | None = Field(
        default=None, alias="terminationGracePeriodSeconds", description="Seconds between SIGTERM and SIGKILL (default 30).",
    )
    active_deadline_seconds: int | None = Field(default=None, alias="activeDeadlineSeconds")
    volumes: list[Volume] | None = Field(
        default=None, description="Volumes that containers can mount.",
        json_schema_extra={"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge,retainKeys"},
    )
    service_account_name: str | None = Field(default=None, alias="serviceAccountName")
    host_network: bool | None = Field(default=None, alias="hostNetwork")
    hostname: str | None = None
    subdomain: str | None = None
    image_pull_secrets: list[dict[str, Any]] | None = merge_key("name", alias="imagePullSecrets")
    host_aliases: list[dict[str, Any]] | None = Field(
        default=None, alias="hostAliases",
        json_schema_extra={"x-kubernetes-patch-merge-key": "ip", "x-kubernetes-patch-strategy": "merge"},
    )
    readiness_gates: list[dict[str, Any]] | None = Field(default=None, alias="readinessGates")
    overhead: dict[str, Quantity] | None = None


class PodCondition(LenientModel):
    type: str = Field(description="PodScheduled, Initialized, ContainersReady, Ready, ...")
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_probe_time: str | None = Field(default=None, alias="lastProbeTime")
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")


class ContainerStatus(LenientModel):
    name: str
    ready: bool = False
    restart_count: int = Field(default=0, alias="restartCount")
    state: dict[str, Any] | None = Field(default=None, description="waiting, running or terminated, with details.")
    last_state: dict[str, Any] | None = Field(default=None, alias="lastState")
    image: str | None = None
    image_id: str | None = Field(default=None, alias="imageID")
    container_id: str | None = Field(default=None, alias="containerID")
    started: bool | None = None


class PodStatus(LenientModel):
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] | None = Field(
        default=None, description="Pending, Running, Succeeded, Failed or Unknown.",
    )
    conditions: list[PodCondition] | None = merge_key("type", description="Current service state of the pod.")
    message: str | None = None
    reason: str | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")
    pod_ip: str | None = Field(default=None, alias="podIP", description="The pod's own loopback IP, given by the agent.")
    pod_ips: list[dict[str, Any]] | None = Field(
        default=None, alias="podIPs",
        json_schema_extra={"x-kubernetes-patch-merge-key": "ip", "x-kubernetes-patch-strategy": "merge"},
    )
    start_time: str | None = Field(default=None, alias="startTime")
    container_statuses: list[ContainerStatus] | None = Field(default=None, alias="containerStatuses")
    init_container_statuses: list[ContainerStatus] | None = Field(default=None, alias="initContainerStatuses")
    qos_class: str | None = Field(default=None, alias="qosClass")
    nominated_node_name: str | None = Field(default=None, alias="nominatedNodeName")


class Pod(KubeObject):
    """A group of containers run together on one node; corral's agent runs them as processes."""

    spec: PodSpec = Field(description="Desired behaviour of the pod.")
    status: PodStatus | None = Field(default=None, description="Most recently observed status of the pod.")


# --- Node ------------------------------------------------------------------------------------

class Taint(LenientModel):
    key: str
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
    time_added: str | None = Field(default=None, alias="timeAdded")


class NodeSpec(LenientModel):
    unschedulable: bool | None = Field(default=None, description="No new pods are placed on an unschedulable node.")
    taints: list[Taint] | None = Field(default=None, description="Taints that repel pods which do not tolerate them.")
    pod_cidr: str | None = Field(default=None, alias="podCIDR")
    provider_id: str | None = Field(default=None, alias="providerID")


class NodeAddress(LenientModel):
    type: str = Field(description="Hostname, InternalIP or ExternalIP.")
    address: str


class NodeCondition(LenientModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_heartbeat_time: str | None = Field(default=None, alias="lastHeartbeatTime")
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")


class DaemonEndpoint(LenientModel):
    port: int = Field(alias="Port", description="Port of the node agent's HTTP endpoint (logs).")


class NodeDaemonEndpoints(LenientModel):
    kubelet_endpoint: DaemonEndpoint | None = Field(default=None, alias="kubeletEndpoint")


class NodeStatus(LenientModel):
    capacity: dict[str, Quantity] | None = Field(default=None, description="Total resources, incl. nvidia.com/gpu.")
    allocatable: dict[str, Quantity] | None = Field(default=None, description="Resources available to pods.")
    conditions: list[NodeCondition] | None = merge_key("type", description="Ready and pressure conditions.")
    addresses: list[NodeAddress] | None = merge_key("type", description="Addresses of the node.")
    daemon_endpoints: NodeDaemonEndpoints | None = Field(
        default=None, alias="daemonEndpoints", description="Where the node agent serves; pods/log is proxied there.",
    )
    node_info: dict[str, Any] | None = Field(default=None, alias="nodeInfo")
    phase: str | None = None


class Node(KubeObject):
    """A machine that runs pods; corral's agent registers it and keeps its Lease."""

    spec: NodeSpec | None = Field(default=None, description="Behaviour of the node.")
    status: NodeStatus | None = Field(default=None, description="Observed status: capacity, conditions, addresses.")


# --- Namespace, ConfigMap, Secret, Event, Service --------------------------------------------

class NamespaceSpec(LenientModel):
    finalizers: list[str] | None = None


class NamespaceStatus(LenientModel):
    phase: Literal["Active", "Terminating"] | None = None
    conditions: list[Condition] | None = None


class Namespace(KubeObject):
    """A scope for names; ``default`` and ``kube-system`` always exist."""

    spec: NamespaceSpec | None = None
    status: NamespaceStatus | None = None


class ConfigMap(KubeObject):
    """Non-secret configuration as key/value pairs."""

    data: dict[str, str] | None = Field(default=None, description="UTF-8 values.")
    binary_data: dict[str, str] | None = Field(default=None, alias="binaryData", description="Base64 values.")
    immutable: bool | None = None


class Secret(KubeObject):
    """Secret data (base64 in data, plain in stringData)."""

    data: dict[str, str] | None = Field(default=None, description="Base64-encoded values.")
    string_data: dict[str, str] | None = Field(default=None, alias="stringData", description="Plain values, merged into data.")
    type: str | None = Field(default=None, description="Opaque by default.")
    immutable: bool | None = None


class ObjectReference(LenientModel):
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    api_version: str | None = Field(default=None, alias="apiVersion")
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    field_path: str | None = Field(default=None, alias="fieldPath")


class EventSource(LenientModel):
    component: str | None = None
    host: str | None = None


class Event(KubeObject):
    """Something that happened to an object: scheduled, preempted, evicted, scaled, restarted."""

    involved_object: ObjectReference = Field(alias="involvedObject", description="The object this event is about.")
    reason: str | None = Field(default=None, description="Short CamelCase reason.")
    message: str | None = Field(default=None, description="Human-readable description.")
    type: str | None = Field(default=None, description="Normal or Warning.")
    source: EventSource | None = None
    count: int | None = None
    first_timestamp: str | None = Field(default=None, alias="firstTimestamp")
    last_timestamp: str | None = Field(default=None, alias="lastTimestamp")
    event_time: str | None = Field(default=None, alias="eventTime")
    reporting_component: str | None = Field(default=None, alias="reportingComponent")
    reporting_instance: str | None = Field(default=None, alias="reportingInstance")
    action: str | None = None
    related: ObjectReference | None = None


class ServicePort(LenientModel):
    port: int = Field(description="Port exposed by the service.")
    name: str | None = None
    protocol: str | None = None
    target_port: int | str | None = Field(default=None, alias="targetPort", description="Port on the pods.")
    node_port: int | None = Field(default=None, alias="nodePort")
    app_protocol: str | None = Field(default=None, alias="appProtocol")


class ServiceSpec(LenientModel):
    selector: dict[str, str] | None = Field(default=None, description="Pods with these labels back the service.")
    ports: list[ServicePort] | None = Field(
        default=None, description="Ports the service exposes.",
        json_schema_extra={"x-kubernetes-patch-merge-key": "port", "x-kubernetes-patch-strategy": "merge"},
    )
    type: str | None = Field(default=None, description="ClusterIP (default), NodePort, LoadBalancer or ExternalName.")
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    external_name: str | None = Field(default=None, alias="externalName")
    session_affinity: str | None = Field(default=None, alias="sessionAffinity")


class Service(KubeObject):
    """A stable name for a set of pods selected by labels."""

    spec: ServiceSpec | None = None
    status: dict[str, Any] | None = None


# --- coordination.k8s.io/v1, scheduling.k8s.io/v1 -------------------------------------------

class LeaseSpec(LenientModel):
    holder_identity: str | None = Field(default=None, alias="holderIdentity", description="Current holder of the lease.")
    lease_duration_seconds: int | None = Field(default=None, alias="leaseDurationSeconds")
    acquire_time: str | None = Field(default=None, alias="acquireTime")
    renew_time: str | None = Field(default=None, alias="renewTime", description="When the holder last renewed.")
    lease_transitions: int | None = Field(default=None, alias="leaseTransitions")


class Lease(KubeObject):
    """A lease: node heartbeats and leader election."""

    spec: LeaseSpec | None = None


class PriorityClass(KubeObject):
    """Maps a priority class name to an integer priority."""

    value: int = Field(description="Priority of pods that name this class; higher wins.")
    global_default: bool | None = Field(default=None, alias="globalDefault")
    description: str | None = None
    preemption_policy: str | None = Field(default=None, alias="preemptionPolicy")


class Binding(KubeObject):
    """Binds a pod to a node (pods/binding)."""

    target: ObjectReference = Field(description="The node to bind to.")


__all__ = [
    "Binding",
    "ConfigMap",
    "Event",
    "LabelSelector",
    "Lease",
    "Namespace",
    "Node",
    "Pod",
    "PriorityClass",
    "Secret",
    "Service",
]
