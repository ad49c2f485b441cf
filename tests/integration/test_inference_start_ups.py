"""The InferenceService controller reports each replica pod's start-up to the autoscaler once:
ready (Ready transition − creation, True) or removed before ready (age, False). Real API server,
real informers; the test writes pod status as a node agent would."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from corral.autoscaling.autoscaler import Autoscaler
from corral.client import ApiClient
from corral.controllers.inferenceservice import InferenceServiceController
from corral.testing.apiserver import running_apiserver
from corral.util.clock import format_timestamp, parse_timestamp
from tests.integration.inference_support import backend_template, inference_service

KEY = "default/svc"


def replica(name: str, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "server", "image": "python"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"corral.dev/inference-service": "svc", "corral.dev/revision": "svc-1"}},
            "spec": spec}


async def until_cached(controller: InferenceServiceController, name: str, check: Any) -> None:
    for _ in range(300):
        if check(controller.pods.get(f"default/{name}")):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the controller's informer never showed the change to {name}")


async def until_service(controller: InferenceServiceController) -> None:
    for _ in range(300):
        if controller.services.get(KEY) is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the controller's informer never showed the InferenceService")


async def test_each_start_up_is_reported_once_ready_or_removed_before_ready(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path) as server:
        client = ApiClient(server.url, server.token)
        scaler = Autoscaler()
        controller = InferenceServiceController(client, scaler)
        await controller.factory.start()
        await controller.factory.wait_synced(30)
        try:
            fast = await client.create(replica("fast", node="node-a"))
            await client.create(replica("stuck", node="node-a"))
            await client.create(replica("unbound"))
            await until_cached(controller, "unbound", lambda pod: pod is not None)
            await until_cached(controller, "stuck", lambda pod: pod is not None)
            assert controller.take_start_ups() == {}  # all three still starting

            created = parse_timestamp(fast["metadata"]["creationTimestamp"])
            await client.patch("v1", "pods", "fast", {"status": {
                "phase": "Running", "podIP": "127.0.0.9",
                "conditions": [{"type": "Ready", "status": "True",
                                "lastTransitionTime": format_timestamp(created + timedelta(seconds=7))}]}},
                namespace="default", subresource="status")
            await until_cached(controller, "fast", lambda pod: pod and pod.get("status", {}).get("podIP"))
            assert controller.take_start_ups() == {KEY: [(7.0, True)]}
            assert controller.take_start_ups() == {}  # reported once

            # Bound and not ready: deleted gracefully (terminating); unbound: gone at once.
            await client.delete("v1", "pods", "stuck", "default")
            await client.delete("v1", "pods", "unbound", "default")
            await until_cached(controller, "stuck",
                               lambda pod: pod and pod["metadata"].get("deletionTimestamp"))
            await until_cached(controller, "unbound", lambda pod: pod is None)
            reports = controller.take_start_ups()
            assert list(reports) == [KEY] and len(reports[KEY]) == 2, reports
            for age, ready in reports[KEY]:
                assert ready is False and 0.0 <= age < 30.0
            assert controller.take_start_ups() == {}

            # A ready pod deleted later is not reported again; its uid is forgotten once it is gone.
            await client.delete("v1", "pods", "fast", "default", grace_period_seconds=0)
            await client.delete("v1", "pods", "stuck", "default", grace_period_seconds=0)
            await until_cached(controller, "fast", lambda pod: pod is None)
            await until_cached(controller, "stuck", lambda pod: pod is None)
            assert controller.take_start_ups() == {}
            assert controller._started == set() and controller._starting == {}

            # Through the controller's autoscaler tick into the service's metrics window: a pod seen
            # starting, then gone (deleted at once) before the next tick.
            await client.create(inference_service("svc", backend_template()))
            await until_service(controller)
            ticks = iter(range(10, 100, 2))

            async def feed() -> dict[str, Any]:
                return {"time": float(next(ticks)), "services": {}}

            controller.feed = feed
            await client.create(replica("late"))
            await until_cached(controller, "late", lambda pod: pod is not None)
            await controller.autoscale_once()
            window = scaler.window(KEY)
            assert window is not None and window.latest is not None
            assert window.latest.ready_observations == ()
            await client.delete("v1", "pods", "late", "default")
            await until_cached(controller, "late", lambda pod: pod is None)
            await controller.autoscale_once()
            [(age, ready)] = window.latest.ready_observations
            assert ready is False and 0.0 <= age < 30.0
            await controller.autoscale_once()
            assert window.latest.ready_observations == ()
        finally:
            await controller.factory.stop()
            await client.close()
