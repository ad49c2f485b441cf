from __future__ import annotations

import pytest

from corral.scheduler.cache import node_spec_from_obj
from corral.scheduler.framework import (
    Code,
    ConfigError,
    DeviceAssignment,
    PodSpecError,
    Profile,
    Status,
    format_gpu_devices,
    load_config,
    parse_gpu_devices,
    schedule_group,
)
from corral.scheduler.plugins import POLICIES, default_registry

from .helpers import framework, node, pod, req, snapshot


def test_status_codes_and_message() -> None:
    st = Status.unschedulable("Insufficient cpu", "Too many pods")
    assert st.code is Code.UNSCHEDULABLE and st.is_rejected() and not st.is_success()
    assert st.message == "Insufficient cpu, Too many pods"
    assert Status.success().is_success()
    assert {c.name for c in Code} == {"SUCCESS", "UNSCHEDULABLE", "UNRESOLVABLE", "WAIT", "SKIP", "ERROR"}


def test_gpu_devices_annotation_round_trip() -> None:
    devs = (DeviceAssignment(0), DeviceAssignment(3, milli=500), DeviceAssignment(2, mig_profile="1g.10gb", mig_slot=0))
    text = format_gpu_devices(devs)
    assert text == "0,3:0.5,2:mig-1g.10gb:0"
    assert parse_gpu_devices(text) == devs
    with pytest.raises(PodSpecError, match="gpu-devices"):
        parse_gpu_devices("x:y:z:w")


def test_pod_request_parsing() -> None:
    r = req(pod("a", cpu="500m", memory="2Gi", gpus=2))
    assert (r.key, r.cpu_milli, r.memory, r.gpu_count, r.gpu_milli) == ("default/a", 500, 2 * 2**30, 2, 1000)
    f = req(pod("b", fraction="0.25"))
    assert f.is_share and f.gpu_count == 1 and f.gpu_milli == 250 and f.tag == "share"
    m = req(pod("c", gpu_memory="20Gi"))
    assert m.is_share and m.gpu_memory_mib == 20480
    mig = req(pod("d", mig={"1g.10gb": 2}))
    assert mig.mig == {"1g.10gb": 2} and mig.wants_gpu
    with pytest.raises(PodSpecError, match=r"gpu-fraction.*\(0, 1\]"):
        req(pod("e", fraction="1.5"))


def test_whole_gpus_lowest_free_devices_and_one_island() -> None:
    snap = snapshot(node("n0", gpus=8, islands=[0, 0, 0, 0, 1, 1, 1, 1]))
    fw = framework(Profile.for_policy("bestfit"))
    first = schedule_group(snap, [req(pod("a", gpus=1))], fw)
    assert first.ok and first.placements[0].gpu_devices == "0"
    # 4 GPUs: island 0 has only 3 free left, so island 1 takes them all
    second = schedule_group(snap, [req(pod("b", gpus=4))], fw)
    assert second.placements[0].gpu_devices == "4,5,6,7"


def test_fraction_packs_on_one_device_best_fit() -> None:
    snap = snapshot(node("n0", gpus=2))
    fw = framework(Profile.for_policy("bestfit"))
    a = schedule_group(snap, [req(pod("a", fraction="0.5"))], fw)
    b = schedule_group(snap, [req(pod("b", fraction="0.3"))], fw)
    c = schedule_group(snap, [req(pod("c", fraction="0.3"))], fw)
    assert [a.placements[0].gpu_devices, b.placements[0].gpu_devices, c.placements[0].gpu_devices] == ["0:0.5", "0:0.3", "1:0.3"]
    assert snap.gpu_free[0].tolist() == [200, 700]


def test_gpu_memory_share_uses_device_memory() -> None:
    snap = snapshot(node("n0", gpus=1, memory_mib=40960))
    fw = framework()
    r = schedule_group(snap, [req(pod("a", gpu_memory="10Gi"))], fw)
    assert r.ok and r.placements[0].devices[0].milli == 250


def test_mig_slices() -> None:
    snap = snapshot(node("n0", gpus=2, mig={1: ["1g.10gb", "1g.10gb", "3g.40gb"]}))
    fw = framework()
    r = schedule_group(snap, [req(pod("a", mig={"1g.10gb": 2}))], fw)
    assert r.ok and r.placements[0].gpu_devices == "1:mig-1g.10gb:0,1:mig-1g.10gb:1"
    again = schedule_group(snap, [req(pod("b", mig={"1g.10gb": 1}))], fw)
    assert not again.ok and again.failure is not None
    assert again.failure.reason_counts == {"Insufficient nvidia.com/mig-1g.10gb": 1}
    # the MIG device is not handed out as a whole GPU
    whole = schedule_group(snap, [req(pod("c", gpus=2))], fw)
    assert not whole.ok


