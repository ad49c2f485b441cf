"""The node object the agent registers, its conditions, and its Lease.

Pure builders (:func:`node_object`, :func:`node_conditions`, :func:`lease_object`)
compute what the agent writes; :class:`NodeReporter` does the I/O: it registers
the node (creating it, or merging its labels, annotations and status into an
existing one so that labels an administrator added survive), renews the
``coordination.k8s.io/v1`` Lease in ``kube-node-lease`` every heartbeat, and
rewrites the node status when a condition changes, when the node lifecycle
controller marked it ``Unknown``, or at least every ``status_interval``.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from corral import __version__
from corral.agent.gpus import DEVICES_ANNOTATION, GpuDevice, devices_annotation, gpu_capacity, node_gpu_labels
from corral.api.registry import Obj
from corral.client import ApiClient, ApiError
from corral.util.clock import Clock, format_timestamp
from corral.util.quantity import format_bytes

LEASE_NAMESPACE = "kube-node-lease"
LIMITS_CONDITION = "ResourceLimitsEnforced"


def micro_time(moment: datetime) -> str:
    """``metav1.MicroTime`` as Kubernetes writes it (microseconds, ``Z``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class NodeFacts:
    """What the agent knows about its machine when it registers."""

    name: str
    cpu: int
    memory_bytes: int
    devices: list[GpuDevice] = field(default_factory=list)
    max_pods: int = 250
    address: str = "127.0.0.1"
    port: int = 0
    limits_enforced: bool = False
    limits_message: str = ""
    gpu_message: str = ""
    extra_labels: dict[str, str] = field(default_factory=dict)
    storage_bytes: int = 0
    pod_cidr: str = ""  # the loopback block this agent's pod IPs come from (spec.podCIDR)


def disk_bytes(path: Path) -> int:
    """Size of the filesystem holding ``path`` (the node's ``ephemeral-storage``)."""
    try:
        return shutil.disk_usage(path).total
    except OSError:
        return 0


def machine_resources() -> tuple[int, int]:
    """``(cpus, memory bytes)`` of this machine (the CPUs this process may use)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover
        memory = 0
    return cpus, memory


def node_resources(facts: NodeFacts) -> dict[str, str]:
    resources = {"cpu": str(facts.cpu), "memory": format_bytes(facts.memory_bytes - facts.memory_bytes % 1024),
                 "pods": str(facts.max_pods), "ephemeral-storage": format_bytes(facts.storage_bytes)}
    resources.update(gpu_capacity(facts.devices))
    return resources


def node_labels(facts: NodeFacts) -> dict[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    labels = {"kubernetes.io/hostname": facts.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
              "node.kubernetes.io/instance-type": "corral-agent"}
    labels.update(node_gpu_labels(facts.devices))
    labels.update(facts.extra_labels)
    return labels


def node_conditions(now: datetime, previous: list[dict[str, Any]] | None, *, facts: NodeFacts,
                    memory_pressure: bool, disk_pressure: bool) -> list[dict[str, Any]]:
    """Node conditions; ``lastTransitionTime`` moves only when a status changes."""
    old = {c.get("type"): c for c in previous or []}
    stamp = format_timestamp(now)
    wanted = [
        ("Ready", "True", "KubeletReady", "corral agent is posting ready status"),
        ("MemoryPressure", "True" if memory_pressure else "False",
         "KubeletHasInsufficientMemory" if memory_pressure else "KubeletHasSufficientMemory",
         "less than 5% of memory is available" if memory_pressure else "corral agent has sufficient memory"),
        ("DiskPressure", "True" if disk_pressure else "False",
         "KubeletHasDiskPressure" if disk_pressure else "KubeletHasNoDiskPressure",
         "less than 5% of the data dir's disk is free" if disk_pressure else "corral agent has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "corral agent has sufficient PID available"),
        (LIMITS_CONDITION, "True" if facts.limits_enforced else "False",
         "CgroupV2" if facts.limits_enforced else "CgroupsUnavailable", facts.limits_message),
    ]
    conditions = []
    for kind, status, reason, message in wanted:
        before = old.get(kind)
        transition = before.get("lastTransitionTime") if before and before.get("status") == status else stamp
        conditions.append({"type": kind, "status": status, "reason": reason, "message": message,
                           "lastHeartbeatTime": stamp, "lastTransitionTime": transition or stamp})
    return conditions


def node_object(facts: NodeFacts, now: datetime, previous_conditions: list[dict[str, Any]] | None = None,
                *, memory_pressure: bool = False, disk_pressure: bool = False) -> Obj:
    resources = node_resources(facts)
    annotations = {DEVICES_ANNOTATION: devices_annotation(facts.devices),
                   "corral.dev/gpu-discovery": facts.gpu_message}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": facts.name, "labels": node_labels(facts), "annotations": annotations},
        "spec": {"podCIDR": facts.pod_cidr, "podCIDRs": [facts.pod_cidr]} if facts.pod_cidr else {},
        "status": {
            "capacity": resources,
            "allocatable": dict(resources),
            "conditions": node_conditions(now, previous_conditions, facts=facts, memory_pressure=memory_pressure,
                                          disk_pressure=disk_pressure),
            "addresses": [{"type": "InternalIP", "address": facts.address},
                          {"type": "Hostname", "address": facts.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": facts.port}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": _boot_id(),
                "kernelVersion": platform.release(), "osImage": _os_image(),
                "containerRuntimeVersion": "corral-process://" + __version__,
                "kubeletVersion": f"v1.32.0-corral-{__version__}", "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": node_labels(facts)["kubernetes.io/arch"],
            },
        },
    }


def lease_object(node: str, now: datetime, duration: int, previous: Obj | None = None) -> Obj:
    lease: Obj = dict(previous) if previous else {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": LEASE_NAMESPACE}}
    lease["spec"] = {**(lease.get("spec") or {}), "holderIdentity": node, "leaseDurationSeconds": duration,
                     "renewTime": micro_time(now)}
    return lease


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # pragma: no cover
        return ""


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:  # pragma: no cover
        pass
    return platform.system()


def pressure(data_dir: Path) -> tuple[bool, bool]:
    """``(memory pressure, disk pressure)``: under 5 % available."""
    memory = False
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        total = int(info["MemTotal"].split()[0])
        available = int(info["MemAvailable"].split()[0])
        memory = available < total * 0.05
    except (OSError, KeyError, ValueError):
        pass
    disk = False
    try:
        usage = shutil.disk_usage(data_dir)
        disk = usage.free < usage.total * 0.05
    except OSError:
        pass
    return memory, disk


def default_node_name() -> str:
    """This machine's hostname as a valid node name (a lower-case DNS subdomain)."""
    name = re.sub(r"[^a-z0-9.-]+", "-", socket.gethostname().lower()).strip("-.")
    return name[:253] or "localhost"


class NodeReporter:
    """Registers the node, renews its lease and keeps its status current."""

    def __init__(self, client: ApiClient, facts: NodeFacts, clock: Clock, *, lease_duration: int,
                 data_dir: Path, status_interval: float = 60.0) -> None:
        self.client = client
        self.facts = facts
        self.clock = clock
        self.lease_duration = lease_duration
        self.data_dir = data_dir
        self.status_interval = status_interval
        self._last_status = -1e18
        self._last_pressure: tuple[bool, bool] | None = None
        self.heartbeats = 0
        self.last_renew: datetime | None = None

    async def register(self) -> Obj:
        now = self.clock.now()
        memory, disk = pressure(self.data_dir)
        wanted = node_object(self.facts, now, memory_pressure=memory, disk_pressure=disk)
        try:
            created = await self.client.create({k: v for k, v in wanted.items() if k != "status"})
        except ApiError as error:
            if not error.conflict and error.reason != "AlreadyExists":
                raise
            created = await self._merge_existing(wanted)
        await self.write_status(created)
        return created

    async def _merge_existing(self, wanted: Obj) -> Obj:
        for _ in range(5):
            current = await self.client.get("v1", "nodes", self.facts.name)
            metadata = current.setdefault("metadata", {})
            labels = metadata.get("labels") or {}
            for key in [k for k in labels if k.startswith("nvidia.com/gpu.") or k == "corral.dev/simulated-gpus"]:
                del labels[key]  # GPU labels are ours and may have changed
            labels.update(wanted["metadata"]["labels"])
            metadata["labels"] = labels
            metadata["annotations"] = {**(metadata.get("annotations") or {}), **wanted["metadata"]["annotations"]}
            current["spec"] = {**(current.get("spec") or {}), **wanted["spec"]}  # the block may differ from last run
            try:
                updated: Obj = await self.client.update(current)
                return updated
            except ApiError as error:
                if not error.conflict:
                    raise
        raise RuntimeError(f"could not update node {self.facts.name}: too many conflicts")

    async def write_status(self, current: Obj | None = None) -> None:
        now = self.clock.now()
        memory, disk = pressure(self.data_dir)
        self._last_pressure = (memory, disk)
        previous = ((current or {}).get("status") or {}).get("conditions")
        status = node_object(self.facts, now, previous, memory_pressure=memory, disk_pressure=disk)["status"]
        await self.client.patch("v1", "nodes", self.facts.name, {"status": status}, subresource="status")
        self._last_status = self.clock.monotonic()

    async def renew_lease(self) -> None:
        now = self.clock.now()
        name = self.facts.name
        for _ in range(3):
            current = await self.client.get_or_none("coordination.k8s.io/v1", "leases", name, LEASE_NAMESPACE)
            try:
                if current is None:
                    await self.client.create(lease_object(name, now, self.lease_duration))
                else:
                    await self.client.update(lease_object(name, now, self.lease_duration, current))
                self.heartbeats += 1
                self.last_renew = now
                return
            except ApiError as error:
                if not (error.conflict or error.reason == "AlreadyExists"):
                    raise
        raise RuntimeError(f"could not renew lease {LEASE_NAMESPACE}/{name}: too many conflicts")

    async def ensure_lease_namespace(self) -> None:
        try:
            await self.client.create({"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": LEASE_NAMESPACE}})
        except ApiError as error:
            if not (error.conflict or error.reason == "AlreadyExists"):
                raise

    async def heartbeat(self) -> None:
        """One heartbeat: renew the lease, and refresh the node status when it is due or stale."""
        await self.renew_lease()
        due = self.clock.monotonic() - self._last_status >= self.status_interval
        node = await self.client.get_or_none("v1", "nodes", self.facts.name)
        if node is None:
            await self.register()
            return
        ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
        changed = pressure(self.data_dir) != self._last_pressure
        if due or changed or ready is None or ready.get("status") != "True":
            await self.write_status(node)
