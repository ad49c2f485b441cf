"""`corral gateway` alone (uvloop), routing from InferenceServices and pods it watches through the API."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from corral.cli.up import start_corral
from corral.client import ApiClient
from tests.conftest import require_tool
from tests.integration.inference_support import backends

pytestmark = pytest.mark.e2e


def corral() -> list[str]:
    binary = Path(sys.executable).parent / "corral"
    return [str(binary)] if binary.exists() else [require_tool("corral")]


async def test_corral_gateway_routes_to_ready_pods_it_watches(tmp_path: Path) -> None:
    running = await asyncio.wait_for(start_corral(tmp_path / "data", port=0, agent=False, gateway_port=None), 60)
    client = ApiClient.from_kubeconfig(running.context.kubeconfig)
    process: subprocess.Popen[str] | None = None
    try:
        with backends() as group:
            replica = await group.start("standalone")
            await client.create({
                "apiVersion": "corral.dev/v1alpha1", "kind": "InferenceService",
                "metadata": {"name": "svc", "namespace": "default"},
                "spec": {"template": {"spec": {"containers": [{"name": "s", "ports": [{"containerPort": 1}]}]}},
                         "route": {"pathPrefix": "/v1/models/svc", "stripPrefix": True}}}, "default")
            pod = await client.create({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "svc-a", "namespace": "default",
                             "labels": {"corral.dev/inference-service": "svc", "corral.dev/revision": "svc-1"}},
                "spec": {"schedulerName": "nobody",
                         "containers": [{"name": "s", "image": "x", "ports": [{"containerPort": replica.port}]}]}},
                "default")
            pod["status"] = {"phase": "Running", "podIP": "127.0.0.1",
                             "conditions": [{"type": "Ready", "status": "True"}]}
            await client.update_status(pod)
            process = subprocess.Popen(
                [*corral(), "gateway", "--kubeconfig", str(running.context.kubeconfig), "--port", "0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            assert process.stderr is not None
            line = await asyncio.wait_for(asyncio.to_thread(process.stderr.readline), 60)
            assert line.startswith("corral gateway: http://127.0.0.1:"), line
            url = line.split()[2]
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/v1/models/svc/predict", data=b"{}") as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"replica": "standalone", "method": "POST", "path": "/predict",
                                                 "model": None, "bytes": 2}
                async with http.get(f"{url}/_corral/routes", headers={"Authorization": f"Bearer {client.token}"}) as resp:
                    routes = (await resp.json())["routes"]
                    assert routes[0]["service"] == "default/svc"
                    assert routes[0]["revisions"][0]["ready"] == [f"127.0.0.1:{replica.port}"]
                # The pod stops being ready: the gateway learns it from the watch and holds new requests.
                pod = await client.get("v1", "pods", "svc-a", "default")
                pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
                await client.update_status(pod)
                for _ in range(100):
                    async with http.get(f"{url}/_corral/routes", headers={"Authorization": f"Bearer {client.token}"}) as resp:
                        revisions = (await resp.json())["routes"][0]["revisions"]
                        if not any(r["ready"] for r in revisions):
                            break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the gateway did not see the pod turn unready")
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 20)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                if process.stderr is not None:
                    process.stderr.close()
        await client.close()
        await running.stop()
    assert process is not None and process.returncode == 0
