"""Scores by node utilisation after placement: LeastAllocated (spread) and MostAllocated
(bin-pack) over cpu, memory and GPUs (milli), BalancedAllocation (equal shares) over cpu and memory.
Three plugins in one package because they share the utilisation arithmetic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import CycleState, PodRequest
from corral.scheduler.framework.interfaces import FloatArray, IntArray


def _fractions(snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
    """Used fraction after placing ``pod``, shape (len(nodes), 3): cpu, memory, gpu
    (gpu column NaN on nodes without GPUs)."""
    cpu = (snapshot.cpu_used[nodes] + pod.cpu_milli) / np.maximum(snapshot.cpu_cap[nodes], 1)
    mem = (snapshot.mem_used[nodes] + pod.memory) / np.maximum(snapshot.mem_cap[nodes], 1)
    cap = snapshot.gpu_cap[nodes].sum(axis=1)
    used = cap - snapshot.gpu_free[nodes].sum(axis=1) + pod.gpu_total_milli
    with np.errstate(invalid="ignore", divide="ignore"):
        gpu = np.where(cap > 0, used / np.maximum(cap, 1), np.nan)
    return np.asarray(np.minimum(np.stack([cpu, mem, gpu], axis=1), 1.0), dtype=np.float64)


class LeastAllocated:
    name = "LeastAllocated"

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        return np.asarray(100.0 * (1.0 - np.nanmean(_fractions(snapshot, pod, nodes), axis=1)))


class MostAllocated:
    name = "MostAllocated"

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        return np.asarray(100.0 * np.nanmean(_fractions(snapshot, pod, nodes), axis=1))


class BalancedAllocation:
    """Balances cpu against memory, as kube-scheduler's default does. GPUs are left out on
    purpose: counting them made every 1-GPU pod prefer the emptiest GPU node, spreading small
    pods until no node kept 8 GPUs free for a whole-node job (GPU placement is the GPU
    policy's job, ``corral``/``fgd``)."""

    name = "BalancedAllocation"

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        # the standard deviation of two shares is half their distance: no GPU column, no std
        cpu = np.minimum((snapshot.cpu_used[nodes] + pod.cpu_milli) / np.maximum(snapshot.cpu_cap[nodes], 1), 1.0)
        mem = np.minimum((snapshot.mem_used[nodes] + pod.memory) / np.maximum(snapshot.mem_cap[nodes], 1), 1.0)
        return np.asarray(100.0 * (1.0 - 0.5 * np.abs(cpu - mem)), dtype=np.float64)


def new_least(args: Mapping[str, Any]) -> LeastAllocated:
    return LeastAllocated()


def new_most(args: Mapping[str, Any]) -> MostAllocated:
    return MostAllocated()


def new_balanced(args: Mapping[str, Any]) -> BalancedAllocation:
    return BalancedAllocation()