def test_gang_all_or_nothing_and_reason_counts() -> None:
    snap = snapshot(node("n0", gpus=2), node("n1", gpus=2), node("n2", taints=[{"key": "x", "value": "y", "effect": "NoSchedule"}]))
    fw = framework()
    pods = [req(pod(f"w{i}", gpus=2, group="g")) for i in range(3)]
    r = schedule_group(snap, pods, fw)
    assert not r.ok and r.failure is not None
    assert r.failure.pod == "default/w2"
    assert r.failure.reason_counts == {"Insufficient nvidia.com/gpu": 2, "node(s) had untolerated taint(s)": 1}
    assert r.failure.message() == (
        "0/3 nodes are available: 2 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint(s)."
    )
    # nothing stayed assumed
    assert snap.gpu_free.sum() == 4000 and not snap.is_assumed("default/w0")
    ok = schedule_group(snap, pods[:2], fw)
    assert ok.ok and sorted(p.node for p in ok.placements) == ["n0", "n1"]


def test_selector_affinity_taints_unschedulable() -> None:
    snap = snapshot(
        node("a", labels={"zone": "x"}),
        node("b", labels={"zone": "y"}),
        node("c", labels={"zone": "y"}, unschedulable=True),
        node("d", labels={"zone": "y"}, taints=[{"key": "gpu", "value": "only", "effect": "NoSchedule"}]),
    )
    fw = framework()
    r = schedule_group(snap, [req(pod("p", node_selector={"zone": "y"}))], fw, assume=False)
    assert r.ok and r.placements[0].node == "b"
    aff = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["y"]}]}]}}
    r = schedule_group(snap, [req(pod("q", affinity=aff))], fw, assume=False)
    assert r.ok and r.placements[0].node == "a"
    tol = [{"key": "gpu", "operator": "Equal", "value": "only", "effect": "NoSchedule"}]
    r = schedule_group(snap, [req(pod("t", tolerations=tol, node_selector={"kubernetes.io/hostname": "d"}))], fw)
    assert r.ok and r.placements[0].node == "d"
    r = schedule_group(snap, [req(pod("u", node_selector={"kubernetes.io/hostname": "c"}))], fw)
    assert not r.ok and r.failure is not None
    assert r.failure.reason_counts == {
        "node(s) were unschedulable": 1, "node(s) had untolerated taint(s)": 1, "node(s) didn't match Pod's node affinity/selector": 2}


def test_resources_fit_reasons() -> None:
    snap = snapshot(node("a", cpu="2", memory="4Gi"), node("b", cpu="8", memory="1Gi", pods=1))
    snap.add_pod_obj(pod("x", cpu="100m", memory="1Mi", node_name="b"))
    fw = framework()
    r = schedule_group(snap, [req(pod("p", cpu="4", memory="2Gi"))], fw)
    assert r.failure is not None
    assert r.failure.reason_counts == {"Insufficient cpu": 1, "Insufficient memory": 1}


def test_add_pod_obj_uses_device_annotation() -> None:
    snap = snapshot(node("n", gpus=4))
    assert snap.add_pod_obj(pod("x", gpus=2, node_name="n", devices="1,3"))
    assert snap.gpu_free[0].tolist() == [1000, 0, 1000, 0]
    snap.forget("default/x")
    assert snap.gpu_free[0].tolist() == [1000] * 4


def test_config_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sched.yaml"
    path.write_text(
        "profiles:\n- schedulerName: corral\n  plugins: [NodeResourcesFit, GpuDevices, {name: fgd, weight: 3}]\n"
        "- schedulerName: packer\n  disabled: [corral]\n"
    )
    profiles = load_config(path)
    assert [p.name for p in profiles["corral"].plugins] == ["NodeResourcesFit", "GpuDevices", "fgd"]
    assert profiles["corral"].plugins[2].weight == 3
    assert "corral" not in [p.name for p in profiles["packer"].plugins]
    fw = framework(profiles["corral"])
    assert [(p.name, w) for p, w in fw.score] == [("fgd", 3)]
    path.write_text("profiles:\n- plugins: [{name: fgd, weight: -1}]\n")
    with pytest.raises(ConfigError, match=r"profiles\[0\]\.plugins\[0\]\.weight"):
        load_config(path)


def test_every_policy_is_registered() -> None:
    reg = default_registry()
    for name in POLICIES:
        assert name in reg
    with pytest.raises(KeyError, match="unknown scheduler plugin"):
        reg.create("nope")


def test_snapshot_node_changes_keep_placements() -> None:
    snap = snapshot(node("a", gpus=2), node("b", gpus=2))
    fw = framework(Profile.for_policy("bestfit"))
    r = schedule_group(snap, [req(pod("p", gpus=1, node_selector={"kubernetes.io/hostname": "b"}))], fw)
    assert r.ok and r.placements[0].node == "b"
    snap.upsert_node(node_spec_from_obj(node("c", gpus=4)))
    assert snap.nodes == ["a", "b", "c"] and snap.gpu_free[1].tolist() == [0, 1000, 0, 0]
    assert snap.gpu_idle.tolist() == [2000, 1000, 4000]
    gone = snap.remove_node("a")
    assert gone == [] and snap.nodes == ["b", "c"]
    assert snap.placement_of("default/p") == (0, r.placements[0].devices)
    assert [p.key for p in snap.remove_node("b")] == ["default/p"]
    assert not snap.is_assumed("default/p")
