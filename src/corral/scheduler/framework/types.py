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


MAX_QUANTITY = 2**63 - 1
"""The largest amount a pod may ask for, in base units (millicores for CPU): Kubernetes keeps
quantities in 64 bits, and a larger number cannot be a real request."""


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` as a mapping (``None`` is empty); anything else is a :class:`PodSpecError` naming ``where``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PodSpecError(f"{where}: expected an object, not {_shown(value)}")
    return value


def _sequence(value: Any, where: str) -> list[Any]:
    """``value`` as a list (``None`` is empty); anything else is a :class:`PodSpecError` naming ``where``."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise PodSpecError(f"{where}: expected a list, not {_shown(value)}")
    return list(value)


def _shown(value: Any) -> str:
    """A value for an error message: its repr, cut short (an error must stay one readable line)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _amount(name: str, qty: Any, where: str) -> int:
    """A resource quantity in base units (millicores for ``cpu``), bounded by :data:`MAX_QUANTITY`."""
    try:
        value = cpu_millis(qty) if name == "cpu" else to_int(qty)
    except QuantityError as exc:
        raise PodSpecError(f"{where}[{name}]: {exc}") from None
    except TypeError:  # a list or an object where a quantity belongs (unhashable for the cache)
        raise PodSpecError(f"{where}[{name}]: {_shown(qty)} is not a quantity") from None
    if not 0 <= value <= MAX_QUANTITY:
        raise PodSpecError(f"{where}[{name}]: {_shown(qty)} is out of range (0 to {MAX_QUANTITY})")
    return value


def _requirements(items: Any, where: str) -> tuple[SelectorRequirement, ...]:
    out = []
    for i, raw in enumerate(_sequence(items, where)):
        expr = _mapping(raw, f"{where}[{i}]")
        op = expr.get("operator", "")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"):
            raise PodSpecError(f"{where}[{i}].operator: unsupported operator {_shown(op)}")
        values = _sequence(expr.get("values"), f"{where}[{i}].values")
        out.append(SelectorRequirement(str(expr.get("key", "")), op, tuple(str(v) for v in values)))
    return tuple(out)


def _term(raw: Any, where: str) -> SelectorTerm:
    raw = _mapping(raw, where)
    return SelectorTerm(
        _requirements(raw.get("matchExpressions"), f"{where}.matchExpressions"),
        _requirements(raw.get("matchFields"), f"{where}.matchFields"),
    )


def pod_request_from_obj(pod: Mapping[str, Any]) -> PodRequest:
    """Parse a pod's JSON dict into a :class:`PodRequest` (requests = sum of containers,
    max with each init container, plus overhead, as Kubernetes computes them).

    Anything malformed raises :class:`PodSpecError` naming the field and the value (the
    scheduler quarantines such a pod with reason ``InvalidPod`` instead of failing): this
    parse is where the scheduler meets objects the API server may not have validated (stored
    by an older version, or written to a real cluster's CRDs).
    """
    try:
        return _pod_request(pod)
    except PodSpecError:
        raise
    except (TypeError, AttributeError, ValueError, KeyError, OverflowError, RecursionError) as exc:
        raise PodSpecError(f"spec: malformed pod ({type(exc).__name__}: {exc})") from None


def _pod_request(pod: Mapping[str, Any]) -> PodRequest:
    meta = _mapping(pod.get("metadata"), "metadata")
    spec = _mapping(pod.get("spec"), "spec")
    ns = meta.get("namespace") or "default"
    key = f"{ns}/{meta.get('name', '')}"
    annotations = _mapping(meta.get("annotations"), "metadata.annotations")
    labels = _mapping(meta.get("labels"), "metadata.labels")

    def container_requests(c: Any, where: str) -> dict[str, int]:
        res = _mapping(_mapping(c, where).get("resources"), f"{where}.resources")
        limits = _mapping(res.get("limits"), f"{where}.resources.limits")
        requests = _mapping(res.get("requests"), f"{where}.resources.requests")
        out: dict[str, int] = {name: _amount(name, qty, f"{where}.resources.limits") for name, qty in limits.items()}
        # extended resources (GPUs) are only given as limits in Kubernetes; limits count
        # (requests override limits for cpu and memory, and for whatever both give).
        out.update({name: _amount(name, qty, f"{where}.resources.requests") for name, qty in requests.items()})
        return out

    total: dict[str, int] = {}
    for i, c in enumerate(_sequence(spec.get("containers"), "spec.containers")):
        for name, v in container_requests(c, f"spec.containers[{i}]").items():
            total[name] = total.get(name, 0) + v
    for i, c in enumerate(_sequence(spec.get("initContainers"), "spec.initContainers")):
        for name, v in container_requests(c, f"spec.initContainers[{i}]").items():
            total[name] = max(total.get(name, 0), v)
    for name, qty in _mapping(spec.get("overhead"), "spec.overhead").items():
        total[name] = total.get(name, 0) + _amount(name, qty, "spec.overhead")

    gpu_count = total.pop(GPU_RESOURCE, 0)
    mig = {n[len(MIG_PREFIX):]: v for n, v in total.items() if n.startswith(MIG_PREFIX) and v > 0}
    scalar = {n: v for n, v in total.items() if n not in ("cpu", "memory") and not n.startswith(MIG_PREFIX) and v > 0}
    gpu_milli = MILLI
    gpu_memory_mib = 0
    if ANN_GPU_FRACTION in annotations:
        raw = annotations[ANN_GPU_FRACTION]
        try:
            frac = float(parse_quantity(str(raw)))
        except (QuantityError, OverflowError):
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
        if not 0 < mem <= MAX_QUANTITY:
            raise PodSpecError(f"metadata.annotations[{ANN_GPU_MEMORY}]: {_shown(raw)} must be a positive quantity like 20Gi")
        if gpu_count > 1:
            raise PodSpecError(f"metadata.annotations[{ANN_GPU_MEMORY}]: a share needs at most 1 {GPU_RESOURCE}, not {gpu_count}")
        gpu_count = 1
        gpu_memory_mib = -(-mem // 2**20)

    where = "spec.affinity.nodeAffinity"
    affinity = _mapping(_mapping(spec.get("affinity"), "spec.affinity").get("nodeAffinity"), where)
    required_where = f"{where}.requiredDuringSchedulingIgnoredDuringExecution"
    required = _mapping(affinity.get("requiredDuringSchedulingIgnoredDuringExecution"), required_where)
    required_terms = tuple(
        _term(t, f"{required_where}.nodeSelectorTerms[{i}]")
        for i, t in enumerate(_sequence(required.get("nodeSelectorTerms"), f"{required_where}.nodeSelectorTerms"))
    )
    preferred_where = f"{where}.preferredDuringSchedulingIgnoredDuringExecution"
    preferred = [_mapping(p, f"{preferred_where}[{i}]")
                 for i, p in enumerate(_sequence(affinity.get("preferredDuringSchedulingIgnoredDuringExecution"),
                                                 preferred_where))]
    for i, p in enumerate(preferred):
        weight = p.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
            raise PodSpecError(f"{preferred_where}[{i}].weight: {_shown(weight)} must be an integer from 1 to 100")
    preferred_terms = tuple(
        (int(p.get("weight", 1)), _term(p.get("preference"), f"{preferred_where}[{i}].preference"))
        for i, p in enumerate(preferred)
    )
    tolerations = tuple(
        Toleration(str(t.get("key", "")), str(t.get("operator", "Equal")), str(t.get("value", "")), str(t.get("effect", "")))
        for t in (_mapping(t, f"spec.tolerations[{i}]")
                  for i, t in enumerate(_sequence(spec.get("tolerations"), "spec.tolerations")))
    )
    priority = spec.get("priority") or 0
    if isinstance(priority, bool) or not isinstance(priority, int) or not -(2**31) <= priority < 2**31:
        raise PodSpecError(f"spec.priority: {_shown(priority)} must be a 32-bit integer")
    if not isinstance(spec.get("priorityClassName") or "", str):
        raise PodSpecError(f"spec.priorityClassName: {_shown(spec['priorityClassName'])} must be a string")
    node_selector = _mapping(spec.get("nodeSelector"), "spec.nodeSelector")
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
        node_selector={str(k): str(v) for k, v in node_selector.items()},
        required_terms=required_terms,
        preferred_terms=preferred_terms,
        tolerations=tolerations,
        priority=priority,
        group=str(labels.get(LABEL_POD_GROUP, "")),
        scheduler_name=str(spec.get("schedulerName") or ""),
    )
