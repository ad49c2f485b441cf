"""Simulated nodes: registered through the API like agents, "running" pods by annotation.

``corral sim nodes --count N --gpus G --gpu-model M`` creates N ``Node`` objects with
the capacity, GFD-style labels (``nvidia.com/gpu.product``/``.memory``/``.count``,
``topology.corral.dev/block``/``rack``, ``corral.dev/simulated-gpus: "true"``) and the
device inventory (annotation ``corral.dev/devices``, every device ``"simulated": true``)
that a real agent would publish, keeps a ``coordination.k8s.io/v1`` Lease per node
renewed (spread over the renew interval, which grows with the node count so 5,000 nodes
cost ~50 writes/s), and runs a level-triggered controller over the pods bound to them:

- a bound pod that is not running yet is marked ``Running`` (Ready, with a start time);
- a running pod with annotation ``corral.dev/sim-duration: "30s"`` is marked
  ``Succeeded`` once that much time has passed since it started;
- a pod being deleted (``deletionTimestamp``) has nothing to stop, so its deletion is
  finished at once (``gracePeriodSeconds: 0``), as a kubelet does after the containers exit.

:func:`build_node` and :func:`pod_transition` are pure; :class:`SimNodes` is the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from corral.api.registry import Obj
from corral.client import ApiClient, ApiError, Informer, WorkQueue
from corral.controllers.runtime import Controller, Result
from corral.util.clock import Clock, SystemClock, format_timestamp, parse_timestamp

log = logging.getLogger(__name__)

SIM_DURATION_ANNOTATION = "corral.dev/sim-duration"
DEVICES_ANNOTATION = "corral.dev/devices"
SIMULATED_LABEL = "corral.dev/simulated-gpus"
LEASE_NAMESPACE = "kube-node-lease"

GPU_MEMORY_MIB = {
    "H100-80GB": 81920, "H100-94GB": 96256, "H200-141GB": 144384, "A100-80GB": 81920, "A100-40GB": 40960,
    "L40S": 46068, "L4": 23034, "A10G": 23028, "T4": 15360, "V100-32GB": 32768, "V100-16GB": 16384,
}
# How many slices of a profile one GPU holds ("1g" → 7, "2g" → 3, "3g" → 2, "4g"/"7g" → 1).
MIG_SLICES = {1: 7, 2: 3, 3: 2, 4: 1, 7: 1}
_MIG_PROFILE = re.compile(r"^(\d)g\.(\d+)gb$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


class SimSpecError(ValueError):
    """A bad option of ``corral sim nodes``; the message names it."""


def gpu_memory_mib(model: str) -> int:
    """Memory of a GPU model: from the table, else from a ``…-NNGB`` suffix, else 16 GiB."""
    if model in GPU_MEMORY_MIB:
        return GPU_MEMORY_MIB[model]
    match = re.search(r"(\d+)GB$", model, re.IGNORECASE)
    return int(match.group(1)) * 1024 if match else 16384


def mig_slices(profile: str) -> int:
    match = _MIG_PROFILE.match(profile)
    if match is None or int(match.group(1)) not in MIG_SLICES:
        raise SimSpecError(f"--mig: {profile!r} is not a MIG profile like 1g.10gb, 2g.20gb, 3g.40gb, 7g.80gb")
    return MIG_SLICES[int(match.group(1))]


def parse_labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` → dict; raises :class:`SimSpecError` naming the bad entry."""
    out: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise SimSpecError(f"--labels: {entry!r} is not key=value")
        out[key] = value
    return out


