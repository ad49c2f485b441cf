"""The values the framework passes around: pod requests, device assignments, placements.

A :class:`PodRequest` is everything the scheduler needs from one pod, parsed once from the
pod's JSON dict (:func:`pod_request_from_obj`) or built directly from a trace row. It is
immutable and hashable-free of the pod dict, so the simulator and the live scheduler feed
the very same values to the plugins.

GPU requests (the device contract in TEAM.md):

- whole GPUs: ``resources.limits["nvidia.com/gpu"] = N`` → ``gpu_count=N, gpu_milli=1000``;
- a share of one device: annotation ``corral.dev/gpu-fraction: "0.5"`` → ``gpu_count=1,
  gpu_milli=500``; or ``corral.dev/gpu-memory: "20Gi"`` → ``gpu_count=1, gpu_memory_mib=20480``
  (turned into milli per device model at filter time);
- MIG slices: ``nvidia.com/mig-<profile>: n`` → ``mig={"<profile>": n}``.

The exact devices chosen travel in the pod annotation ``corral.dev/gpu-devices``:
comma-separated ``IDX`` (whole), ``IDX:FRACTION`` (share), ``IDX:mig-PROFILE:SLOT``
(:func:`format_gpu_devices`, :func:`parse_gpu_devices`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.util.quantity import QuantityError, parse_quantity
from corral.util.quantity import cpu_millis as _cpu_millis
from corral.util.quantity import to_int as _to_int

# Pods repeat a handful of quantity strings ("100m", "128Mi", "1"); parsing them as exact
# Fractions is most of the cost of reading a pod, so the parsed values are memoised (typed, so
# that True is never taken for 1; errors are not cached and raise every time).
cpu_millis = functools.lru_cache(maxsize=4096, typed=True)(_cpu_millis)
to_int = functools.lru_cache(maxsize=4096, typed=True)(_to_int)

GPU_RESOURCE = "nvidia.com/gpu"
MIG_PREFIX = "nvidia.com/mig-"
ANN_GPU_FRACTION = "corral.dev/gpu-fraction"
ANN_GPU_MEMORY = "corral.dev/gpu-memory"
ANN_GPU_DEVICES = "corral.dev/gpu-devices"
ANN_DEVICES = "corral.dev/devices"
LABEL_POD_GROUP = "corral.dev/pod-group"
LABEL_GPU_PRODUCT = "nvidia.com/gpu.product"
LABEL_BLOCK = "topology.corral.dev/block"
LABEL_RACK = "topology.corral.dev/rack"
MILLI = 1000


class PodSpecError(ValueError):
    """A pod whose scheduling-relevant fields are malformed; the message names the field."""


@dataclass(frozen=True, slots=True)
class SelectorRequirement:
    """One node selector expression: ``key``, ``operator`` (In, NotIn, Exists, DoesNotExist, Gt, Lt)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SelectorTerm:
    """A node selector term: all expressions must hold (``matchFields`` on metadata.name too)."""

    expressions: tuple[SelectorRequirement, ...] = ()
    fields: tuple[SelectorRequirement, ...] = ()


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' ToleratesTaint."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        if not self.key and self.operator != "Exists":
            return False
        return self.value == taint.value


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True, slots=True)
class PodRequest:
    """What one pod asks of a node. ``key`` is ``namespace/name`` (or a trace pod's name)."""

    key: str
    cpu_milli: int = 0
    memory: int = 0
    """Bytes."""
    scalar: Mapping[str, int] = field(default_factory=dict)
    """Other extended resources (not GPUs or MIG) in whole units."""
    gpu_count: int = 0
    gpu_milli: int = MILLI
    """Per-device share in milli (1000 = whole GPUs); ignored when ``gpu_memory_mib`` is set."""
    gpu_memory_mib: int = 0
    """A share given as device memory (``corral.dev/gpu-memory``); 0 when not used."""
    mig: Mapping[str, int] = field(default_factory=dict)
    gpu_models: frozenset[str] | None = None
    """Device models the pod accepts (trace ``gpu_spec``); None accepts every model."""
    node_name: str = ""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    required_terms: tuple[SelectorTerm, ...] = ()
    """Required node affinity: OR of terms. Empty means no requirement."""
    preferred_terms: tuple[tuple[int, SelectorTerm], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    priority: int = 0
    group: str = ""
    """PodGroup name ('' for a bare pod)."""
    scheduler_name: str = ""

    @property
    def wants_gpu(self) -> bool:
        return self.gpu_count > 0 or bool(self.mig)

    @property
    def is_share(self) -> bool:
        """A fraction of one device (by milli or by memory)."""
        return self.gpu_count == 1 and (self.gpu_memory_mib > 0 or self.gpu_milli < MILLI)

    @property
    def gpu_total_milli(self) -> int:
        """R = k*m for milli-based requests (memory-based shares count as their milli on admission)."""
        return self.gpu_count * self.gpu_milli

    @property
    def tag(self) -> str:
        """GPU-clustering tag: ``share``, ``<k>-gpu``, ``mig`` or '' for pods without GPUs."""
        if self.is_share:
            return "share"
        if self.gpu_count:
            return f"{self.gpu_count}-gpu"
        if self.mig:
            return "mig"
        return ""


@dataclass(frozen=True, slots=True)
class DeviceAssignment:
    """One device (or MIG slice) given to a pod on its node."""

    index: int
    milli: int = MILLI
    mig_profile: str = ""
    mig_slot: int = -1

    def format(self) -> str:
        if self.mig_profile:
            return f"{self.index}:mig-{self.mig_profile}:{self.mig_slot}"
        if self.milli >= MILLI:
            return str(self.index)
        return f"{self.index}:{_format_fraction(self.milli)}"


@dataclass(frozen=True, slots=True)
class Placement:
    """A pod placed on a node (by index into the snapshot and by name) with its devices."""

    pod: str
    node: str
    node_index: int
    devices: tuple[DeviceAssignment, ...] = ()

    @property
    def gpu_devices(self) -> str:
        """The ``corral.dev/gpu-devices`` annotation value ('' when the pod has no GPUs)."""
        return format_gpu_devices(self.devices)


def _format_fraction(milli: int) -> str:
    text = f"{milli / MILLI:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def format_gpu_devices(devices: tuple[DeviceAssignment, ...] | list[DeviceAssignment]) -> str:
    return ",".join(d.format() for d in devices)


def parse_gpu_devices(text: str) -> tuple[DeviceAssignment, ...]:
    """Parse ``corral.dev/gpu-devices``; raises :class:`PodSpecError` naming the bad entry."""
    out: list[DeviceAssignment] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        parts = entry.split(":")
        try:
            if len(parts) == 1:
                out.append(DeviceAssignment(int(parts[0])))
            elif len(parts) == 2:
                frac = float(parts[1])
                if not 0 < frac <= 1:
                    raise ValueError(frac)
                out.append(DeviceAssignment(int(parts[0]), milli=max(1, round(frac * MILLI))))
            elif len(parts) == 3 and parts[1].startswith("mig-"):
                out.append(DeviceAssignment(int(parts[0]), mig_profile=parts[1][4:], mig_slot=int(parts[2])))
            else:
                raise ValueError(entry)
        except ValueError:
            raise PodSpecError(
                f"metadata.annotations[{ANN_GPU_DEVICES}]: bad entry {entry!r} "
                "(expected IDX, IDX:FRACTION or IDX:mig-PROFILE:SLOT)"
            ) from None
    return tuple(out)


def _requirements(items: Any, where: str) -> tuple[SelectorRequirement, ...]:
    out = []
    for i, expr in enumerate(items or ()):
        op = expr.get("operator", "")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"):
            raise PodSpecError(f"{where}[{i}].operator: unsupported operator {op!r}")
        out.append(SelectorRequirement(str(expr.get("key", "")), op, tuple(str(v) for v in expr.get("values") or ())))
    return tuple(out)


def _term(raw: Any, where: str) -> SelectorTerm:
    return SelectorTerm(
        _requirements(raw.get("matchExpressions"), f"{where}.matchExpressions"),
        _requirements(raw.get("matchFields"), f"{where}.matchFields"),
    )


def pod_request_from_obj(pod: Mapping[str, Any]) -> PodRequest:
    """Parse a pod's JSON dict into a :class:`PodRequest` (requests = sum of containers,
    max with each init container, plus overhead, as Kubernetes computes them)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ns = meta.get("namespace") or "default"
    key = f"{ns}/{meta.get('name', '')}"
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}

    def container_requests(c: Mapping[str, Any], where: str) -> dict[str, int]:
        res = c.get("resources") or {}
        merged = dict(res.get("limits") or {})
        merged.update(res.get("requests") or {})
        out: dict[str, int] = {}
        for name, qty in merged.items():
            try:
                out[name] = cpu_millis(qty) if name == "cpu" else to_int(qty)
            except QuantityError as exc:
                raise PodSpecError(f"{where}.resources[{name}]: {exc}") from None
        # extended resources (GPUs) are only given as limits in Kubernetes; limits count.
        for name, qty in (res.get("limits") or {}).items():
            if name not in ("cpu", "memory") and name not in (res.get("requests") or {}):
                out[name] = to_int(qty)
        return out

    total: dict[str, int] = {}
    for i, c in enumerate(spec.get("containers") or ()):
        for name, v in container_requests(c, f"spec.containers[{i}]").items():
            total[name] = total.get(name, 0) + v
    for i, c in enumerate(spec.get("initContainers") or ()):
        for name, v in container_requests(c, f"spec.initContainers[{i}]").items():
            total[name] = max(total.get(name, 0), v)
    for name, qty in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, 0) + (cpu_millis(qty) if name == "cpu" else to_int(qty))

    gpu_count = total.pop(GPU_RESOURCE, 0)
    mig = {n[len(MIG_PREFIX):]: v for n, v in total.items() if n.startswith(MIG_PREFIX) and v > 0}
    scalar = {n: v for n, v in total.items() if n not in ("cpu", "memory") and not n.startswith(MIG_PREFIX) and v > 0}
    gpu_milli = MILLI
    gpu_memory_mib = 0
    if ANN_GPU_FRACTION in annotations:
        raw = annotations[ANN_GPU_FRACTION]
        try:
            frac = float(parse_quantity(str(raw)))
        except QuantityError:
            frac = math.nan
        if not 0 < frac <= 1:
            raise PodSpecError(
                f"metadata.annotations[{ANN_GPU_FRACTION}]: {raw!r} must be a number in (0, 1]"
            )
        gpu_milli = max(1, round(frac * MILLI))
        if gpu_count > 1:
            raise PodSpecError(f"metadata.annotations[{ANN_GPU_FRACTION}]: a share needs at most 1 {GPU_RESOURCE}, not {gpu_count}")
        gpu_count = 1
    elif ANN_GPU_MEMORY in annotations:
        raw = annotations[ANN_GPU_MEMORY]
        try:
            mem = to_int(str(raw))
        except QuantityError:
            mem = 0
        if mem <= 0:
            raise PodSpecError(f"metadata.annotations[{ANN_GPU_MEMORY}]: {raw!r} must be a positive quantity like 20Gi")
        if gpu_count > 1:
            raise PodSpecError(f"metadata.annotations[{ANN_GPU_MEMORY}]: a share needs at most 1 {GPU_RESOURCE}, not {gpu_count}")
        gpu_count = 1
        gpu_memory_mib = -(-mem // 2**20)

    affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    where = "spec.affinity.nodeAffinity"
    required_terms = tuple(
        _term(t, f"{where}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}]")
        for i, t in enumerate(required.get("nodeSelectorTerms") or ())
    )
    preferred_terms = tuple(
        (int(p.get("weight", 1)), _term(p.get("preference") or {}, f"{where}.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference"))
        for i, p in enumerate(affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ())
    )
    tolerations = tuple(
        Toleration(str(t.get("key", "")), str(t.get("operator", "Equal")), str(t.get("value", "")), str(t.get("effect", "")))
        for t in spec.get("tolerations") or ()
    )
    return PodRequest(
        key=key,
        cpu_milli=total.get("cpu", 0),
        memory=total.get("memory", 0),
        scalar=scalar,
        gpu_count=gpu_count,
        gpu_milli=gpu_milli,
        gpu_memory_mib=gpu_memory_mib,
        mig=mig,
        node_name=str(spec.get("nodeName") or ""),
        node_selector={str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()},
        required_terms=required_terms,
        preferred_terms=preferred_terms,
        tolerations=tolerations,
        priority=int(spec.get("priority") or 0),
        group=str(labels.get(LABEL_POD_GROUP, "")),
        scheduler_name=str(spec.get("schedulerName") or ""),
    )
