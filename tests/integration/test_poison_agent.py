"""Poison pods against the node agent (issue 22, item 2): a pod bound to the node that the
agent cannot run as written (stored past validation, e.g. by an older version) is rejected
with phase ``Failed`` and reason ``InvalidPod``, and the agent keeps running the others."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from corral.agent.agent import Agent, AgentConfig
from corral.client import ApiClient
from corral.testing.apiserver import running_apiserver, store_unvalidated

pytestmark = pytest.mark.timeout(90)

NODE = "node-p"


def pod(name: str, containers: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": NODE, "restartPolicy": "Never", "containers": containers},
            "status": {"phase": "Pending"}}


def runs(code: str) -> list[dict[str, Any]]:
    return [{"name": "main", "image": "python:3.11", "command": [sys.executable, "-c", code]}]


async def test_a_pod_the_agent_cannot_run_fails_with_a_reason_and_the_others_run(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path / "api", tls=False) as server:
        client = ApiClient.from_kubeconfig(server.kubeconfig)
        poison = {"no-name": [{"image": "python:3.11", "command": ["true"]}],
                  "not-a-list": "main"}
        for name, containers in poison.items():
            await store_unvalidated(server, pod(name, containers))
        agent = Agent(client, AgentConfig(data_dir=tmp_path / "agent", node_name=NODE, discover_gpus=False,
                                          heartbeat_interval=0.5, lease_duration=2, status_interval=5,
                                          backoff_initial=0.2, backoff_max=1.0, shutdown_grace=1,
                                          enforce_limits=False))
        await agent.start()
        try:
            await client.create(pod("good", runs("import time; time.sleep(30)")))
            deadline = time.monotonic() + 30
            states: dict[str, dict[str, Any]] = {}
            while time.monotonic() < deadline:
                states = {n: ((await client.get("v1", "pods", n, "default")).get("status") or {})
                          for n in ("good", *poison)}
                if states["good"].get("phase") == "Running" and all(
                        states[n].get("phase") == "Failed" for n in poison):
                    break
                await asyncio.sleep(0.1)
            assert states["good"].get("phase") == "Running", states
            for name in poison:
                assert states[name].get("phase") == "Failed" and states[name].get("reason") == "InvalidPod", states
                assert "the agent cannot run this pod" in states[name].get("message", "")
            events = (await client.list("v1", "events", "default"))["items"]
            rejected = {e["involvedObject"]["name"] for e in events if e.get("reason") == "InvalidPod"}
            assert rejected == set(poison)
            assert agent.supervisor.check() is None
        finally:
            await agent.stop()
            await client.close()