def parse_duration(text: str) -> float:
    """``30s``, ``1.5m``, ``200ms``, ``2h`` or plain seconds → seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise SimSpecError(f"{SIM_DURATION_ANNOTATION}: {text!r} is not a duration like 30s, 5m or 1h")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


@dataclass(frozen=True)
class SimNodeSpec:
    """What ``corral sim nodes`` registers."""

    count: int
    gpus: int
    gpu_model: str
    name_prefix: str = "sim-node"
    mig: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    cpu: str = "128"
    memory: str = "1Ti"
    pods: int = 110
    nvlink_island_size: int = 4
    nodes_per_rack: int = 8
    racks_per_block: int = 8
    start_index: int = 0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise SimSpecError("--count must be 0 or more")
        if self.gpus < 0:
            raise SimSpecError("--gpus must be 0 or more")
        if self.mig is not None:
            mig_slices(self.mig)

    def names(self) -> list[str]:
        return [f"{self.name_prefix}-{i}" for i in range(self.start_index, self.start_index + self.count)]


def build_devices(spec: SimNodeSpec, node_name: str) -> list[dict[str, Any]]:
    memory = gpu_memory_mib(spec.gpu_model)
    slices = mig_slices(spec.mig) if spec.mig else 0
    devices = []
    for index in range(spec.gpus):
        seed = uuid.uuid5(uuid.NAMESPACE_DNS, f"{node_name}/gpu/{index}")
        device: dict[str, Any] = {
            "index": index, "uuid": f"GPU-{seed}", "model": spec.gpu_model, "memoryMiB": memory,
            "simulated": True, "nvlinkIsland": index // max(1, spec.nvlink_island_size),
            "mig": [
                {"profile": spec.mig, "slot": slot, "uuid": f"MIG-{uuid.uuid5(seed, f'mig/{slot}')}"}
                for slot in range(slices)
            ],
        }
        devices.append(device)
    return devices


def build_node(spec: SimNodeSpec, index: int) -> Obj:
    """The Node object for simulated node number ``index`` (pure)."""
    name = f"{spec.name_prefix}-{index}"
    rack = index // max(1, spec.nodes_per_rack)
    block = rack // max(1, spec.racks_per_block)
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        SIMULATED_LABEL: "true",
        "topology.corral.dev/block": f"{spec.name_prefix}-block-{block}",
        "topology.corral.dev/rack": f"{spec.name_prefix}-rack-{rack}",
    }
    capacity: dict[str, str] = {"cpu": spec.cpu, "memory": spec.memory, "pods": str(spec.pods)}
    if spec.gpus:
        labels.update({
            "nvidia.com/gpu.product": f"NVIDIA-{spec.gpu_model}",
            "nvidia.com/gpu.memory": str(gpu_memory_mib(spec.gpu_model)),
            "nvidia.com/gpu.count": str(spec.gpus),
        })
        if spec.mig:
            capacity["nvidia.com/gpu"] = "0"
            capacity[f"nvidia.com/mig-{spec.mig}"] = str(spec.gpus * mig_slices(spec.mig))
            labels["nvidia.com/mig.strategy"] = "mixed"
        else:
            capacity["nvidia.com/gpu"] = str(spec.gpus)
    labels.update(spec.labels)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {DEVICES_ANNOTATION: json.dumps(build_devices(spec, name), separators=(",", ":"))},
        },
        "spec": {},
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "conditions": [{"type": "Ready", "status": "True", "reason": "SimulatedNodeReady",
                            "message": "simulated node is ready"}],
            "nodeInfo": {"kubeletVersion": "corral-sim", "operatingSystem": "linux", "architecture": "amd64"},
        },
    }


def build_lease(node: str, now: datetime, duration_seconds: int) -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": duration_seconds,
                 "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    }


@dataclass(frozen=True)
class Transition:
    """What the simulated kubelet does next with one pod: ``action`` and when."""

    action: str  # "none" | "run" | "succeed" | "finish-delete"
    at: float = 0.0  # wall seconds when "succeed" is due


def pod_transition(pod: Obj, now: float) -> Transition:
    """The next step for a pod bound to a simulated node (pure, level-triggered)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return Transition("finish-delete")
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        return Transition("none")
    if phase != "Running":
        return Transition("run")
    raw = (meta.get("annotations") or {}).get(SIM_DURATION_ANNOTATION)
    if raw is None:
        return Transition("none")
    try:
        duration = parse_duration(str(raw))
    except SimSpecError:
        return Transition("none")
    started = status.get("startTime")
    start = parse_timestamp(started).timestamp() if started else now
    due = start + duration
    return Transition("succeed", due) if due <= now else Transition("wait", due)


def running_status(pod: Obj, now: datetime) -> Obj:
    stamp = format_timestamp(now)
    containers = [
        {"name": c.get("name", "main"), "ready": True, "restartCount": 0, "started": True,
         "image": c.get("image", ""), "state": {"running": {"startedAt": stamp}}}
        for c in ((pod.get("spec") or {}).get("containers") or [{"name": "main"}])
    ]
    return {"status": {
        "phase": "Running", "startTime": stamp, "hostIP": "127.0.0.1",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": stamp},
            {"type": "Ready", "status": "True", "lastTransitionTime": stamp},
        ],
        "containerStatuses": containers,
    }}


def succeeded_status(pod: Obj, now: datetime) -> Obj:
    stamp = format_timestamp(now)
    started = (pod.get("status") or {}).get("startTime") or stamp
    containers = [
        {"name": c.get("name", "main"), "ready": False, "restartCount": 0, "started": False,
         "image": c.get("image", ""),
         "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": stamp}}}
        for c in ((pod.get("spec") or {}).get("containers") or [{"name": "main"}])
    ]
    return {"status": {
        "phase": "Succeeded",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": stamp},
        ],
        "containerStatuses": containers,
    }}


