"""Over HTTP: a PodGroup's scheduleTimeoutSeconds shows in its status and Events, and the
standalone ``corral scheduler`` runs queue admission only where the Queue kind exists."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from corral.apiserver.server import start_server
from corral.cli.scheduler import build_scheduler
from corral.client import ApiClient, ApiError
from corral.scheduler.quota.component import QueuedScheduler
from corral.scheduler.service import SchedulerConfig, SchedulerService
from corral.sim.nodes import SimNodes, SimNodeSpec

pytestmark = pytest.mark.timeout(60)


async def test_podgroup_timeout_sets_condition_and_event(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "api", tls=False)
    client = ApiClient(server.url, server.token)
    sim = SimNodes(client, [SimNodeSpec(count=1, gpus=8, gpu_model="H100-80GB")], workers=2)
    service = SchedulerService(client, config=SchedulerConfig(initial_backoff=0.2, max_backoff=1.0))
    try:
        await sim.start()
        await service.start()
        await client.create({"apiVersion": "corral.dev/v1alpha1", "kind": "PodGroup",
                             "metadata": {"name": "g", "namespace": "default"},
                             "spec": {"minMember": 2, "scheduleTimeoutSeconds": 1}})
        await client.create({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "g-0", "namespace": "default", "labels": {"corral.dev/pod-group": "g"}},
                             "spec": {"containers": [{"name": "main", "image": "x",
                                                      "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}})

        async def timed_out() -> dict[str, Any] | None:
            group = await client.get("corral.dev/v1alpha1", "podgroups", "g", "default")
            conditions = (group.get("status") or {}).get("conditions") or []
            return group if any(c.get("reason") == "ScheduleTimeout" for c in conditions) else None

        group = None
        for _ in range(100):
            group = await timed_out()
            if group:
                break
            await asyncio.sleep(0.1)
        assert group is not None, "the PodGroup's condition never said ScheduleTimeout"
        condition = group["status"]["conditions"][0]
        assert condition["status"] == "False"
        assert "scheduleTimeoutSeconds=1" in condition["message"] and "1/2 pods" in condition["message"]
        assert group["status"]["phase"] == "Unschedulable"
        events = (await client.list("v1", "events", "default"))["items"]
        assert any(e["reason"] == "ScheduleTimeout" and e["involvedObject"]["name"] == "g" for e in events)
    finally:
        await service.stop()
        await sim.stop()
        await client.close()
        await server.stop()


async def test_standalone_scheduler_runs_admission_where_queues_exist(tmp_path: Path) -> None:
    server = await start_server(tmp_path / "api", tls=False)
    client = ApiClient(server.url, server.token)
    try:
        assert isinstance(await build_scheduler(client, SchedulerConfig()), QueuedScheduler)
    finally:
        await client.close()
        await server.stop()


async def _discovery_server(status: int) -> tuple[web.AppRunner, str]:
    """A server whose corral.dev discovery answers ``status`` (404: the CRDs are not installed)."""
    async def group(request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status,
                                  "reason": "NotFound" if status == 404 else "InternalError",
                                  "message": "the server could not find the requested resource"}, status=status)

    app = web.Application()
    app.router.add_get("/apis/corral.dev/v1alpha1", group)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_standalone_scheduler_falls_back_without_the_queue_kind() -> None:
    runner, url = await _discovery_server(404)
    client = ApiClient(url, "token")
    try:
        built = await build_scheduler(client, SchedulerConfig())
        assert isinstance(built, SchedulerService) and not isinstance(built, QueuedScheduler)
    finally:
        await client.close()
        await runner.cleanup()


async def test_standalone_scheduler_does_not_hide_server_errors() -> None:
    runner, url = await _discovery_server(500)
    client = ApiClient(url, "token")
    try:
        with pytest.raises(ApiError):
            await build_scheduler(client, SchedulerConfig())
    finally:
        await client.close()
        await runner.cleanup()
