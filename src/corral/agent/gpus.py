"""GPU discovery and the device environment of a pod.

Real GPUs come from NVML (``nvidia-ml-py``). NVML missing, its library absent or
its initialisation failing all mean the same thing: this machine has no real
GPUs, and the agent carries on. A node may also declare simulated devices with
``--simulated-gpus COUNTxMODEL`` (e.g. ``8xH100-80GB``); they are always marked
``simulated`` in the inventory and the node gets the label
``corral.dev/simulated-gpus: "true"``.

The inventory is published as the node annotation ``corral.dev/devices`` (the
JSON contract in TEAM.md), and summarised in GFD-style labels and in capacity.

The scheduler decides which devices a pod gets and writes them into the pod
annotation ``corral.dev/gpu-devices`` at bind; :func:`gpu_environment` turns that
string into ``CUDA_VISIBLE_DEVICES``/``NVIDIA_VISIBLE_DEVICES`` exactly, never
guessing. No annotation means ``CUDA_VISIBLE_DEVICES=""`` so a pod cannot use a
GPU by accident. Whole GPUs and shares are named by index (with
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA's numbering is NVML's), MIG slices by
their UUID.

What is enforced: device *visibility* (CUDA honours ``CUDA_VISIBLE_DEVICES``).
What is not: the compute and memory share of a fractional assignment. The share
is exported (``CORRAL_GPU_FRACTION``, ``CORRAL_GPU_MEMORY_LIMIT_MIB``) together
with the CUDA MPS variables (``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``,
``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``), which CUDA enforces only when an MPS
control daemon runs on the machine; otherwise the limits are cooperative.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from corral.api.gpu import (
    DEVICES_ANNOTATION,
    GPU_DEVICES_ANNOTATION,
    GPU_RESOURCE,
    SIMULATED_GPUS_LABEL,
    DeviceSpecError,
    parse_gpu_devices,
)

SIMULATED_LABEL = SIMULATED_GPUS_LABEL
__all__ = ["DEVICES_ANNOTATION", "GPU_DEVICES_ANNOTATION", "GPU_RESOURCE", "SIMULATED_LABEL"]

# Memory (MiB) of well-known models, for simulated devices whose name carries no size.
_KNOWN_MEMORY_MIB = {
    "T4": 15360, "L4": 23034, "A10": 23028, "A10G": 23028, "L40S": 46068, "V100": 16384,
    "A100": 40960, "H100": 81559, "H200": 143771, "B200": 183359,
}
# MIG profiles whose slices a simulated device exposes, by memory class (A100/H100 style).
_SIMULATED_SPEC = re.compile(r"^(\d+)x([A-Za-z0-9][A-Za-z0-9._-]*)$")


@dataclass(frozen=True)
class MigSlice:
    profile: str
    slot: int
    uuid: str

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "slot": self.slot, "uuid": self.uuid}


@dataclass(frozen=True)
class GpuDevice:
    """One GPU of the node, as published in ``corral.dev/devices``."""

    index: int
    uuid: str
    model: str
    memory_mib: int
    simulated: bool
    nvlink_island: int = 0
    mig: tuple[MigSlice, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "uuid": self.uuid, "model": self.model, "memoryMiB": self.memory_mib,
            "simulated": self.simulated, "nvlinkIsland": self.nvlink_island,
            "mig": [s.to_json() for s in self.mig],
        }


class GpuSpecError(ValueError):
    """A ``--simulated-gpus`` value that is not ``COUNTxMODEL``."""


def parse_simulated(spec: str, first_index: int = 0, node_name: str = "node") -> list[GpuDevice]:
    """Devices for ``COUNTxMODEL`` (``8xH100-80GB``); UUIDs are stable per node and index."""
    match = _SIMULATED_SPEC.match(spec.strip())
    if match is None:
        raise GpuSpecError(f"--simulated-gpus {spec!r}: expected COUNTxMODEL, e.g. 8xH100-80GB")
    count, model = int(match.group(1)), match.group(2)
    if count < 1 or count > 64:
        raise GpuSpecError(f"--simulated-gpus {spec!r}: COUNT must be between 1 and 64")
    memory = simulated_memory_mib(model)
    devices = []
    for offset in range(count):
        index = first_index + offset
        dev_uuid = "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"corral-sim/{node_name}/{index}"))
        devices.append(GpuDevice(index=index, uuid=dev_uuid, model=model, memory_mib=memory, simulated=True,
                                 nvlink_island=0))
    return devices


def simulated_memory_mib(model: str) -> int:
    """``H100-80GB`` → 81920; a bare known model uses its usual size; unknown → 16 GiB."""
    size = re.search(r"(\d+)\s*G[Bi]?B?$", model, re.IGNORECASE)
    if size:
        return int(size.group(1)) * 1024
    return _KNOWN_MEMORY_MIB.get(model.upper(), 16384)


def discover_nvml() -> tuple[list[GpuDevice], str]:
    """Real GPUs through NVML and a sentence on how discovery went.

    Any failure (no ``pynvml``, no driver library, no device) is reported in the
    sentence and yields no devices; it is never an error.
    """
    try:
        import pynvml
    except ImportError as error:  # pragma: no cover - the dependency is pinned
        return [], f"NVML unavailable ({error}); no real GPUs"
    try:
        pynvml.nvmlInit()
    except Exception as error:
        return [], f"NVML not initialised ({error}); no real GPUs"
    devices: list[GpuDevice] = []
    try:
        count = pynvml.nvmlDeviceGetCount()
        for index in range(count):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = _text(pynvml.nvmlDeviceGetName(handle))
            dev_uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
            memory = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // (1024 * 1024)
            devices.append(GpuDevice(index=index, uuid=dev_uuid, model=model_from_nvml_name(name),
                                     memory_mib=memory, simulated=False, nvlink_island=0,
                                     mig=tuple(_mig_slices(pynvml, handle))))
        return devices, f"NVML found {count} GPU(s)"
    except Exception as error:
        return devices, f"NVML query failed after {len(devices)} device(s): {error}"
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _mig_slices(pynvml: Any, handle: Any) -> list[MigSlice]:
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except Exception:
        return []
    if current != 1:
        return []
    slices: list[MigSlice] = []
    try:
        maximum = pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except Exception:
        return []
    per_profile: dict[str, int] = {}
    for position in range(maximum):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, position)
            mig_uuid = _text(pynvml.nvmlDeviceGetUUID(mig))
            name = _text(pynvml.nvmlDeviceGetName(mig))
        except Exception:
            continue
        profile = _mig_profile(name)
        slot = per_profile.get(profile, 0)
        per_profile[profile] = slot + 1
        slices.append(MigSlice(profile=profile, slot=slot, uuid=mig_uuid))
    return slices


def _mig_profile(name: str) -> str:
    match = re.search(r"MIG\s+(\d+g\.\d+gb)", name)
    return match.group(1) if match else name.replace(" ", "-")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def model_from_nvml_name(name: str) -> str:
    """``NVIDIA H100 80GB HBM3`` → ``H100-80GB-HBM3`` (the vendor prefix is added back in labels)."""
    cleaned = re.sub(r"^(NVIDIA|Tesla)\s+", "", name.strip())
    cleaned = re.sub(r"^(NVIDIA|Tesla)\s+", "", cleaned)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", cleaned).strip("-") or "GPU"


def product_label(model: str) -> str:
    """GFD's ``nvidia.com/gpu.product`` value for a model (``NVIDIA-H100-80GB``)."""
    return model if model.startswith("NVIDIA-") else f"NVIDIA-{model}"


