"""Snapshot arrays and their bookkeeping (see the package docstring)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from corral.scheduler.framework.types import (
    ANN_DEVICES,
    ANN_GPU_DEVICES,
    GPU_RESOURCE,
    LABEL_BLOCK,
    LABEL_GPU_PRODUCT,
    LABEL_RACK,
    MIG_PREFIX,
    MILLI,
    DeviceAssignment,
    PodRequest,
    PodSpecError,
    Taint,
    parse_gpu_devices,
    pod_request_from_obj,
)
from corral.util.quantity import QuantityError, cpu_millis, to_int

I64 = NDArray[np.int64]
BOOL = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class MigSlice:
    profile: str
    slot: int
    uuid: str = ""


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    index: int
    model: str = ""
    memory_mib: int = 0
    nvlink_island: int = 0
    uuid: str = ""
    mig: tuple[MigSlice, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node as the scheduler sees it (allocatable, labels, taints, devices)."""

    name: str
    cpu_milli: int = 0
    memory: int = 0
    pods: int = 110
    scalar: Mapping[str, int] = field(default_factory=dict)
    devices: tuple[DeviceSpec, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False

    @property
    def model(self) -> str:
        for d in self.devices:
            if d.model:
                return d.model
        return self.labels.get(LABEL_GPU_PRODUCT, "")


def _int_field(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PodSpecError(f"{where}: {value!r} is not an integer") from None


def node_spec_from_obj(node: Mapping[str, Any]) -> NodeSpec:
    """Parse a v1 Node dict: ``status.allocatable`` (or capacity), labels, taints,
    ``spec.unschedulable`` and the device inventory annotation ``corral.dev/devices``.

    A node that declares ``nvidia.com/gpu`` capacity without the annotation gets that many
    anonymous devices of the model named by label ``nvidia.com/gpu.product``.
    """
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    try:
        cpu = cpu_millis(alloc.get("cpu", 0))
        memory = to_int(alloc.get("memory", 0))
        pods = to_int(alloc.get("pods", 110))
        scalar = {
            str(k): to_int(v)
            for k, v in alloc.items()
            if k not in ("cpu", "memory", "pods", "ephemeral-storage", GPU_RESOURCE) and not str(k).startswith(MIG_PREFIX)
            and not str(k).startswith("hugepages-")
        }
        gpu_cap = to_int(alloc.get(GPU_RESOURCE, 0))
    except QuantityError as exc:
        raise PodSpecError(f"node {meta.get('name')!r} status.allocatable: {exc}") from None
    devices: list[DeviceSpec] = []
    raw = (meta.get("annotations") or {}).get(ANN_DEVICES)
    if raw:
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PodSpecError(f"metadata.annotations[{ANN_DEVICES}]: not JSON: {exc}") from None
        if not isinstance(items, list):
            raise PodSpecError(f"metadata.annotations[{ANN_DEVICES}]: expected a JSON list of devices")
        for i, d in enumerate(items):
            where = f"metadata.annotations[{ANN_DEVICES}][{i}]"
            if not isinstance(d, dict):
                raise PodSpecError(f"{where}: expected an object")
            mig = tuple(
                MigSlice(str(s.get("profile", "")), _int_field(s.get("slot", j), f"{where}.mig[{j}].slot"), str(s.get("uuid", "")))
                for j, s in enumerate(d.get("mig") or ())
            )
            devices.append(
                DeviceSpec(
                    index=_int_field(d.get("index", i), f"{where}.index"),
                    model=str(d.get("model", "")),
                    memory_mib=_int_field(d.get("memoryMiB", 0), f"{where}.memoryMiB"),
                    nvlink_island=_int_field(d.get("nvlinkIsland", 0), f"{where}.nvlinkIsland"),
                    uuid=str(d.get("uuid", "")),
                    mig=mig,
                )
            )
    elif gpu_cap:
        model = labels.get(LABEL_GPU_PRODUCT, "")
        mem = int(labels.get("nvidia.com/gpu.memory", "0") or 0)
        devices = [DeviceSpec(index=i, model=model, memory_mib=mem) for i in range(gpu_cap)]
    taints = tuple(
        Taint(str(t.get("key", "")), str(t.get("value", "")), str(t.get("effect", "NoSchedule")))
        for t in spec.get("taints") or ()
    )
    return NodeSpec(
        name=str(meta.get("name", "")),
        cpu_milli=cpu,
        memory=memory,
        pods=pods,
        scalar=scalar,
        devices=tuple(sorted(devices, key=lambda d: d.index)),
        labels=labels,
        taints=taints,
        unschedulable=bool(spec.get("unschedulable", False)),
    )


@dataclass(slots=True)
class _Assumed:
    pod: PodRequest
    node: int
    devices: tuple[DeviceAssignment, ...]


class Snapshot:
    """Nodes, devices and placed pods as arrays. Row ``i`` is ``nodes[i]``.

    Public arrays (read by plugins; mutate only through :meth:`assume`/:meth:`forget`):

    - ``cpu_cap/cpu_used`` (millicores), ``mem_cap/mem_used`` (bytes), ``pods_cap/pods_used``;
      ``scalar_cap[name]/scalar_used[name]`` per extended resource;
    - ``gpu_exists``, ``gpu_free`` (milli, 0 for absent or MIG-mode devices), ``gpu_mem_mib``,
      ``gpu_island`` — shape ``(N, G)`` with ``G`` the most devices on any node;
      ``gpu_count`` (non-MIG devices per node), ``model_id`` (index into ``models``; -1 none);
    - ``mig_free`` ``(N, P)`` free slices per profile in ``mig_profiles``;
    - ``unschedulable``, ``taint_set`` (index into ``taint_sets``), ``block_id``/``rack_id``
      (-1 without the label), ``rank`` (tie-break priority, lower wins), ``node_version``;
    - ``tag_counts[tag]`` placed GPU pods per tag, ``tag_total``.
    """

    def __init__(self, nodes: Sequence[NodeSpec], rank: Sequence[int] | None = None) -> None:
        self._specs: list[NodeSpec] = list(nodes)
        self._rank_in = None if rank is None else list(rank)
        self._assumed: dict[str, _Assumed] = {}
        self.memo: dict[str, Any] = {}
        """Per-plugin memo space (keyed by plugin name); valid while ``node_version`` matches."""
        self._build()

    # -- construction -------------------------------------------------------------------
    def _build(self) -> None:
        specs = self._specs
        n = len(specs)
        self.nodes: list[str] = [s.name for s in specs]
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.nodes)}
        if len(self.index) != n:
            raise ValueError("duplicate node names in snapshot")
        self.specs = specs
        self.cpu_cap = np.array([s.cpu_milli for s in specs], dtype=np.int64)
        self.mem_cap = np.array([s.memory for s in specs], dtype=np.int64)
        self.pods_cap = np.array([s.pods for s in specs], dtype=np.int64)
        self.cpu_used = np.zeros(n, dtype=np.int64)
        self.mem_used = np.zeros(n, dtype=np.int64)
        self.pods_used = np.zeros(n, dtype=np.int64)
        names = sorted({k for s in specs for k in s.scalar})
        self.scalar_cap: dict[str, I64] = {k: np.array([s.scalar.get(k, 0) for s in specs], dtype=np.int64) for k in names}
        self.scalar_used: dict[str, I64] = {k: np.zeros(n, dtype=np.int64) for k in names}
        g = max((len(s.devices) for s in specs), default=0)
        self.max_gpus = g
        self.gpu_exists = np.zeros((n, g), dtype=np.bool_)
        self.gpu_mig_mode = np.zeros((n, g), dtype=np.bool_)
        self.gpu_cap = np.zeros((n, g), dtype=np.int64)
        self.gpu_mem_mib = np.zeros((n, g), dtype=np.int64)
        self.gpu_island = np.zeros((n, g), dtype=np.int64)
        self.models: list[str] = sorted({s.model for s in specs if s.model})
        model_index = {m: i for i, m in enumerate(self.models)}
        self.model_id = np.array([model_index.get(s.model, -1) for s in specs], dtype=np.int64)
        self.mig_profiles: list[str] = sorted({sl.profile for s in specs for d in s.devices for sl in d.mig})
        self.mig_index = {p: i for i, p in enumerate(self.mig_profiles)}
        self.mig_cap = np.zeros((n, len(self.mig_profiles)), dtype=np.int64)
        # per node: list of (device column, slice); used slices tracked in a set
        self.mig_slices: list[list[tuple[int, MigSlice]]] = [[] for _ in range(n)]
        self.mig_used: set[tuple[int, int, str, int]] = set()
        self.device_col: list[dict[int, int]] = []
        for i, s in enumerate(specs):
            cols: dict[int, int] = {}
            for col, d in enumerate(s.devices):
                cols[d.index] = col
                self.gpu_exists[i, col] = True
                self.gpu_mem_mib[i, col] = d.memory_mib
                self.gpu_island[i, col] = d.nvlink_island
                if d.mig:
                    self.gpu_mig_mode[i, col] = True
                    for sl in d.mig:
                        self.mig_slices[i].append((col, sl))
                        self.mig_cap[i, self.mig_index[sl.profile]] += 1
                else:
                    self.gpu_cap[i, col] = MILLI
            self.device_col.append(cols)
        self.gpu_free = self.gpu_cap.copy()
        self.gpu_idle = self.gpu_free.sum(axis=1)
        """Free GPU milli per node (sum of ``gpu_free`` over devices), kept current."""
        self.gpu_whole_free = (self.gpu_free >= MILLI).sum(axis=1).astype(np.int64)
        """Wholly free (non-MIG) devices per node, kept current: the whole-GPU filter reads one
        value per node instead of scanning every device."""
        self.gpu_max_free = (self.gpu_free.max(axis=1) if g else np.zeros(n)).astype(np.int64)
        """Most free milli on any one device of a node, kept current (the share filter's index)."""
        self.all_nodes = np.ones(n, dtype=np.bool_)
        self.all_nodes.setflags(write=False)
        self.mig_free = self.mig_cap.copy()
        self.gpu_count = (self.gpu_exists & ~self.gpu_mig_mode).sum(axis=1).astype(np.int64)
        self.unschedulable = np.array([s.unschedulable for s in specs], dtype=np.bool_)
        taint_sets: dict[tuple[Taint, ...], int] = {(): 0}
        self.taint_set = np.array(
            [taint_sets.setdefault(tuple(sorted(s.taints, key=lambda t: (t.key, t.value, t.effect))), len(taint_sets)) for s in specs],
            dtype=np.int64,
        )
        self.taint_sets: list[tuple[Taint, ...]] = list(taint_sets)
        self.blocks: list[str] = sorted({s.labels[LABEL_BLOCK] for s in specs if LABEL_BLOCK in s.labels})
        self.racks: list[str] = sorted({s.labels[LABEL_RACK] for s in specs if LABEL_RACK in s.labels})
        bi = {b: i for i, b in enumerate(self.blocks)}
        ri = {r: i for i, r in enumerate(self.racks)}
        self.block_id = np.array([bi.get(s.labels.get(LABEL_BLOCK, ""), -1) for s in specs], dtype=np.int64)
        self.rack_id = np.array([ri.get(s.labels.get(LABEL_RACK, ""), -1) for s in specs], dtype=np.int64)
        if self._rank_in is not None and len(self._rank_in) == n:
            self.rank = np.asarray(self._rank_in, dtype=np.int64)
        else:
            self.rank = np.arange(n, dtype=np.int64)
        self.node_version = np.zeros(n, dtype=np.int64)
        self.tag_counts: dict[str, I64] = {}
        self.tag_total = np.zeros(n, dtype=np.int64)
        self._label_cache: dict[str, NDArray[np.object_]] = {}
        self.memo = {}
        assumed = list(self._assumed.values())
        self._assumed = {}
        for a in assumed:
            if a.node < n:
                try:
                    self.assume(a.pod, a.node, a.devices)
                except ValueError:  # the node's devices changed under the pod
                    self.assume(a.pod, a.node, ())

    def set_rank(self, rank: Sequence[int] | NDArray[np.int64]) -> None:
        """Fix the tie-break priority (lower wins): the trace replay's per-run permutation."""
        self.rank = np.asarray(rank, dtype=np.int64)
        self._rank_in = list(self.rank.tolist())

    def __len__(self) -> int:
        return len(self.nodes)

    # -- node changes (live scheduler) --------------------------------------------------
    def upsert_node(self, spec: NodeSpec) -> None:
        """Add or replace a node; arrays are rebuilt only when something changed."""
        i = self.index.get(spec.name)
        if i is not None and self._specs[i] == spec:
            return
        if i is None:
            self._specs.append(spec)
            self._rank_in = None
        else:
            self._specs[i] = spec
        self._build()

    def remove_node(self, name: str) -> list[PodRequest]:
        """Drop a node; returns the pods that were placed on it (now forgotten)."""
        i = self.index.get(name)
        if i is None:
            return []
        gone = [a.pod for a in self._assumed.values() if a.node == i]
        kept = {k: _Assumed(a.pod, a.node - (a.node > i), a.devices) for k, a in self._assumed.items() if a.node != i}
        del self._specs[i]
        self._rank_in = None
        self._assumed = kept
        self._build()
        return gone

    # -- label access ---------------------------------------------------------------------
    def label_values(self, key: str) -> NDArray[np.object_]:
        """Per-node value of label ``key`` (None when absent), cached."""
        arr = self._label_cache.get(key)
        if arr is None:
            arr = np.array([s.labels.get(key) for s in self._specs], dtype=object)
            self._label_cache[key] = arr
        return arr

    # -- placements ---------------------------------------------------------------------
    def gpu_need_milli(self, pod: PodRequest) -> I64:
        """Milli needed per device for ``pod``, ``(N, G)``: its ``gpu_milli`` or its memory share
        of each device (devices without a known memory size cannot take a memory share)."""
        if pod.gpu_memory_mib > 0:
            mem = np.where(self.gpu_mem_mib > 0, self.gpu_mem_mib, 1)
            need = -(-(pod.gpu_memory_mib * MILLI) // mem)
            return np.where(self.gpu_mem_mib > 0, need, MILLI + 1).astype(np.int64)
        return np.full(self.gpu_free.shape, pod.gpu_milli, dtype=np.int64)

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def placement_of(self, key: str) -> tuple[int, tuple[DeviceAssignment, ...]] | None:
        a = self._assumed.get(key)
        return None if a is None else (a.node, a.devices)

    def pods_on(self, node: int) -> list[PodRequest]:
        return [a.pod for a in self._assumed.values() if a.node == node]

    def assumed_pods(self) -> Iterable[tuple[PodRequest, int, tuple[DeviceAssignment, ...]]]:
        for a in self._assumed.values():
            yield a.pod, a.node, a.devices

    def assume(self, pod: PodRequest, node: int, devices: tuple[DeviceAssignment, ...] = ()) -> None:
        """Account ``pod`` on row ``node`` with ``devices``. Raises ValueError when it does not fit
        the devices (never over-commits a device or a MIG slice)."""
        if pod.key in self._assumed:
            raise ValueError(f"pod {pod.key} is already placed")
        cols = self.device_col[node]
        for d in devices:
            if d.index not in cols:
                raise ValueError(f"node {self.nodes[node]} has no GPU {d.index}")
            col = cols[d.index]
            if d.mig_profile:
                slot_key = (node, col, d.mig_profile, d.mig_slot)
                if slot_key in self.mig_used or not any(
                    c == col and s.profile == d.mig_profile and s.slot == d.mig_slot for c, s in self.mig_slices[node]
                ):
                    raise ValueError(f"MIG slice {d.format()} on {self.nodes[node]} is not free")
            elif self.gpu_mig_mode[node, col] or self.gpu_free[node, col] < d.milli:
                raise ValueError(f"GPU {d.index} on {self.nodes[node]} has {self.gpu_free[node, col]} milli free, not {d.milli}")
        for d in devices:
            col = cols[d.index]
            if d.mig_profile:
                self.mig_used.add((node, col, d.mig_profile, d.mig_slot))
                self.mig_free[node, self.mig_index[d.mig_profile]] -= 1
            else:
                self.gpu_free[node, col] -= d.milli
                self.gpu_idle[node] -= d.milli
        if devices:
            self._reindex_gpus(node)
        self.cpu_used[node] += pod.cpu_milli
        self.mem_used[node] += pod.memory
        self.pods_used[node] += 1
        for k, v in pod.scalar.items():
            if k in self.scalar_used:
                self.scalar_used[k][node] += v
        tag = pod.tag
        if tag:
            counts = self.tag_counts.get(tag)
            if counts is None:
                counts = self.tag_counts[tag] = np.zeros(len(self.nodes), dtype=np.int64)
            counts[node] += 1
            self.tag_total[node] += 1
        self.node_version[node] += 1
        self._assumed[pod.key] = _Assumed(pod, node, tuple(devices))

    def _reindex_gpus(self, node: int) -> None:
        free = self.gpu_free[node].tolist()
        self.gpu_whole_free[node] = sum(1 for f in free if f >= MILLI)
        self.gpu_max_free[node] = max(free, default=0)

    def forget(self, key: str) -> PodRequest | None:
        """Undo :meth:`assume` for pod ``key`` (no-op when unknown); returns the pod."""
        a = self._assumed.pop(key, None)
        if a is None:
            return None
        node = a.node
        cols = self.device_col[node]
        for d in a.devices:
            col = cols[d.index]
            if d.mig_profile:
                self.mig_used.discard((node, col, d.mig_profile, d.mig_slot))
                self.mig_free[node, self.mig_index[d.mig_profile]] += 1
            else:
                self.gpu_free[node, col] += d.milli
                self.gpu_idle[node] += d.milli
        if a.devices:
            self._reindex_gpus(node)
        self.cpu_used[node] -= a.pod.cpu_milli
        self.mem_used[node] -= a.pod.memory
        self.pods_used[node] -= 1
        for k, v in a.pod.scalar.items():
            if k in self.scalar_used:
                self.scalar_used[k][node] -= v
        tag = a.pod.tag
        if tag:
            self.tag_counts[tag][node] -= 1
            self.tag_total[node] -= 1
        self.node_version[node] += 1
        return a.pod

    def add_pod_obj(self, pod: Mapping[str, Any]) -> bool:
        """Account a pod dict already bound to a node (``spec.nodeName``), using its
        ``corral.dev/gpu-devices`` annotation; a GPU pod bound without one (by another
        scheduler) takes the lowest-indexed devices that fit. Returns False when the node is
        unknown or the pod is finished."""
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return False
        req = pod_request_from_obj(pod)
        node = self.index.get(req.node_name)
        if node is None:
            return False
        ann = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANN_GPU_DEVICES, "")
        devices = parse_gpu_devices(ann) if ann else self.default_devices(req, node)
        try:
            self.assume(req, node, devices)
        except ValueError:
            # over-committed by someone else: account CPU/memory, skip the devices
            self.assume(req, node, ())
        return True

    def default_devices(self, pod: PodRequest, node: int) -> tuple[DeviceAssignment, ...]:
        """Lowest-indexed devices that fit (best fit for shares); () when none do."""
        out: list[DeviceAssignment] = []
        spec = self._specs[node]
        free = self.gpu_free[node]
        if pod.gpu_count:
            need = self.gpu_need_milli(pod)[node]
            if pod.is_share:
                fits = [c for c in range(len(spec.devices)) if free[c] >= need[c] and not self.gpu_mig_mode[node, c]]
                if fits:
                    c = min(fits, key=lambda c: (free[c], c))
                    out.append(DeviceAssignment(spec.devices[c].index, int(need[c])))
            else:
                whole = [c for c in range(len(spec.devices)) if free[c] >= MILLI and not self.gpu_mig_mode[node, c]]
                out.extend(DeviceAssignment(spec.devices[c].index) for c in whole[: pod.gpu_count])
        for profile, count in pod.mig.items():
            got = 0
            for col, sl in self.mig_slices[node]:
                if got == count:
                    break
                if sl.profile == profile and (node, col, profile, sl.slot) not in self.mig_used:
                    out.append(DeviceAssignment(spec.devices[col].index, mig_profile=profile, mig_slot=sl.slot))
                    got += 1
        return tuple(out)
