"""Upper bounds on allocation (corral.sim.trace.bound): hand-computed cases and soundness
against real replays of a small trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corral.scheduler.framework import PodRequest
from corral.sim.trace import load_trace, replay
from corral.sim.trace.bound import Cls, NodeType, anchor_classes, bound_sequence, node_types, run_bound

pytest.importorskip("scipy")

GI = 2**30


def share(key: str, m: int, cpu: int = 1000) -> PodRequest:
    return PodRequest(key, cpu_milli=cpu, memory=GI, gpu_count=1, gpu_milli=m)


def whole(key: str, k: int = 1, cpu: int = 4000) -> PodRequest:
    return PodRequest(key, cpu_milli=cpu, memory=2 * GI, gpu_count=k)


def test_anchors_are_the_most_common_shares() -> None:
    pods = [share(f"a{i}", 810) for i in range(10)] + [share(f"b{i}", 650) for i in range(5)]
    pods += [share(f"c{i}", 470) for i in range(100)] + [whole(f"w{i}") for i in range(300)]
    pods += [share("rare", 160)]  # under 1 % of GPU pods: not an anchor
    assert anchor_classes(pods) == [Cls.of(pods[-2 - 300]), Cls.of(pods[0]), Cls.of(pods[10])]
    assert anchor_classes(pods, limit=1) == [Cls.of(pods[15])]
    assert anchor_classes([whole("w")]) == []


def test_dominance() -> None:
    a = Cls.of(share("a", 810, cpu=3000))
    assert Cls.of(whole("w", cpu=4000)).dominates(a)
    assert not Cls.of(whole("w", cpu=2000)).dominates(a)  # needs less cpu: may fit where a cannot
    assert not Cls.of(share("s", 800, cpu=4000)).dominates(a)
    restricted = Cls(1000, 1, 4000, 2 * GI, ("T4",))
    assert restricted.dominates(a)  # a accepts any model
    assert not a.dominates(restricted)


def test_online_bound_by_hand() -> None:
    # one node, 2 GPUs; an 810 share, then two whole GPUs. Offline: drop the share, place both
    # wholes (100 %). Online: the share fits on arrival (takes a device), so one whole GPU fails:
    # 1810 of 2000 milli, whatever the policy.
    types = [NodeType(1, 2, 32000, 64 * GI, "T4")]
    seq = [share("a", 810), whole("w1"), whole("w2")]
    out = bound_sequence(types, seq, 2000, [Cls.of(seq[0])])
    assert out["offline_pct"] == pytest.approx(100.0)
    assert out["online_pct"] == pytest.approx(90.5)
    assert out["exact"]
    # a 190 share arriving later fills the 810's device: 100 % online too
    out = bound_sequence(types, [*seq, share("s", 190)], 2000, [Cls.of(seq[0])])
    assert out["online_pct"] == pytest.approx(100.0)


def test_anchor_that_fails_caps_the_dominating_pods_after_it() -> None:
    # 1 GPU; two 810 shares then a whole GPU: the first share is placed; the second fails, and
    # from then on no whole GPU can be placed either -> 81 % online, 100 % offline
    types = [NodeType(1, 1, 32000, 64 * GI, "T4")]
    seq = [share("a1", 810), share("a2", 810), whole("w")]
    out = bound_sequence(types, seq, 1000, [Cls.of(seq[0])])
    assert (out["offline_pct"], out["online_pct"]) == (pytest.approx(100.0), pytest.approx(81.0))
    assert out["anchors"][0]["first_failure_index"] == [1, 1]


def test_cpu_and_models_limit_the_lp() -> None:
    # the whole-GPU pods want a V100 and 40 cores; the node is a T4 with 32: nothing fits
    types = [NodeType(1, 2, 32000, 64 * GI, "T4")]
    w = PodRequest("w", cpu_milli=4000, memory=GI, gpu_count=1, gpu_models=frozenset({"V100M32"}))
    assert bound_sequence(types, [w], 2000, [])["offline_pct"] == 0.0
    big = whole("big", cpu=40000)
    assert bound_sequence(types, [big], 2000, [])["offline_pct"] == 0.0
    # two 16-core whole pods fit the 32 cores; a third does not
    pods = [whole(f"w{i}", cpu=16000) for i in range(3)]
    assert bound_sequence(types, pods, 2000, [])["offline_pct"] == pytest.approx(100.0)
    types4 = [NodeType(1, 4, 32000, 64 * GI, "T4")]
    assert bound_sequence(types4, pods, 4000, [])["offline_pct"] == pytest.approx(50.0)


NODES = ("sn,cpu_milli,memory_mib,gpu,model\n"
         "n0,32000,65536,2,T4\nn1,32000,65536,2,T4\nn2,64000,131072,4,V100M32\nn3,16000,32768,1,T4\n")
HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"


def test_bound_is_above_every_policy_on_a_small_trace(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = []
    for i in range(12):
        kind = rng.integers(5)
        if kind == 0:
            rows.append(f"p{i:03d},{int(rng.choice([2000, 6000]))},2048,1,810,,LS,Running,0,1,0\n")
        elif kind == 1:
            rows.append(f"p{i:03d},{int(rng.choice([4000, 12000]))},4096,1,1000,,LS,Running,0,1,0\n")
        elif kind == 2:
            rows.append(f"p{i:03d},4000,2048,1,{int(rng.choice([160, 320, 470, 650]))},,LS,Running,0,1,0\n")
        elif kind == 3:
            rows.append(f"p{i:03d},8000,4096,2,1000,V100M32,LS,Running,0,1,0\n")
        else:
            rows.append(f"p{i:03d},8000,4096,0,0,,LS,Running,0,1,0\n")
    n, p = tmp_path / "nodes.csv", tmp_path / "openb_pod_list_small.csv"
    n.write_text(NODES)
    p.write_text(HEADER + "".join(rows))
    trace = load_trace(n, p)
    assert len(node_types(trace)) == 3
    for seed in (1, 2, 3):
        b = run_bound(trace, seed)
        assert b["online_pct"] <= b["offline_pct"] + 1e-6
        for policy in ("bestfit", "fgd", "corral", "random"):
            run = replay(trace, policy, seed)
            got = 100.0 * float(run.used_milli[-1]) / trace.gpu_milli_capacity
            assert got <= b["online_pct"] + 1e-3, (seed, policy, got, b)


def test_cli_prints_one_line_per_seed_and_a_summary(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from corral.cli.main import cli

    n, p = tmp_path / "nodes.csv", tmp_path / "openb_pod_list_two.csv"
    n.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,32000,65536,2,T4\n")
    # an 810 share and two whole GPUs (2810 of 2000 milli: trimmed to <= 2600 by the protocol)
    p.write_text(HEADER + "a,1000,1024,1,810,,LS,Running,0,1,0\n"
                          "w1,4000,2048,1,1000,,LS,Running,0,1,0\nw2,4000,2048,1,1000,,LS,Running,0,1,0\n")
    res = CliRunner().invoke(cli, ["sim", "bound", "--nodes", str(n), "--pods", str(p), "--seeds", "1,2"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert [x["seed"] for x in lines[:2]] == [1, 2] and lines[2]["seeds"] == [1, 2]
    for x in lines[:2]:
        assert x["online_pct"] <= x["offline_pct"] <= 100.0
    bad = CliRunner().invoke(cli, ["sim", "bound", "--nodes", str(n), "--pods", str(p), "--seeds", "x"])
    assert bad.exit_code != 0 and "--seeds" in bad.output
