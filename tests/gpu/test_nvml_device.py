"""Device check on a real NVIDIA GPU (skipped without one).

NVML discovery must report the real device and its memory (cross-checked with
``nvidia-smi`` when present), and a pod assigned device 0 through
``corral.dev/gpu-devices`` must see exactly one CUDA device in PyTorch, while a
pod without an assignment sees none. Self-contained: it runs the agent's pod
worker directly with real processes, no API server, no pytest plugin and no
pydantic needed (only ``nvidia-ml-py`` and a CUDA build of torch):

    .venv/bin/pytest -q tests/gpu/test_nvml_device.py
    # or with any Python that has torch+CUDA, pytest and nvidia-ml-py:
    PYTHONPATH=src python -m pytest -c /dev/null --rootdir . -q tests/gpu/test_nvml_device.py
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from corral.agent.gpus import discover_nvml
from corral.agent.worker import PodWorker, RuntimeConfig
from corral.util.clock import SystemClock

pytestmark = pytest.mark.gpu

DEVICES, MESSAGE = discover_nvml()
if not DEVICES:
    pytest.skip(f"no NVIDIA GPU: {MESSAGE}", allow_module_level=True)


def _torch_has_cuda() -> str | None:
    """None when this interpreter's torch can use CUDA, else why not."""
    probe = subprocess.run([sys.executable, "-c", "import torch; print(int(torch.cuda.is_available()))"],
                           capture_output=True, text=True, timeout=120, check=False)
    if probe.returncode != 0:
        return f"torch is not importable: {probe.stderr.strip()[-200:]}"
    if probe.stdout.strip() != "1":
        return "this interpreter's torch has no CUDA support (CPU build)"
    return None


def test_nvml_reports_the_real_devices_and_memory() -> None:
    first = DEVICES[0]
    assert first.index == 0 and not first.simulated
    assert first.uuid.startswith(("GPU-", "MIG-"))
    assert first.memory_mib > 1024
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return
    output = subprocess.run([smi, "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [[part.strip() for part in line.split(",")] for line in output.strip().splitlines()]
    assert len(rows) == len(DEVICES)
    for row, device in zip(rows, DEVICES, strict=True):
        assert int(row[0]) == device.index
        assert row[1] == device.uuid
        assert abs(int(row[3]) - device.memory_mib) <= 1
        assert device.model.replace("-", " ") in row[2].replace("-", " ")


async def _run_pod(tmp_path: Path, annotation: str | None) -> dict[str, Any]:
    code = ("import json, os, torch\n"
            "print(json.dumps({'visible': os.environ.get('CUDA_VISIBLE_DEVICES'),"
            " 'count': torch.cuda.device_count(),"
            " 'names': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],"
            " 'memory': [torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())]}))\n")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "gpu-check", "namespace": "default", "uid": str(uuid.uuid4()),
                        "annotations": {"corral.dev/gpu-devices": annotation} if annotation else {}},
           "spec": {"restartPolicy": "Never", "nodeName": "gpu-node",
                    "containers": [{"name": "torch", "image": "pytorch", "command": [sys.executable, "-c", code]}]}}
    config = RuntimeConfig(data_dir=tmp_path, node_name="gpu-node", devices=DEVICES, host_env=dict(os.environ))
    worker = PodWorker(pod, "127.200.0.2", config, clock=SystemClock(), on_change=lambda: None)
    worker.start()
    try:
        await asyncio.wait_for(worker.finished.wait(), 240)
    finally:
        await worker.terminate(grace=0)
    log = worker.log_file("torch")
    assert log is not None
    text = log.read_text()
    last = worker.runtime.containers[0].last
    assert last is not None and last.exit_code == 0, text
    result: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return result


def test_pod_assigned_device_0_sees_exactly_one_device(tmp_path: Path) -> None:
    reason = _torch_has_cuda()
    if reason:
        pytest.skip(reason)
    seen = asyncio.run(_run_pod(tmp_path / "one", "0"))
    assert seen["visible"] == "0"
    assert seen["count"] == 1
    assert abs(seen["memory"][0] / 2**20 - DEVICES[0].memory_mib) < 1024
    none = asyncio.run(_run_pod(tmp_path / "none", None))
    assert none["visible"] == ""
    assert none["count"] == 0
