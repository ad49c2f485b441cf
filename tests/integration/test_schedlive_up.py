"""``corral up`` runs the scheduler: an empty cluster comes up, then a pod on a simulated node is placed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from corral.cli.up import start_corral
from corral.client import ApiClient
from corral.sim.nodes import SimNodes, SimNodeSpec

pytestmark = pytest.mark.timeout(60)


async def test_corral_up_schedules_with_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "sched.yaml"
    config.write_text("apiVersion: corral.dev/v1alpha1\nkind: SchedulerConfiguration\nbindConcurrency: 4\n")
    running = await asyncio.wait_for(start_corral(tmp_path / "data", port=0, tls=False, agent=False, scheduler_config=config), 20)
    client = ApiClient(running.context.url, running.context.token)
    sim = SimNodes(client, [SimNodeSpec(count=1, gpus=2, gpu_model="L4", name_prefix="up")], workers=2)
    try:
        await sim.start()
        await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                             "spec": {"containers": [{"name": "c", "image": "x",
                                                      "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}})
        for _ in range(200):
            pod = await client.get("v1", "pods", "p", "default")
            if pod["status"].get("phase") == "Running":
                break
            await asyncio.sleep(0.05)
        assert pod["spec"]["nodeName"] == "up-0"
        assert pod["metadata"]["annotations"]["corral.dev/gpu-devices"] in ("0", "1")
        # every component's supervised loops are on /readyz
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {running.context.token}"}) as session, \
                session.get(f"{running.context.url}/readyz?verbose") as response:
            body = await response.text()
        assert response.status == 200, body
        for check in ("scheduler", "queue-manager", "inferenceservice", "garbage-collector", "trainingjob-controller"):
            assert f"[+]{check} ok" in body, body
    finally:
        await sim.stop()
        await client.close()
        await running.stop()
