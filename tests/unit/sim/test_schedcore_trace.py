"""Trace replay on hand-made traces: loader, inflation, metrics, CLI outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from corral.cli.main import cli
from corral.scheduler.framework import PodRequest
from corral.sim.trace import load_trace, replay
from corral.sim.trace.loaders import TraceFormatError
from corral.sim.trace.metrics import aggregate, discretise
from corral.sim.trace.replay import inflate
from corral.sim.trace.runner import parse_seeds

NODES = "sn,cpu_milli,memory_mib,gpu,model\nn0,8000,16384,1,T4\nn1,16000,32768,2,V100M32\n"
POD_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"


def write(tmp_path: Path, pods: str) -> tuple[Path, Path]:
    n = tmp_path / "openb_node_list_gpu_node.csv"
    p = tmp_path / "openb_pod_list_tiny.csv"
    n.write_text(NODES)
    p.write_text(POD_HEADER + pods)
    return n, p


def test_loader_reads_the_published_columns(tmp_path: Path) -> None:
    n, p = write(tmp_path, "p2,2000,1024,0,0,,BE,Running,0,1,0\n"
                           "p0,1000,1024,1,460,,LS,Running,0,1,0\n"
                           "p1,4000,2048,1,1000,V100M16|V100M32,LS,Running,0,1,0\n"
                           "p3,4000,2048,2,1000,nan,LS,Failed,0,,\n")
    t = load_trace(n, p)
    assert t.name == "openb_pod_list_tiny" and t.gpu_milli_capacity == 3000
    assert [x.name for x in t.nodes] == ["n0", "n1"] and t.nodes[1].model == "V100M32"
    pods = {x.key: x for x in t.pods}
    assert [x.key for x in t.pods] == ["p0", "p1", "p2", "p3"]  # sorted by name
    assert pods["p0"].is_share and pods["p0"].gpu_milli == 460 and pods["p0"].gpu_models is None
    assert pods["p1"].gpu_models == frozenset({"V100M16", "V100M32"}) and not pods["p1"].is_share
    assert not pods["p2"].wants_gpu and pods["p2"].memory == 1024 * 2**20
    assert pods["p3"].gpu_count == 2 and pods["p3"].gpu_models is None


def test_loader_errors_name_the_file_and_column(tmp_path: Path) -> None:
    n, p = write(tmp_path, "p0,abc,1024,1,460,,LS,Running,0,1,0\n")
    with pytest.raises(TraceFormatError, match=r"openb_pod_list_tiny.csv:2: column 'cpu_milli'"):
        load_trace(n, p)
    p.write_text("a,b\n1,2\n")
    with pytest.raises(TraceFormatError, match="unknown trace format"):
        load_trace(n, p)


def test_inflation_appends_clones_until_130_percent(tmp_path: Path) -> None:
    # 3 GPUs (3000 milli), 3 half-GPU pods (1500): clones of 500 while D + 500 <= 3900 -> 4 clones
    pods = tuple(PodRequest(f"p{i}", cpu_milli=1000, gpu_count=1, gpu_milli=500) for i in range(3))
    out = inflate(list(pods), pods, 3000, np.random.default_rng(1))
    assert [p.key for p in out[:3]] == ["p0", "p1", "p2"]
    assert len(out) == 7 and all("-clone-" in p.key for p in out[3:])
    # above the target: random pods are dropped until D <= 1.3 * capacity
    big = [PodRequest(f"w{i}", gpu_count=1) for i in range(3)]
    assert len(inflate(big, tuple(big), 1000, np.random.default_rng(1))) == 1


def test_replay_records_and_metrics_by_hand(tmp_path: Path) -> None:
    # 3 GPUs and only half-GPU pods: 6 fit, the 7th (a clone) fails; arrived goes 500..3500
    n, p = write(tmp_path, "".join(f"p{i},1000,1024,1,500,,LS,Running,0,1,0\n" for i in range(3)))
    run = replay(load_trace(n, p), "bestfit", 42)
    assert (run.placed, run.failed) == (6, 1)
    assert run.arrived_milli.tolist() == [500, 1000, 1500, 2000, 2500, 3000, 3500]
    assert run.used_milli.tolist() == [500, 1000, 1500, 2000, 2500, 3000, 3000]
    d = discretise(run, xs=(17, 33, 50, 67, 83, 100, 117, 130))
    assert d["alloc_ratio"] == {17: 16.67, 33: 33.33, 50: 50.0, 67: 66.67, 83: 83.33, 100: 100.0, 117: 100.0}
    assert d["unallocated_gpus"][50] == 50.0
    # the workload is one 500-milli class: free halves are no fragment; at the end nothing is idle
    assert d["frag_amount"][100] == 0.0
    agg = aggregate([d, d])
    assert agg["alloc_ratio"][50] == (50.0, 0.0)


def test_fragmentation_metric_counts_unusable_idle_gpu(tmp_path: Path) -> None:
    # one GPU; the workload is 3 x 600-milli shares: after the first, 400 idle milli fit no one
    n = tmp_path / "nodes.csv"
    n.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,8000,16384,1,T4\n")
    p = tmp_path / "pods.csv"
    p.write_text(POD_HEADER + "".join(f"p{i},1000,1024,1,600,,LS,Running,0,1,0\n" for i in range(3)))
    run = replay(load_trace(n, p), "fgd", 0, ratio=1.3)
    assert run.used_milli[0] == 600
    assert run.frag_milli[0] == pytest.approx(400.0)


def test_parse_seeds() -> None:
    assert parse_seeds("42-45") == [42, 43, 44, 45]
    assert parse_seeds("1,3,2-3") == [1, 3, 2]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("x")


def test_cli_json_table_and_files(tmp_path: Path) -> None:
    n, p = write(tmp_path, "".join(f"p{i},1000,1024,1,{m},,LS,Running,0,1,0\n" for i, m in enumerate([300, 500, 700, 1000])))
    out = tmp_path / "results"
    runner = CliRunner()
    res = runner.invoke(cli, ["sim", "trace", "--nodes", str(n), "--pods", str(p), "--policy", "bestfit,fgd",
                              "--seeds", "1-2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["trace"] == "openb_pod_list_tiny" and summary["seeds"] == [1, 2]
    assert set(summary["policies"]) == {"bestfit", "fgd"}
    entry = summary["policies"]["fgd"]
    assert {"alloc_ratio", "alloc_ratio_std", "frag_ratio", "frag_amount", "unallocated_gpus"} <= set(entry)
    assert "50" in entry["alloc_ratio"]
    for f in ("summary.json", "curves.csv", "alloc_ratio.png", "frag_ratio.png"):
        assert (out / f).stat().st_size > 0
    assert (out / "curves.csv").read_text().splitlines()[0].startswith("trace,policy,arrived_pct,alloc_ratio_mean")
    table = runner.invoke(cli, ["sim", "trace", "--nodes", str(n), "--pods", str(p), "--policy", "gpu-packing", "--jobs", "2"])
    assert table.exit_code == 0, table.output
    assert "GpuPacking" in table.output
    bad = runner.invoke(cli, ["sim", "trace", "--nodes", str(n), "--pods", str(p), "--policy", "nope"])
    assert bad.exit_code != 0 and "unknown policy nope" in bad.output