def node_gpu_labels(devices: list[GpuDevice]) -> dict[str, str]:
    """GFD-style labels; with mixed models the first device's model names the node."""
    if not devices:
        return {}
    labels = {
        "nvidia.com/gpu.product": product_label(devices[0].model),
        "nvidia.com/gpu.memory": str(devices[0].memory_mib),
        "nvidia.com/gpu.count": str(len(devices)),
        "nvidia.com/gpu.present": "true",
    }
    if any(d.simulated for d in devices):
        labels[SIMULATED_LABEL] = "true"
    return labels


def gpu_capacity(devices: list[GpuDevice]) -> dict[str, str]:
    """``nvidia.com/gpu`` counts whole devices not split by MIG; each MIG profile counts its slices."""
    whole = sum(1 for d in devices if not d.mig)
    capacity: dict[str, str] = {GPU_RESOURCE: str(whole)} if devices else {}
    mig: dict[str, int] = {}
    for device in devices:
        for piece in device.mig:
            mig[piece.profile] = mig.get(piece.profile, 0) + 1
    for profile, count in sorted(mig.items()):
        capacity[f"nvidia.com/mig-{profile}"] = str(count)
    return capacity


def devices_annotation(devices: list[GpuDevice]) -> str:
    return json.dumps([d.to_json() for d in devices], separators=(",", ":"))


class AssignmentError(ValueError):
    """A ``corral.dev/gpu-devices`` annotation this node cannot honour."""


def gpu_environment(annotation: str | None, devices: list[GpuDevice]) -> dict[str, str]:
    """The GPU variables of a pod from its assignment (``""`` visible devices when none).

    Raises :class:`AssignmentError` when the annotation names a device or MIG
    slice this node does not have.
    """
    env = {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if not annotation or not annotation.strip():
        return env
    by_index = {d.index: d for d in devices}
    visible: list[str] = []
    fractions: list[float] = []
    memory_limits: list[int] = []
    try:
        entries = parse_gpu_devices(annotation)
    except DeviceSpecError as error:
        raise AssignmentError(str(error)) from None
    for entry in entries:
        device = by_index.get(entry.index)
        if device is None:
            raise AssignmentError(f"{GPU_DEVICES_ANNOTATION}: device {entry.index} does not exist on this node")
        if entry.mig_profile is not None:
            match = [s for s in device.mig if s.profile == entry.mig_profile and s.slot == entry.mig_slot]
            if not match:
                raise AssignmentError(f"{GPU_DEVICES_ANNOTATION}: device {entry.index} has no MIG slice "
                                      f"{entry.mig_profile} slot {entry.mig_slot}")
            visible.append(match[0].uuid)
        else:
            visible.append(str(entry.index))
            if not entry.whole:
                fractions.append(float(entry.fraction))
                memory_limits.append(int(device.memory_mib * entry.fraction))
    env["CUDA_VISIBLE_DEVICES"] = ",".join(visible)
    env["NVIDIA_VISIBLE_DEVICES"] = ",".join(visible)
    if fractions:
        fraction = min(fractions)
        limit = min(memory_limits)
        env["CORRAL_GPU_FRACTION"] = _format_fraction(fraction)
        env["CORRAL_GPU_MEMORY_LIMIT_MIB"] = str(limit)
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(max(1, round(fraction * 100)))
        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = ",".join(
            f"{i}={m}M" for i, m in enumerate(memory_limits))
    return env


def _format_fraction(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text or "0"
