"""GPU devices: whole GPUs, MIG slices and shares of one device, placed on exact devices.

Filter (vectorised over ``(node, device)`` cells): the node's GPU model is one the pod
accepts (``gpu_models``); whole GPUs need ``gpu_count`` fully free non-MIG devices; a share
(``corral.dev/gpu-fraction`` → milli, or ``corral.dev/gpu-memory`` → milli of each device's
memory) needs one device with that much free — a share is never split across devices;
MIG requests need that many free slices of each profile.

Device choice (the default rule, used unless the profile's score policy has its own):
whole GPUs take the lowest-indexed fully free devices, preferring one NVLink island that
can hold them all; a share takes the fullest device it fits on (best fit, lowest index on
ties); MIG takes the lowest free slots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import (
    CycleState,
    DeviceAssignment,
    FilterResult,
    PodRequest,
    Rejection,
    Status,
)
from corral.scheduler.framework.types import GPU_RESOURCE, MIG_PREFIX, MILLI

NAME = "GpuDevices"
REASON_GPU = f"Insufficient {GPU_RESOURCE}"
REASON_MODEL = "node(s) didn't have the requested GPU model"


def model_mask(snapshot: Snapshot, pod: PodRequest) -> np.ndarray:
    if pod.gpu_models is None:
        return np.ones(len(snapshot), dtype=np.bool_)
    ids = [i for i, m in enumerate(snapshot.models) if m in pod.gpu_models]
    return np.isin(snapshot.model_id, np.array(ids, dtype=np.int64))


class GpuDevices:
    name = NAME

    def pre_filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> Status:
        if pod.gpu_count and not pod.is_share and len(snapshot) and int(snapshot.gpu_count.max()) < pod.gpu_count:
            return Status.unresolvable(f"no node has {pod.gpu_count} {GPU_RESOURCE}")
        return Status.success()

    def filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> FilterResult:
        n = len(snapshot)
        if not pod.wants_gpu:
            return FilterResult(snapshot.all_nodes)
        rej: list[Rejection] = []
        if pod.gpu_models is not None:
            rej.append(Rejection(REASON_MODEL, ~model_mask(snapshot, pod), resolvable=False))
        if pod.gpu_count:
            free = snapshot.gpu_free
            # shares by milli and whole GPUs read the snapshot's per-node indexes (most free on
            # one device, wholly free devices) rather than scanning every (node, device) cell
            if pod.is_share:
                if pod.gpu_memory_mib:
                    fits = (free >= snapshot.gpu_need_milli(pod)).any(axis=1)
                else:
                    fits = snapshot.gpu_max_free >= pod.gpu_milli
                never = snapshot.gpu_count < 1
            else:
                fits = snapshot.gpu_whole_free >= pod.gpu_count
                never = snapshot.gpu_count < pod.gpu_count
            rej.append(Rejection(REASON_GPU, ~fits & never, resolvable=False))
            rej.append(Rejection(REASON_GPU, ~fits & ~never))
        for profile, count in pod.mig.items():
            reason = f"Insufficient {MIG_PREFIX}{profile}"
            col = snapshot.mig_index.get(profile)
            if col is None:
                rej.append(Rejection(reason, np.ones(n, dtype=np.bool_), resolvable=False))
            else:
                rej.append(Rejection(reason, snapshot.mig_free[:, col] < count, resolvable=bool((snapshot.mig_cap[:, col] >= count).any())))
        return FilterResult.of(n, *rej)

    def choose_devices(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, node: int) -> tuple[DeviceAssignment, ...] | None:
        spec = snapshot.specs[node]
        free = snapshot.gpu_free[node]
        out: list[DeviceAssignment] = []
        if pod.gpu_count and pod.is_share:
            need = snapshot.gpu_need_milli(pod)[node]
            ok = np.flatnonzero(free >= need)
            if len(ok) == 0:
                return None
            c = int(ok[np.lexsort((ok, free[ok]))[0]])
            out.append(DeviceAssignment(spec.devices[c].index, int(need[c])))
        elif pod.gpu_count:
            whole = np.flatnonzero(free >= MILLI)
            if len(whole) < pod.gpu_count:
                return None
            chosen = whole[: pod.gpu_count]
            if pod.gpu_count > 1:
                islands = snapshot.gpu_island[node, whole]
                for isl in sorted(set(islands.tolist())):
                    members = whole[islands == isl]
                    if len(members) >= pod.gpu_count:
                        chosen = members[: pod.gpu_count]
                        break
            out.extend(DeviceAssignment(spec.devices[int(c)].index) for c in chosen)
        for profile, count in pod.mig.items():
            got = 0
            for col, sl in snapshot.mig_slices[node]:
                if got == count:
                    break
                if sl.profile == profile and (node, col, profile, sl.slot) not in snapshot.mig_used:
                    out.append(DeviceAssignment(spec.devices[col].index, mig_profile=profile, mig_slot=sl.slot))
                    got += 1
            if got < count:
                return None
        return tuple(out)


def new(args: Mapping[str, Any]) -> GpuDevices:
    return GpuDevices()
