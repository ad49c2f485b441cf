"""The scheduling examples apply as they are with kubectl and get exact devices; the gang that
cannot fit waits whole and ``corral explain`` says why."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from corral.cli.explain import explain
from corral.cli.up import start_corral
from corral.client import ApiClient
from corral.sim.nodes import SimNodes, SimNodeSpec

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scheduling"


async def test_examples_apply_and_place_on_exact_devices(tmp_path: Path, kubectl: str) -> None:
    running = await start_corral(tmp_path / "data", port=0, agent=False, gateway_port=None)
    client = ApiClient.from_kubeconfig(running.context.kubeconfig)
    sim = SimNodes(client, [SimNodeSpec(count=3, gpus=8, gpu_model="H100-80GB", name_prefix="h100"),
                            SimNodeSpec(count=1, gpus=2, gpu_model="A100-80GB", name_prefix="mig", mig="1g.10gb")],
                   workers=4)
    try:
        await sim.start()
        env = {**os.environ, "KUBECONFIG": str(running.context.kubeconfig)}
        applied = await asyncio.to_thread(subprocess.run, [kubectl, "apply", "-f", str(EXAMPLES)], env=env,
                                          capture_output=True, text=True, timeout=60)
        assert applied.returncode == 0, applied.stderr
        placed = ["whole-gpu", "mig-slice", "half-gpu", "gpu-20gi"]
        for _ in range(200):
            pods = {n: await client.get("v1", "pods", n, "default") for n in placed}
            if all(p["status"].get("phase") == "Running" for p in pods.values()):
                break
            await asyncio.sleep(0.05)
        devices = {n: p["metadata"]["annotations"]["corral.dev/gpu-devices"] for n, p in pods.items()}
        assert len(devices["whole-gpu"].split(",")) == 2
        assert ":mig-1g.10gb:" in devices["mig-slice"] and pods["mig-slice"]["spec"]["nodeName"] == "mig-0"
        assert devices["half-gpu"].endswith(":0.5") and devices["gpu-20gi"].endswith(":0.25")
        # 3 nodes x 8 GPUs minus what the others took cannot hold 4 x 8 GPUs: the gang waits whole
        await asyncio.sleep(0.5)
        gang = [await client.get("v1", "pods", f"big-job-{i}", "default") for i in range(4)]
        assert not any(p["spec"].get("nodeName") for p in gang)
        text = await explain(client, "pod", "big-job-0", "default")
        assert "nodes are available" in text and "nearest misses:" in text
        shown = await asyncio.to_thread(subprocess.run, [kubectl, "get", "podgroups"], env=env,
                                        capture_output=True, text=True, timeout=30)
        assert "big-job" in shown.stdout
    finally:
        await sim.stop()
        await client.close()
        await running.stop()
