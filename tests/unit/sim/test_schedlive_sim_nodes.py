"""Simulated nodes: the objects they register and the kubelet steps they take (pure parts)."""

from __future__ import annotations

import json

import pytest

from corral.scheduler.cache import node_spec_from_obj
from corral.sim.nodes import (
    SimNodeSpec,
    SimSpecError,
    build_node,
    parse_duration,
    parse_labels,
    pod_transition,
    running_status,
)


def test_node_has_capacity_gfd_labels_and_devices() -> None:
    spec = SimNodeSpec(count=3, gpus=8, gpu_model="H100-80GB", name_prefix="sim", labels={"team": "a"})
    node = build_node(spec, 2)
    labels = node["metadata"]["labels"]
    assert node["metadata"]["name"] == "sim-2"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB"
    assert labels["nvidia.com/gpu.memory"] == "81920"
    assert labels["nvidia.com/gpu.count"] == "8"
    assert labels["corral.dev/simulated-gpus"] == "true"
    assert labels["team"] == "a"
    assert "topology.corral.dev/block" in labels and "topology.corral.dev/rack" in labels
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
    devices = json.loads(node["metadata"]["annotations"]["corral.dev/devices"])
    assert [d["index"] for d in devices] == list(range(8))
    assert all(d["simulated"] and d["uuid"].startswith("GPU-") and d["mig"] == [] for d in devices)
    # the scheduler's snapshot reads it as 8 devices
    assert len(node_spec_from_obj(node).devices) == 8


def test_mig_nodes_expose_slices() -> None:
    node = build_node(SimNodeSpec(count=1, gpus=2, gpu_model="A100-40GB", mig="1g.5gb"), 0)
    assert node["status"]["capacity"]["nvidia.com/mig-1g.5gb"] == "14"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "0"
    devices = json.loads(node["metadata"]["annotations"]["corral.dev/devices"])
    assert [s["slot"] for s in devices[0]["mig"]] == list(range(7))


def test_bad_options_name_the_option() -> None:
    with pytest.raises(SimSpecError, match="--mig"):
        SimNodeSpec(count=1, gpus=1, gpu_model="H100-80GB", mig="5g.1gb")
    with pytest.raises(SimSpecError, match="--labels"):
        parse_labels("a=b,oops")
    assert parse_labels("a=b, c=d") == {"a": "b", "c": "d"}
    assert parse_duration("30s") == 30 and parse_duration("1.5m") == 90 and parse_duration("200ms") == 0.2


def test_kubelet_steps() -> None:
    pod = {"metadata": {"name": "p", "annotations": {"corral.dev/sim-duration": "30s"}},
           "spec": {"nodeName": "n", "containers": [{"name": "c"}]}, "status": {"phase": "Pending"}}
    assert pod_transition(pod, 1000.0).action == "run"
    from datetime import UTC, datetime
    started = datetime.fromtimestamp(1000, UTC)
    running = {**pod, **running_status(pod, started)}
    assert pod_transition(running, 1010.0).action == "wait"
    assert pod_transition(running, 1010.0).at == 1030.0
    assert pod_transition(running, 1031.0).action == "succeed"
    deleting = {**running, "metadata": {**running["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert pod_transition(deleting, 1001.0).action == "finish-delete"
