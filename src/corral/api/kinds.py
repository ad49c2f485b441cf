"""The kinds corral serves: :func:`default_registry` builds the :class:`Registry`.

Core kinds (``v1``, ``coordination.k8s.io/v1``, ``scheduling.k8s.io/v1``) are declared
here. corral's own kinds live in ``corral/api/v1alpha1/<kind>.py``, each exporting
``resource_type() -> ResourceType``; add yours to :func:`corral_kinds` (one line each).
"""

from __future__ import annotations

from corral.api import columns as c
from corral.api import core, crds, rules
from corral.api.registry import PrinterColumn, Registry, ResourceType
from corral.api.v1alpha1 import inferenceservice, podgroup, queue, trainingjob
from corral.api.workloads import workload_kinds


def core_kinds() -> list[ResourceType]:
    """The Kubernetes kinds corral serves itself."""
    age = c.age_column()
    return [
        ResourceType(
            group="", version="v1", kind="Namespace", plural="namespaces", namespaced=False, model=core.Namespace,
            short_names=("ns",), subresources=frozenset({"status"}),
            columns=(c.field_column("Status", "status", "phase"), age),
        ),
        ResourceType(
            group="", version="v1", kind="Node", plural="nodes", namespaced=False, model=core.Node,
            short_names=("no",), value_rules=rules.node_problems, subresources=frozenset({"status"}),
            columns=(
                PrinterColumn("Status", "string", c.node_status),
                PrinterColumn("Roles", "string", c.node_roles),
                age,
                c.field_column("Version", "status", "nodeInfo", "kubeletVersion"),
                PrinterColumn("GPUs", "string", c.node_gpus, description="nvidia.com/gpu capacity (+ MIG slices)."),
                c.field_column("GPU-Model", "metadata", "labels", "nvidia.com/gpu.product", priority=1),
                PrinterColumn("Internal-IP", "string", c.node_address("InternalIP"), priority=1),
                PrinterColumn("External-IP", "string", c.node_address("ExternalIP"), priority=1),
                c.field_column("OS-Image", "status", "nodeInfo", "osImage", priority=1),
                c.field_column("Kernel-Version", "status", "nodeInfo", "kernelVersion", priority=1),
            ),
        ),
        ResourceType(
            group="", version="v1", kind="Pod", plural="pods", namespaced=True, model=core.Pod,
            short_names=("po",), value_rules=rules.pod_problems, categories=("all",),
            subresources=frozenset({"status", "binding", "log", "exec", "attach", "portforward"}),
            columns=(
                PrinterColumn("Ready", "string", c.pod_ready, description="Ready containers / containers."),
                PrinterColumn("Status", "string", c.pod_status),
                PrinterColumn("Restarts", "integer", c.pod_restarts),
                age,
                c.field_column("IP", "status", "podIP", priority=1),
                c.field_column("Node", "spec", "nodeName", priority=1),
                c.field_column("Nominated Node", "status", "nominatedNodeName", priority=1),
                PrinterColumn("Readiness Gates", "string", lambda o: "<none>", priority=1),
            ),
        ),
        ResourceType(
            group="", version="v1", kind="Event", plural="events", namespaced=True, model=core.Event,
            short_names=("ev",), subresources=frozenset(),
            columns=(
                PrinterColumn("Last Seen", "date", c.event_last_seen),
                c.field_column("Type", "type"),
                c.field_column("Reason", "reason"),
                PrinterColumn("Object", "string", c.event_object),
                c.field_column("Message", "message"),
            ),
            generation_fields=(),
        ),
        ResourceType(
            group="", version="v1", kind="ConfigMap", plural="configmaps", namespaced=True, model=core.ConfigMap,
            short_names=("cm",), subresources=frozenset(),
            columns=(PrinterColumn("Data", "integer", c.count_keys("data", "binaryData")), age),
            generation_fields=(),
        ),
        ResourceType(
            group="", version="v1", kind="Secret", plural="secrets", namespaced=True, model=core.Secret,
            subresources=frozenset(),
            columns=(c.field_column("Type", "type"), PrinterColumn("Data", "integer", c.count_keys("data")), age),
            generation_fields=(),
        ),
        ResourceType(
            group="", version="v1", kind="Service", plural="services", namespaced=True, model=core.Service,
            short_names=("svc",), value_rules=rules.service_problems, categories=("all",),
            columns=(
                c.field_column("Type", "spec", "type"),
                c.field_column("Cluster-IP", "spec", "clusterIP"),
                PrinterColumn("External-IP", "string", lambda o: "<none>"),
                PrinterColumn("Port(s)", "string", c.service_ports),
                age,
                PrinterColumn("Selector", "string", c.service_selector, priority=1),
            ),
        ),
        ResourceType(
            group="coordination.k8s.io", version="v1", kind="Lease", plural="leases", namespaced=True,
            model=core.Lease, subresources=frozenset(),
            columns=(c.field_column("Holder", "spec", "holderIdentity"), age),
        ),
        ResourceType(
            group="scheduling.k8s.io", version="v1", kind="PriorityClass", plural="priorityclasses",
            namespaced=False, model=core.PriorityClass, short_names=("pc",), subresources=frozenset(),
            columns=(
                PrinterColumn("Value", "integer", lambda o: o.get("value")),
                PrinterColumn("Global-Default", "boolean", lambda o: bool(o.get("globalDefault"))),
                age,
            ),
            generation_fields=("value", "preemptionPolicy"),
        ),
    ]


def corral_kinds() -> list[ResourceType]:
    """corral.dev/v1alpha1 kinds: one ``resource_type()`` per module under ``corral.api.v1alpha1``."""
    return [
        podgroup.resource_type(),
        queue.resource_type(),
        trainingjob.resource_type(),
        inferenceservice.resource_type(),
        inferenceservice.revision_resource_type(),
    ]


def default_registry() -> Registry:
    """Every kind the embedded API server serves, with ``customresourcedefinitions`` (corral's own
    kinds published as read-only CRDs; the API server adds each created CRD's resources)."""
    registry = Registry([*core_kinds(), *workload_kinds(), *corral_kinds()])
    published = {crd["metadata"]["name"]: crd for crd in crds.corral_crds(registry)}
    registry.register(crds.crd_resource_type(published))
    return registry
