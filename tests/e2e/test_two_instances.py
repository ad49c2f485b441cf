"""Two `corral up` on one machine, with default ports and the same node name, do not collide.

Before instances claimed their resources, the second one failed on the API port, and with
``--port`` given its pods took the same loopback IPs as the first one's (the block came from
the node name alone), so one instance's gateway answered with the other's replica. Each
instance now says which ports and pod IP block it took, and they are disjoint.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp
import pytest

from corral.client import ApiClient
from tests.conftest import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NODE = "e2e-same-node"  # both instances: the name no longer decides the block alone


def corral() -> str:
    local = Path(sys.executable).parent / "corral"
    return str(local) if local.exists() else require_tool("corral")


@dataclass
class Instance:
    name: str
    process: subprocess.Popen[str]
    lines: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return self.lines["corral is ready"].split()[0]

    @property
    def gateway_url(self) -> str:
        return self.lines["corral gateway"]

    @property
    def block(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.lines["corral pod IPs"].split()[0])

    @property
    def kubeconfig(self) -> str:
        return self.lines["corral is ready"].split("kubeconfig: ", 1)[1].rstrip(")")


def read_ready(stream: IO[str], deadline: float) -> dict[str, str]:
    """The ``name: value`` lines ``corral up`` prints up to its dashboard line."""
    lines: dict[str, str] = {}
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        key, _, value = line.strip().partition(": ")
        lines[key] = value
        if key == "dashboard":
            return lines
    raise AssertionError(f"corral up did not get ready: {lines}")


def start(name: str, data: Path) -> Instance:
    process = subprocess.Popen([corral(), "up", "--data-dir", str(data), "--node-name", NODE],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    instance = Instance(name, process)
    assert process.stdout is not None
    try:
        instance.lines = read_ready(process.stdout, time.monotonic() + 60)
    except AssertionError:
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"{name} did not start:\n{err}") from None
    return instance


def backend(replica: str) -> dict[str, object]:
    return {"apiVersion": "corral.dev/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": "echo", "namespace": "default"},
            "spec": {"minReplicas": 1, "maxReplicas": 1, "template": {"spec": {"containers": [{
                "name": "server", "image": "python", "ports": [{"containerPort": 8080}],
                "command": [sys.executable, "-m", "corral.testing.inference_backend", "--name", replica]}]}}}}


async def serve_and_ask(instance: Instance) -> tuple[str, str]:
    """Run the same InferenceService on the instance; (its pod's IP, the replica its gateway answered with)."""
    client = ApiClient.from_kubeconfig(instance.kubeconfig)
    try:
        node = await client.get("v1", "nodes", NODE)
        assert node["spec"]["podCIDR"] == str(instance.block), "the node records the block its agent claimed"
        await client.create(backend(instance.name), "default")
        url = ""
        for _ in range(300):
            service = await client.get("corral.dev/v1alpha1", "inferenceservices", "echo", "default")
            url = (service.get("status") or {}).get("url", "")
            if url:
                break
            await asyncio.sleep(0.1)
        assert url.startswith(instance.gateway_url), (url, instance.gateway_url)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as http, \
                http.post(url + "/predict", json={"x": 1}) as response:
            assert response.status == 200, await response.text()
            replica = (await response.json())["replica"]
        pods = await client.list("v1", "pods", "default", label_selector="corral.dev/inference-service=echo")
        ips = [p["status"]["podIP"] for p in pods["items"] if (p.get("status") or {}).get("podIP")]
        assert len(ips) == 1, pods["items"]
        return ips[0], replica
    finally:
        await client.close()


def stop(instance: Instance) -> str:
    if instance.process.poll() is None:
        instance.process.send_signal(signal.SIGTERM)
    try:
        _, err = instance.process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        instance.process.kill()
        _, err = instance.process.communicate()
    return err


async def test_two_instances_take_their_own_ports_and_pod_ips_and_route_to_their_own_replicas(
        tmp_path: Path) -> None:
    first = start("instance-a", tmp_path / "a")
    second: Instance | None = None
    try:
        second = start("instance-b", tmp_path / "b")
        assert first.api_url != second.api_url
        assert first.gateway_url != second.gateway_url
        assert not first.block.overlaps(second.block), (first.block, second.block)
        (ip_a, replica_a), (ip_b, replica_b) = await asyncio.gather(serve_and_ask(first), serve_and_ask(second))
        assert ipaddress.IPv4Address(ip_a) in first.block and ipaddress.IPv4Address(ip_b) in second.block
        assert ip_a != ip_b
        assert (replica_a, replica_b) == ("instance-a", "instance-b"), "each gateway routes to its own replica"
        # A third `corral up` on a data dir in use fails before touching it, in one line.
        third = subprocess.run([corral(), "up", "--data-dir", str(tmp_path / "a"), "--port", "0",
                                "--gateway-port", "0"], capture_output=True, text=True, timeout=60, check=False)
        assert third.returncode == 1
        assert f"cannot start: {tmp_path / 'a'}: in use by another corral" in third.stderr
        assert "Traceback" not in third.stderr
    finally:
        errors = [stop(first)] + ([stop(second)] if second is not None else [])
    if first.api_url.endswith(":6443"):  # the second one took the default port's successor, and said so
        assert "API server port 6443 is in use" in errors[1], errors[1]
