"""BalancedAllocation balances cpu against memory only, as kube-scheduler's default does."""

import numpy as np

from corral.scheduler.cache import DeviceSpec, NodeSpec, Snapshot
from corral.scheduler.framework import CycleState, DeviceAssignment, PodRequest
from corral.scheduler.plugins.allocation import BalancedAllocation


def test_gpu_use_does_not_spread_small_gpu_pods() -> None:
    def node(name: str) -> NodeSpec:
        return NodeSpec(name, cpu_milli=64000, memory=2**38, devices=tuple(DeviceSpec(i, "H100") for i in range(8)))

    snap = Snapshot([node("busy"), node("empty")])
    for index in range(7):  # seven GPUs used on "busy", cpu and memory untouched
        snap.assume(PodRequest(f"p{index}", gpu_count=1), 0, (DeviceAssignment(index),))
    pod = PodRequest("one-gpu", cpu_milli=1000, memory=2**30, gpu_count=1)
    scores = BalancedAllocation().score(CycleState(), snap, pod, np.array([0, 1]))
    assert scores[0] == scores[1]  # before: the empty node won, leaving no node with 8 free GPUs


def test_cpu_memory_imbalance_still_scores_lower() -> None:
    snap = Snapshot([NodeSpec("n", cpu_milli=10000, memory=10 * 2**30, devices=())])
    balanced = PodRequest("balanced", cpu_milli=5000, memory=5 * 2**30)
    skewed = PodRequest("skewed", cpu_milli=9000, memory=2**30)
    plugin = BalancedAllocation()
    nodes = np.array([0])
    assert plugin.score(CycleState(), snap, balanced, nodes)[0] > plugin.score(CycleState(), snap, skewed, nodes)[0]


def test_score_is_one_minus_the_std_of_cpu_and_memory_shares() -> None:
    rng = np.random.default_rng(7)
    specs = [NodeSpec(f"n{i}", cpu_milli=int(rng.integers(1000, 64000)), memory=int(rng.integers(2**30, 2**38)), devices=())
             for i in range(20)]
    snap = Snapshot(specs)
    for i in range(20):
        snap.assume(PodRequest(f"used{i}", cpu_milli=int(rng.integers(0, 900)), memory=int(rng.integers(0, 2**29))), i)
    pod = PodRequest("p", cpu_milli=700, memory=3 * 2**28)
    nodes = np.arange(20)
    cpu = np.minimum((snap.cpu_used + pod.cpu_milli) / snap.cpu_cap, 1.0)
    mem = np.minimum((snap.mem_used + pod.memory) / snap.mem_cap, 1.0)
    expected = 100.0 * (1.0 - np.std(np.stack([cpu, mem], axis=1), axis=1))
    assert np.allclose(BalancedAllocation().score(CycleState(), snap, pod, nodes), expected)
