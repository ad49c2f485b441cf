"""The GPU device contract shared by the scheduler, the agent, the simulator and the dashboard.

- Node annotation ``corral.dev/devices``: the device inventory, a JSON list of
  ``{"index", "uuid", "model", "memoryMiB", "simulated", "nvlinkIsland", "mig": [...]}``.
- Pod annotation ``corral.dev/gpu-devices``: the scheduler's assignment, written in the
  binding — comma-separated entries ``IDX`` (a whole GPU), ``IDX:FRACTION`` (a share of
  one GPU, e.g. ``3:0.5``) or ``IDX:mig-PROFILE:SLOT`` (a MIG slice, e.g.
  ``2:mig-1g.10gb:0``).

One parser and one formatter live here so every component reads the same thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

DEVICES_ANNOTATION = "corral.dev/devices"
GPU_DEVICES_ANNOTATION = "corral.dev/gpu-devices"
GPU_FRACTION_ANNOTATION = "corral.dev/gpu-fraction"
GPU_MEMORY_ANNOTATION = "corral.dev/gpu-memory"
SIMULATED_GPUS_LABEL = "corral.dev/simulated-gpus"
GPU_RESOURCE = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"


class DeviceSpecError(ValueError):
    """An assignment or inventory annotation that does not follow the contract."""


@dataclass(frozen=True)
class DeviceAssignment:
    """One entry of ``corral.dev/gpu-devices``.

    ``fraction`` is 1 for a whole GPU; ``mig_profile``/``mig_slot`` are set for a MIG slice.
    """

    index: int
    fraction: Fraction = Fraction(1)
    mig_profile: str | None = None
    mig_slot: int | None = None

    @property
    def whole(self) -> bool:
        return self.mig_profile is None and self.fraction == 1

    def __str__(self) -> str:
        if self.mig_profile is not None:
            return f"{self.index}:mig-{self.mig_profile}:{self.mig_slot}"
        if self.fraction == 1:
            return str(self.index)
        return f"{self.index}:{_format_fraction(self.fraction)}"


def _format_fraction(fraction: Fraction) -> str:
    text = f"{float(fraction):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def parse_gpu_devices(text: str | None) -> list[DeviceAssignment]:
    """Parse ``corral.dev/gpu-devices``; an empty or missing annotation is no devices."""
    if not text or not text.strip():
        return []
    assignments = []
    for raw in text.split(","):
        entry = raw.strip()
        parts = entry.split(":")
        try:
            index = int(parts[0])
            if index < 0:
                raise ValueError
            if len(parts) == 1:
                assignments.append(DeviceAssignment(index))
            elif len(parts) == 2:
                fraction = Fraction(parts[1])
                if not 0 < fraction <= 1:
                    raise ValueError
                assignments.append(DeviceAssignment(index, fraction))
            elif len(parts) == 3 and parts[1].startswith("mig-") and len(parts[1]) > 4:
                assignments.append(DeviceAssignment(index, Fraction(1), parts[1][4:], int(parts[2])))
            else:
                raise ValueError
        except ValueError:
            raise DeviceSpecError(
                f"{GPU_DEVICES_ANNOTATION}: entry {entry!r} is not IDX, IDX:FRACTION (0<F<=1) or IDX:mig-PROFILE:SLOT"
            ) from None
    return assignments


def format_gpu_devices(assignments: list[DeviceAssignment]) -> str:
    return ",".join(str(assignment) for assignment in assignments)


def parse_device_inventory(text: str | None) -> list[dict[str, Any]]:
    """Parse a node's ``corral.dev/devices`` annotation (a JSON list of device objects)."""
    if not text:
        return []
    try:
        devices = json.loads(text)
    except ValueError as error:
        raise DeviceSpecError(f"{DEVICES_ANNOTATION}: not valid JSON ({error})") from None
    if not isinstance(devices, list) or not all(isinstance(d, dict) and "index" in d for d in devices):
        raise DeviceSpecError(f"{DEVICES_ANNOTATION}: expected a JSON list of objects with an 'index'")
    return devices
