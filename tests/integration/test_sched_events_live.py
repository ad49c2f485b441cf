"""Scheduled Events are deferred while the scheduler is busy and bounded: a burst keeps at most
``scheduled_event_backlog`` of them (the rest are dropped and counted); FailedScheduling is not
deferred."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from corral.apiserver.server import start_server
from corral.client import ApiClient
from corral.scheduler.service import SchedulerConfig, SchedulerService
from corral.sim.nodes import SimNodes, SimNodeSpec

pytestmark = pytest.mark.timeout(60)


async def test_a_burst_keeps_a_bounded_backlog_of_scheduled_events(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "api", tls=False)
    client = ApiClient(server.url, server.token)
    sim = SimNodes(client, [SimNodeSpec(count=2, gpus=8, gpu_model="H100-80GB")], workers=2)
    service = SchedulerService(client, config=SchedulerConfig(), scheduled_event_backlog=5)
    try:
        await sim.start()
        for i in range(12):  # all pending before the scheduler starts: one burst
            await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}", "namespace": "default"},
                                 "spec": {"containers": [{"name": "main", "image": "x",
                                                          "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}})
        await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge", "namespace": "default"},
                             "spec": {"containers": [{"name": "main", "image": "x",
                                                      "resources": {"limits": {"nvidia.com/gpu": "9"}}}]}})
        await service.start()
        for _ in range(200):
            events = (await client.list("v1", "events", "default"))["items"]
            scheduled = [e for e in events if e["reason"] == "Scheduled"]
            failed = [e for e in events if e["reason"] == "FailedScheduling"]
            if len(scheduled) >= 5 and failed:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # nothing more is coming
        events = (await client.list("v1", "events", "default"))["items"]
        scheduled = [e for e in events if e["reason"] == "Scheduled"]
        assert service.bound == 12
        assert len(scheduled) == 5 and service.events_dropped == 7
        assert any(e["reason"] == "FailedScheduling" and e["involvedObject"]["name"] == "huge" for e in events)
    finally:
        await service.stop()
        await sim.stop()
        await client.close()
        await server.stop()
