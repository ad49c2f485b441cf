"""Every published policy's choice on a tiny cluster, computed by hand (see the comments).

Cluster (MAXCPU = 64000, MAXGPU = 4000 — the largest node's cpu and GPU milli):
  A: 32 cores, 2 GPUs, free [1000, 1000]              rank 2
  B: 16 cores, 2 GPUs, a 600-milli share on GPU 0     rank 1   free [400, 1000]
  C: 64 cores, 4 GPUs, a whole GPU on GPU 0           rank 0   free [0, 1000, 1000, 1000]
FGD's target workload: one class, a 300-milli share with 4 cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from corral.scheduler.cache import DeviceSpec, NodeSpec, Snapshot
from corral.scheduler.fragmentation import PodClass, Workload
from corral.scheduler.framework import (
    CycleState,
    DeviceAssignment,
    Framework,
    PodRequest,
    Profile,
    schedule_group,
)
from corral.scheduler.plugins import default_registry


def cluster() -> Snapshot:
    def n(name: str, cpu: int, gpus: int) -> NodeSpec:
        return NodeSpec(name, cpu_milli=cpu, memory=2**40, devices=tuple(DeviceSpec(i, "G") for i in range(gpus)))

    snap = Snapshot([n("A", 32000, 2), n("B", 16000, 2), n("C", 64000, 4)], rank=[2, 1, 0])
    snap.assume(PodRequest("b0", gpu_count=1, gpu_milli=600), 1, (DeviceAssignment(0, 600),))
    snap.assume(PodRequest("c0", gpu_count=1), 2, (DeviceAssignment(0),))
    return snap


WORKLOAD = Workload([(PodClass(4000, 300, 1), 1)])
SHARE = PodRequest("share", cpu_milli=4000, gpu_count=1, gpu_milli=300)
TWO = PodRequest("two", cpu_milli=8000, gpu_count=2)
CPU = PodRequest("cpu", cpu_milli=30000)


def place(policy: str, pod: PodRequest, snap: Snapshot | None = None) -> tuple[str, str, np.ndarray]:
    snap = snap or cluster()
    args = {"workload": WORKLOAD} if policy in ("fgd", "corral") else {}
    fw = Framework(Profile.for_policy(policy, args=args), default_registry())
    feasible = np.flatnonzero(fw.feasible(CycleState(), snap, pod)[0])
    scores = fw.run_score(CycleState(), snap, pod, feasible)
    res = schedule_group(snap, [pod], fw, rng=np.random.default_rng(0))
    assert res.ok
    return res.placements[0].node, res.placements[0].gpu_devices, scores


# share (4 cores, 300 milli):
#  bestfit  A: 100(1-(.5*28000/64000 + .5*1700/4000)) = 56.875 -> 56; B: 76.875 -> 76; C: 19.375 -> 19
#  dotprod  A: 100(1-(.5*.0625+.5*.075)/2) = 96.56 -> 96; B: 97.9 -> 97; C: 94.06 -> 94
#  gpu-clustering  A: 25*2000//4000 + 25 = 37; B: 25*2600//4000 + 75 = 91; C: 25*1000//4000 + 0 = 6
#  gpu-packing  A: all free -> max(33-2, 2) = 31; B: tightest GPU 400 -> 100 - 40//10 = 96; C: needs a free GPU -> 49
#  fgd  every node keeps a >=300 GPU and enough cpu -> dFrag 0 -> 50 everywhere (B's GPU 0 would leave 100 < 300:
#       47; its GPU 1 gives 50) -> tie -> lowest rank C, first best GPU there is 1.
@pytest.mark.parametrize(
    ("policy", "node", "devices", "scores"),
    [
        ("bestfit", "B", "0:0.3", [56, 76, 19]),
        ("dotprod", "B", "0:0.3", [96, 97, 94]),
        ("gpu-clustering", "B", "0:0.3", [37, 91, 6]),
        ("gpu-packing", "B", "0:0.3", [31, 96, 49]),
        ("fgd", "C", "1:0.3", [50, 50, 50]),
    ],
)
def test_share_pod(policy: str, node: str, devices: str, scores: list[int]) -> None:
    got_node, got_devices, got_scores = place(policy, SHARE)
    assert (got_node, got_devices) == (node, devices)
    assert got_scores.tolist() == scores


# two whole GPUs (8 cores): B has one free GPU only, so A and C are feasible
#  bestfit  A: 100(1-(.5*24000/64000 + 0)) = 81.25 -> 81; C: 100(1-(.4375+.125)) = 43.75 -> 43
#  dotprod  A: 100(1-(.5*.125 + .5*.5)/2) = 84.4 -> 84; C: 100(1-(.125+.375)/2) = 75
#  gpu-clustering  A: 12 + 25 (no GPU pods) = 37; C: 6 + 0 (holds a 1-gpu pod) = 6
#  gpu-packing  A: all free -> 31; C: uses 2 free GPUs on a used node -> max(50-2, 33) = 48
#  fgd  A left [0,0]: the 300 class does not fit -> all idle (0) is fragment -> 50; C keeps GPU 3 -> 50 -> rank: C
@pytest.mark.parametrize(
    ("policy", "node", "devices", "scores"),
    [
        ("bestfit", "A", "0,1", [81, 43]),
        ("dotprod", "A", "0,1", [84, 75]),
        ("gpu-clustering", "A", "0,1", [37, 6]),
        ("gpu-packing", "C", "1,2", [31, 48]),
        ("fgd", "C", "1,2", [50, 50]),
    ],
)
def test_whole_gpus(policy: str, node: str, devices: str, scores: list[int]) -> None:
    got_node, got_devices, got_scores = place(policy, TWO)
    assert (got_node, got_devices) == (node, devices)
    assert got_scores.tolist() == scores


# CPU-only (30 cores): A and C are feasible
#  bestfit  A: 100(1-(.5*2000/64000 + .5*2000/4000)) = 73.4 -> 73; C: 100(1-(.265625+.375)) = 35.9 -> 35
#  dotprod  A: 100(1-(.5*.46875)/2) = 88.3 -> 88; C: 100(1-.46875/2) = 76.6 -> 76
#  gpu-clustering, gpu-packing: 0 everywhere -> rank -> C
#  fgd  A is left with 2 cores < 4: its 2000 idle milli become fragment: 100*sigmoid(-2) = 11.9 -> 11; C: 50
@pytest.mark.parametrize(
    ("policy", "node", "scores"),
    [("bestfit", "A", [73, 35]), ("dotprod", "A", [88, 76]), ("gpu-clustering", "C", [0, 0]),
     ("gpu-packing", "C", [0, 0]), ("fgd", "C", [11, 50])],
)
def test_cpu_only(policy: str, node: str, scores: list[int]) -> None:
    got_node, devices, got_scores = place(policy, CPU)
    assert (got_node, devices) == (node, "")
    assert got_scores.tolist() == scores


def test_random_is_seeded_and_feasible() -> None:
    picks = set()
    for seed in range(20):
        snap = cluster()
        fw = Framework(Profile.for_policy("random"), default_registry())
        res = schedule_group(snap, [SHARE], fw, rng=np.random.default_rng(seed))
        again = schedule_group(cluster(), [SHARE], fw, rng=np.random.default_rng(seed))
        assert res.placements[0] == again.placements[0]
        picks.add((res.placements[0].node, res.placements[0].gpu_devices))
    # every node, and on A either GPU, fully free ones included
    assert {p[0] for p in picks} == {"A", "B", "C"}
    assert ("A", "0:0.3") in picks and ("A", "1:0.3") in picks


def test_single_feasible_node_skips_scoring() -> None:
    snap = Snapshot([NodeSpec("only", cpu_milli=4000, devices=(DeviceSpec(0, "G"),))])
    fw = Framework(Profile.for_policy("random"), default_registry())
    rng = np.random.default_rng(7)
    before = rng.bit_generator.state
    res = schedule_group(snap, [PodRequest("p", cpu_milli=1000, gpu_count=1)], fw, rng=rng)
    assert res.ok and rng.bit_generator.state == before


def test_gpu_spec_model_constraint() -> None:
    snap = Snapshot([
        NodeSpec("t4", cpu_milli=8000, devices=(DeviceSpec(0, "T4"),)),
        NodeSpec("v100", cpu_milli=8000, devices=(DeviceSpec(0, "V100M32"),)),
    ])
    fw = Framework(Profile.for_policy("bestfit"), default_registry())
    pod = PodRequest("p", cpu_milli=1000, gpu_count=1, gpu_models=frozenset({"V100M16", "V100M32"}))
    res = schedule_group(snap, [pod], fw)
    assert res.ok and res.placements[0].node == "v100"
    res = schedule_group(snap, [PodRequest("q", cpu_milli=1000, gpu_count=1, gpu_models=frozenset({"V100M16"}))], fw)
    assert res.failure is not None
    assert res.failure.reason_counts == {"node(s) didn't have the requested GPU model": 2}


# corral = (FGD score + 25·(1 − rank/N) + 5·cpu balance) / 1.3, cpu per GPU milli = 4000/300.
#  share:  FGD 50 everywhere; cpu left after / cpu the idle GPUs need: A 28000/22667 -> 1,
#          B 12000/14667 = 0.818, C 60000/36000 -> 1; rank bonus A 8.33, B 16.67, C 25
#          -> A 63.33, B 70.76, C 80 (/1.3: 48.72, 54.43, 61.54) -> C, FGD's device there: 1
#  cpu-only: A: 11 + 5·(2000/26667) + 8.33 = 19.71; C: 50 + 5·(34000/40000) + 25 = 79.25
def test_corral_policy_by_hand() -> None:
    node, devices, scores = place("corral", SHARE)
    assert (node, devices) == ("C", "1:0.3")
    assert scores == pytest.approx([63.333 / 1.3, 70.758 / 1.3, 80 / 1.3], abs=0.01)
    node, devices, scores = place("corral", CPU)
    assert (node, devices) == ("C", "")
    assert scores == pytest.approx([19.708 / 1.3, 79.25 / 1.3], abs=0.01)


def test_corral_learns_the_workload_without_one() -> None:
    snap = cluster()
    fw = Framework(Profile.for_policy("corral"), default_registry())
    for i in range(3):
        res = schedule_group(snap, [PodRequest(f"s{i}", cpu_milli=1000, gpu_count=1, gpu_milli=300)], fw)
        assert res.ok
    policy = fw.plugin("corral")
    assert policy.model.workload.classes == (PodClass(1000, 300, 1),)  # type: ignore[attr-defined]
