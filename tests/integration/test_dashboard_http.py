"""The dashboard is served by the API server: public page, authenticated state."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from corral.apiserver.server import RunningServer, start_server
from corral.client import ApiClient


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(tmp_path / "api", tls=False)
    yield running
    await running.stop()


async def test_page_is_public_and_state_needs_a_token(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/dashboard/") as page:
            assert page.status == 200
            assert "corral dashboard" in await page.text()
        async with session.get(f"{server.url}/dashboard/app.js") as script:
            assert script.status == 200 and "javascript" in script.headers["Content-Type"]
        async with session.get(f"{server.url}/dashboard/summary.py") as escape:
            assert escape.status == 404
        async with session.get(f"{server.url}/dashboard/api/state") as anonymous:
            assert anonymous.status == 401
            assert (await anonymous.json())["kind"] == "Status"


async def test_state_shows_devices_and_what_runs_on_them(server: RunningServer) -> None:
    devices = [{"index": i, "model": "H100-80GB", "memoryMiB": 81920, "simulated": True} for i in range(2)]
    async with ApiClient(server.url, server.token) as client:
        await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "gpu-1", "labels": {"corral.dev/simulated-gpus": "true"},
            "annotations": {"corral.dev/devices": json.dumps(devices)}},
            "status": {"capacity": {"nvidia.com/gpu": "2"}}})
        await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "half", "namespace": "default", "annotations": {"corral.dev/gpu-devices": "1:0.5"}},
            "spec": {"nodeName": "gpu-1", "containers": [{"name": "c", "image": "x"}]}})
        state = await client.request("GET", "/dashboard/api/state")
    node = state["nodes"][0]
    assert node["name"] == "gpu-1" and node["simulated"] is True
    assert [device["used"] for device in node["devices"]] == [0.0, 0.5]
    assert node["devices"][1]["pods"][0][:2] == ["default/half", 0.5]
    assert state["cluster"]["gpus"] == 2 and state["cluster"]["gpusUsed"] == 0.5
