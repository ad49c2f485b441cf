"""Workload controllers benchmark: a Deployment of ``BENCH_WORKLOADS_REPLICAS`` (default 1000)
replicas becoming Available, then a RollingUpdate (25%/25%) of all of it.

An in-process API server (plain HTTP, SQLite in a temp dir) runs the ReplicaSet and Deployment
controllers (as ``corral up`` does); a stand-in kubelet marks every new pod Running and Ready
through ``/status`` as soon as it sees it, so the figures measure the API server and the
controllers, not process start-up (for that see ``bench/agent.py``). ``available_s``: from the
create to ``status.availableReplicas == replicas`` with the generation observed;
``rolling_update_s``: from the template change to every pod on the new template, available.
Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from corral.apiserver.server import start_server
from corral.client import ApiClient, ApiError
from corral.controllers.workloads import workload_manager

READY = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]


async def kubelet(client: ApiClient, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for pod in (await client.list("v1", "pods", "default")).get("items") or []:
            if pod["status"].get("phase") == "Pending" and not pod["metadata"].get("deletionTimestamp"):
                pod["status"] = {"phase": "Running", "conditions": READY}
                try:
                    await client.update_status(pod)
                except ApiError:
                    continue
        await asyncio.sleep(0.05)


async def rolled_out(client: ApiClient, replicas: int) -> None:
    while True:
        deployment = await client.get("apps/v1", "deployments", "web", "default")
        status: dict[str, Any] = deployment.get("status") or {}
        if (status.get("observedGeneration") == deployment["metadata"]["generation"]
                and status.get("availableReplicas") == replicas == status.get("updatedReplicas") == status.get("replicas")):
            return
        await asyncio.sleep(0.05)


async def main() -> None:
    replicas = int(os.environ.get("BENCH_WORKLOADS_REPLICAS", "1000"))
    directory = Path(tempfile.mkdtemp(prefix="corral-bench-workloads-"))
    server = await start_server(directory / "api", tls=False, history=100_000)
    client = ApiClient(server.url, server.token)
    manager = workload_manager(client)
    stop = asyncio.Event()
    try:
        await manager.start(sync_timeout=10)
        stand_in = asyncio.create_task(kubelet(client, stop))
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                      "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                               "template": {"metadata": {"labels": {"app": "web"}},
                                            "spec": {"containers": [{"name": "c", "image": "python:3.12"}]}}}}
        started = time.monotonic()
        await client.create(deployment, "default")
        await rolled_out(client, replicas)
        available = time.monotonic() - started
        started = time.monotonic()
        await client.patch("apps/v1", "deployments", "web",
                           {"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}},
                           namespace="default", patch_type="strategic")
        await rolled_out(client, replicas)
        rolling = time.monotonic() - started
        stop.set()
        await stand_in
        print(json.dumps({"replicas": replicas, "available_s": round(available, 2), "rolling_update_s": round(rolling, 2)}))
    finally:
        stop.set()
        await manager.stop()
        await client.close()
        await server.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
