"""Over HTTP: a PodGroup's scheduleTimeoutSeconds shows in its status and Events, and the
standalone ``corral scheduler`` runs queue admission only where the Queue kind exists."""

from __future__ import annotations

import asyncio
import contextlib
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


async def test_a_nomination_whose_victim_is_stuck_expires_then_binds_when_it_goes(tmp_path: Path) -> None:
    from corral.sim.nodes import build_node

    server = await start_server(tmp_path / "api", tls=False)
    client = ApiClient(server.url, server.token)
    service = SchedulerService(client, config=SchedulerConfig(initial_backoff=0.1, max_backoff=0.5,
                                                              nomination_timeout=2.0))
    try:
        # no simulated kubelet: nobody finishes graceful deletions, and a finalizer holds the victim
        await client.create(build_node(SimNodeSpec(count=1, gpus=1, gpu_model="H100-80GB"), 0))
        for name, value in (("low", 1), ("high", 10)):
            await client.create({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                 "metadata": {"name": name}, "value": value})

        def gpu_pod(name: str, priority_class: str, finalizers: list[str] | None = None) -> dict[str, Any]:
            return {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "default", "finalizers": finalizers or []},
                    "spec": {"priorityClassName": priority_class,
                             "containers": [{"name": "main", "image": "x",
                                             "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}

        await client.create(gpu_pod("victim", "low", ["corral.dev/test-hold"]))
        await service.start()

        async def pod(name: str) -> dict[str, Any]:
            return await client.get("v1", "pods", name, "default")

        async def until(check: Any, what: str, timeout: float = 15.0) -> None:
            for _ in range(int(timeout / 0.05)):
                if await check():
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"timed out waiting: {what}")

        async def victim_bound() -> bool:
            return bool((await pod("victim"))["spec"].get("nodeName"))

        await until(victim_bound, "the victim is bound")
        await client.create(gpu_pod("urgent", "high"))

        async def nominated() -> bool:
            return (await pod("urgent"))["status"].get("nominatedNodeName") == "sim-node-0"

        await until(nominated, "urgent is nominated")
        assert (await pod("victim"))["metadata"].get("deletionTimestamp"), "the victim is being evicted"

        async def expired() -> bool:
            events = (await client.list("v1", "events", "default"))["items"]
            return any(e["reason"] == "NominationExpired" and e["involvedObject"]["name"] == "urgent" for e in events)

        await until(expired, "a NominationExpired Event")

        async def cleared() -> bool:
            return not (await pod("urgent"))["status"].get("nominatedNodeName")

        await until(cleared, "nominatedNodeName cleared")
        assert not (await pod("urgent"))["spec"].get("nodeName"), "no room while the victim is still there"
        assert len([e for e in (await client.list("v1", "events", "default"))["items"]
                    if e["reason"] == "Preempted"]) == 1, "the terminating victim is not preempted twice"
        # the victim finally goes: the preemptor is placed on the room it left
        await client.patch("v1", "pods", "victim", {"metadata": {"finalizers": []}}, namespace="default")
        await client.delete_if_exists("v1", "pods", "victim", "default", grace_period_seconds=0)

        async def urgent_bound() -> bool:
            return (await pod("urgent"))["spec"].get("nodeName") == "sim-node-0"

        await until(urgent_bound, "urgent is bound once the victim is gone")
    finally:
        await service.stop()
        with contextlib.suppress(ApiError):
            await client.patch("v1", "pods", "victim", {"metadata": {"finalizers": []}}, namespace="default")
        await client.close()
        await server.stop()
