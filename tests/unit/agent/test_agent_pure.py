"""Pure parts of the agent: GPU environment, env resolution, status, logs, lifecycle decisions."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.agent import logs
from corral.agent.cgroups import Cgroups
from corral.agent.gpus import (
    AssignmentError,
    GpuDevice,
    MigSlice,
    devices_annotation,
    gpu_capacity,
    gpu_environment,
    model_from_nvml_name,
    node_gpu_labels,
    parse_simulated,
)
from corral.agent.ipblocks import pod_ip_block
from corral.agent.node import NodeFacts, lease_object, node_object
from corral.agent.podenv import EnvError, PodIPAllocator, command_line, container_env, expand
from corral.agent.status import ContainerRuntime, PodRuntime, Termination, pod_phase, pod_status
from corral.agent.worker import RuntimeConfig, backoff_delay
from corral.controllers.nodelifecycle import (
    eviction_time,
    lease_expired,
    toleration_seconds,
    unknown_conditions,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_simulated_devices_and_labels() -> None:
    devices = parse_simulated("8xH100-80GB", node_name="n1")
    assert len(devices) == 8 and all(d.simulated and d.memory_mib == 81920 for d in devices)
    assert len({d.uuid for d in devices}) == 8
    assert devices == parse_simulated("8xH100-80GB", node_name="n1")  # stable UUIDs
    labels = node_gpu_labels(devices)
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB"
    assert labels["nvidia.com/gpu.memory"] == "81920"
    assert labels["nvidia.com/gpu.count"] == "8"
    assert labels["corral.dev/simulated-gpus"] == "true"
    inventory = json.loads(devices_annotation(devices))
    assert inventory[0]["index"] == 0 and inventory[0]["model"] == "H100-80GB" and inventory[0]["simulated"] is True
    assert gpu_capacity(devices) == {"nvidia.com/gpu": "8"}
    with pytest.raises(ValueError, match="COUNTxMODEL"):
        parse_simulated("H100")


def test_mig_capacity_and_env() -> None:
    mig = GpuDevice(0, "GPU-a", "A100-40GB", 40960, False,
                    mig=(MigSlice("1g.5gb", 0, "MIG-x"), MigSlice("1g.5gb", 1, "MIG-y")))
    whole = GpuDevice(1, "GPU-b", "A100-40GB", 40960, False)
    assert gpu_capacity([mig, whole]) == {"nvidia.com/gpu": "1", "nvidia.com/mig-1g.5gb": "2"}
    env = gpu_environment("0:mig-1g.5gb:1", [mig, whole])
    assert env["CUDA_VISIBLE_DEVICES"] == "MIG-y" == env["NVIDIA_VISIBLE_DEVICES"]
    with pytest.raises(AssignmentError, match="no MIG slice"):
        gpu_environment("0:mig-1g.5gb:4", [mig, whole])


def test_fraction_exports_share_and_memory_limit() -> None:
    devices = parse_simulated("4xA100-40GB")
    env = gpu_environment("3:0.5", devices)
    assert env["CUDA_VISIBLE_DEVICES"] == "3"
    assert env["CORRAL_GPU_FRACTION"] == "0.5"
    assert env["CORRAL_GPU_MEMORY_LIMIT_MIB"] == "20480"
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "50"
    assert gpu_environment(None, devices)["CUDA_VISIBLE_DEVICES"] == ""
    assert "CORRAL_GPU_FRACTION" not in gpu_environment("0,1", devices)


@given(st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=8, unique=True))
def test_whole_assignment_is_exactly_visible(indices: list[int]) -> None:
    devices = parse_simulated("8xH100-80GB")
    env = gpu_environment(",".join(map(str, indices)), devices)
    assert env["CUDA_VISIBLE_DEVICES"].split(",") == [str(i) for i in indices]


def test_nvml_names() -> None:
    assert model_from_nvml_name("NVIDIA H100 80GB HBM3") == "H100-80GB-HBM3"
    assert model_from_nvml_name("Tesla T4") == "T4"


def test_env_resolution_and_expansion() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}},
           "spec": {"nodeName": "n", "containers": [
               {"name": "c", "resources": {"limits": {"cpu": "1500m"}, "requests": {"memory": "1Gi"}}}]}}
    container = {"name": "c", "command": ["echo", "$(GREETING)", "$$(KEEP)"], "env": [
        {"name": "GREETING", "value": "hi-$(POD_IP)"},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "MCPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Gi"}}}]}
    env = container_env(pod, container, pod_ip="127.1.0.5", node_name="n", base={"POD_IP": "127.1.0.5"},
                        allocatable={"memory": "4Gi", "cpu": "2"})
    assert env["GREETING"] == "hi-127.1.0.5" and env["APP"] == "x" and env["NS"] == "ns"
    assert env["CPU"] == "2" and env["MCPU"] == "1500" and env["MEM"] == "4"
    assert command_line(container, env) == ["echo", "hi-127.1.0.5", "$(KEEP)"]
    assert expand("$(MISSING)", {}) == "$(MISSING)"
    with pytest.raises(EnvError, match="fieldPath"):
        container_env(pod, {"name": "c", "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "bogus"}}}]},
                      pod_ip="", node_name="n", base={}, allocatable={})
    with pytest.raises(EnvError, match="command"):
        command_line({"name": "c"}, {})


def test_pod_ip_allocator() -> None:
    block = pod_ip_block("node-a")
    assert block == pod_ip_block("node-a") and block.prefixlen == 16
    allocator = PodIPAllocator(block)
    ips = {allocator.allocate() for _ in range(600)}
    assert len(ips) == 600
    assert all(not ip.endswith((".0", ".255")) for ip in ips)
    assert not allocator.reserve("10.0.0.1")


def test_phase_rules() -> None:
    def term(code: int) -> ContainerRuntime:
        rt = ContainerRuntime("c", state="terminated")
        rt.last = Termination(exit_code=code, reason="Error" if code else "Completed", started_at=NOW,
                              finished_at=NOW)
        return rt

    runtime = PodRuntime(pod_ip="127.1.0.1", initialized_at=NOW, containers=[term(0)])
    assert pod_phase("Never", runtime) == "Succeeded"
    assert pod_phase("Always", runtime) == "Running"
    runtime.containers = [term(1)]
    assert pod_phase("Never", runtime) == "Failed"
    assert pod_phase("OnFailure", runtime) == "Running"
    assert pod_phase("Never", PodRuntime(containers=[ContainerRuntime("c")])) == "Pending"


def test_condition_timestamps_move_only_on_change() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], "restartPolicy": "Always"}}
    rt = ContainerRuntime("c", state="running", started_at=NOW, ready=True, started=True)
    runtime = PodRuntime(pod_ip="127.1.0.1", start_time=NOW, initialized_at=NOW, containers=[rt])
    first = pod_status(pod, runtime, NOW)
    pod["status"] = first
    later = pod_status(pod, runtime, NOW + timedelta(seconds=30))
    assert first["conditions"] == later["conditions"]
    rt.ready = False
    pod["status"] = later
    changed = pod_status(pod, runtime, NOW + timedelta(seconds=60))
    ready = next(c for c in changed["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["lastTransitionTime"] == "2026-01-01T12:01:00Z"
    scheduled = next(c for c in changed["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_backoff_doubles_to_the_cap(tmp_path: Path) -> None:
    config = RuntimeConfig(data_dir=tmp_path, node_name="n")
    assert [backoff_delay(config, n) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]


def _read(path: Path, **query: Any) -> bytes:
    async def collect() -> bytes:
        chunks = logs.stream(path, follow=False, still_running=lambda: False, **{
            "timestamps": False, "tail_lines": None, "since_seconds": None, **query})
        return b"".join([chunk async for chunk in chunks])
    return asyncio.run(collect())


def test_log_index_timestamps_tail_and_since(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    indexer = logs.LogIndexer(path)
    path.write_bytes(b"one\ntwo\n")
    indexer.poll(now=1000.0)
    with open(path, "ab") as handle:
        handle.write(b"three\npart")
    indexer.poll(now=2000.0)
    assert _read(path) == b"one\ntwo\nthree\npart"
    assert _read(path, tail_lines=1) == b"three\npart"
    assert _read(path, tail_lines=0) == b"part"
    assert _read(path, tail_lines=9) == b"one\ntwo\nthree\npart"
    assert _read(path, since_seconds=time.time() - 1500) == b"three\npart"
    stamped = _read(path, timestamps=True).splitlines()
    assert stamped[0] == b"1970-01-01T00:16:40.000000Z one"
    assert stamped[2] == b"1970-01-01T00:33:20.000000Z three"
    assert _read(path, limit_bytes=5) == b"one\nt"
    assert _read(path, tail_lines=1, limit_bytes=3) == b"thr"


def test_node_object_and_lease() -> None:
    facts = NodeFacts(name="n1", cpu=4, memory_bytes=8 * 2**30, devices=parse_simulated("2xA100-40GB"), port=1234)
    node = node_object(facts, NOW)
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "2"
    assert node["status"]["capacity"]["memory"] == "8Gi"
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 1234
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    limits = next(c for c in node["status"]["conditions"] if c["type"] == "ResourceLimitsEnforced")
    assert limits["status"] == "False"
    lease = lease_object("n1", NOW, 40)
    assert lease["spec"]["renewTime"] == "2026-01-01T12:00:00.000000Z"


def test_lifecycle_decisions() -> None:
    node = {"metadata": {"name": "n", "creationTimestamp": "2026-01-01T11:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    lease = {"spec": {"renewTime": "2026-01-01T11:59:30.000000Z"}}
    assert not lease_expired(node, lease, NOW, 40)
    assert lease_expired(node, lease, NOW + timedelta(seconds=11), 40)
    assert lease_expired(node, None, NOW, 40)
    slow = {"spec": {"renewTime": "2026-01-01T11:59:00.000000Z", "leaseDurationSeconds": 400}}
    assert not lease_expired(node, slow, NOW, 40), "a lease that declares a longer duration is honoured"
    pod: dict = {"spec": {}}
    assert toleration_seconds(pod, 300) == 300
    pod["spec"]["tolerations"] = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                   "effect": "NoExecute", "tolerationSeconds": 5}]
    assert eviction_time(pod, NOW, 300) == NOW + timedelta(seconds=5)
    pod["spec"]["tolerations"] = [{"operator": "Exists"}]
    assert eviction_time(pod, NOW, 300) is None
    conditions = unknown_conditions(node, NOW)
    assert conditions[0]["status"] == "Unknown" and conditions[0]["reason"] == "NodeStatusUnknown"


def test_cgroups_detection_reports_why_not(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("hugetlb pids\n")
    cgroups, message = Cgroups.detect("n", root=tmp_path)
    # creating cgroups is possible (processes are tracked), limits are not
    assert cgroups is not None and not cgroups.limits and "lacks the cpu, memory" in message
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    assert Cgroups.oom_kills(tmp_path) == 2


def test_agent_cli_rejects_bad_values_naming_the_option() -> None:
    from click.testing import CliRunner

    from corral.cli.main import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["agent", "--simulated-gpus", "H100"])
    assert result.exit_code == 2 and "COUNTxMODEL" in result.output
    result = runner.invoke(cli, ["agent", "--pod-cidr", "10.0.0.0/8"])
    assert result.exit_code == 2 and "--pod-cidr" in result.output and "127.0.0.0/8" in result.output
    result = runner.invoke(cli, ["up", "--simulated-gpus", "0xA100"])
    assert result.exit_code == 2 and "between 1 and 64" in result.output