class SimNodes:
    """Registers simulated nodes, renews their leases and plays kubelet for their pods."""

    def __init__(
        self,
        client: ApiClient,
        specs: Sequence[SimNodeSpec],
        *,
        clock: Clock | None = None,
        workers: int = 16,
        lease_interval: float | None = None,
        create_concurrency: int = 32,
    ) -> None:
        self.client = client
        self.specs = list(specs)
        self.clock = clock or SystemClock()
        self.workers = workers
        total = sum(s.count for s in self.specs)
        self.lease_interval = lease_interval if lease_interval is not None else max(10.0, total / 50.0)
        self.create_concurrency = create_concurrency
        self.node_names: set[str] = {n for s in self.specs for n in s.names()}
        # Only bound pods, as a kubelet watches only its node's: the pending ones are none of
        # a node's business, and not decoding them saves a third of the watch traffic.
        self.pods = Informer(client, "v1", "pods", field_selector="spec.nodeName!=")
        self.queue = WorkQueue()
        self.kubelet = Controller("sim-kubelet", self, workers=workers, queue=self.queue)
        self._tasks: list[asyncio.Task[None]] = []
        self._leases_supported = True
        self.transitions = 0

    async def register(self) -> None:
        """Create (or refresh) every node, at most ``create_concurrency`` at a time."""
        limit = asyncio.Semaphore(self.create_concurrency)

        async def one(node: Obj) -> None:
            async with limit:
                await self._create_or_update_node(node)

        await asyncio.gather(*(one(build_node(spec, i))
                               for spec in self.specs for i in range(spec.start_index, spec.start_index + spec.count)))

    async def _create_or_update_node(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        try:
            created = await self.client.create(node)
        except ApiError as error:
            if not error.conflict:
                raise
            current = await self.client.get("v1", "nodes", name)
            current["metadata"]["labels"] = node["metadata"]["labels"]
            current["metadata"].setdefault("annotations", {}).update(node["metadata"]["annotations"])
            created = await self.client.update(current)
        if (created.get("status") or {}).get("capacity") != node["status"]["capacity"]:
            await self.client.patch("v1", "nodes", name, {"status": node["status"]}, subresource="status")

    async def start(self) -> None:
        await self.register()
        self.pods.add_handler(self._on_pod, lambda _old, new: self._on_pod(new), None)
        await self.pods.start()
        await self.pods.wait_synced()
        await self.kubelet.start()
        self._tasks = [asyncio.create_task(self._lease_loop(), name="sim-leases")]

    async def stop(self) -> None:
        await self.kubelet.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.pods.stop()

    async def unregister(self) -> None:
        """Delete the nodes this instance registered (and their leases)."""
        for name in sorted(self.node_names):
            await self.client.delete_if_exists("v1", "nodes", name)
            if self._leases_supported:
                with contextlib.suppress(ApiError):
                    await self.client.delete_if_exists("coordination.k8s.io/v1", "leases", name, LEASE_NAMESPACE)

    def _on_pod(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node in self.node_names:
            meta = pod.get("metadata") or {}
            self.queue.add(f"{meta.get('namespace')}/{meta.get('name')}")

    async def reconcile(self, key: str) -> Result | None:
        """One pod's next step (run by the shared reconciler runtime, which retries errors with backoff)."""
        try:
            return await self._step(key)
        except ApiError as error:
            if error.not_found:  # the pod went away meanwhile: nothing left to play
                return None
            raise

    async def _step(self, key: str) -> Result | None:
        pod = self.pods.get(key)
        if pod is None or (pod.get("spec") or {}).get("nodeName") not in self.node_names:
            return None
        namespace, _, name = key.partition("/")
        now = self.clock.now()
        step = pod_transition(pod, now.timestamp())
        if step.action == "finish-delete":
            uid = (pod.get("metadata") or {}).get("uid")
            await self.client.delete_if_exists("v1", "pods", name, namespace, grace_period_seconds=0, uid=uid)
        elif step.action == "run":
            await self.client.patch("v1", "pods", name, running_status(pod, now), namespace=namespace,
                                    subresource="status")
        elif step.action == "succeed":
            await self.client.patch("v1", "pods", name, succeeded_status(pod, now), namespace=namespace,
                                    subresource="status")
        elif step.action == "wait":
            return Result(requeue_after=max(0.0, step.at - now.timestamp()))
        else:
            return None
        self.transitions += 1
        return None

    async def _lease_loop(self) -> None:
        names = sorted(self.node_names)
        if not names:
            return
        duration = int(self.lease_interval * 4)
        try:
            await self.client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NAMESPACE}})
        except ApiError as error:
            if not error.conflict:
                log.info("sim nodes: cannot create namespace %s (%s); leases off", LEASE_NAMESPACE, error)
                self._leases_supported = False
                return
        gap = self.lease_interval / len(names)
        while True:
            for name in names:
                await self._renew(name, duration)
                if not self._leases_supported:
                    return
                await self.clock.sleep(gap)

    async def _renew(self, name: str, duration: int) -> None:
        lease = build_lease(name, self.clock.now(), duration)
        try:
            await self.client.patch("coordination.k8s.io/v1", "leases", name, {"spec": lease["spec"]},
                                    namespace=LEASE_NAMESPACE)
        except ApiError as error:
            if error.not_found and "lease" in error.message.lower() and "resource" in error.message.lower():
                self._leases_supported = False
                log.info("sim nodes: the API server serves no Lease kind; leases off")
                return
            if not error.not_found:
                log.warning("sim nodes: renew lease %s: %s", name, error)
                return
            try:
                await self.client.create(lease)
            except ApiError as create_error:
                if create_error.not_found:
                    self._leases_supported = False
                    log.info("sim nodes: the API server serves no Lease kind; leases off")
                elif not create_error.conflict:
                    log.warning("sim nodes: create lease %s: %s", name, create_error)
