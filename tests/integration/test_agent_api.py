"""The agent against a real API server in-process, with real processes and real kubectl.

Durations are shortened (heartbeat 0.5 s, lease 2 s, back-off 0.2 s) so the whole
file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from corral.agent.agent import Agent, AgentConfig
from corral.agent.process import proc_start_ticks
from corral.apiserver.server import RunningServer, start_server
from corral.client import ApiClient, ApiError
from corral.controllers.nodelifecycle import NodeLifecycleConfig, NodeLifecycleController
from corral.util.quantity import to_int
from tests.conftest import require_tool

PY = sys.executable
NODE = "node-a"


@dataclass
class Cluster:
    server: RunningServer
    client: ApiClient
    agent: Agent
    config: AgentConfig

    async def pod(self, name: str) -> dict[str, Any] | None:
        return await self.client.get_or_none("v1", "pods", name, "default")

    async def wait_pod(self, name: str, predicate: Any, timeout: float = 15.0, what: str = "") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = await self.pod(name)
            if last is not None and predicate(last):
                return last
            await asyncio.sleep(0.05)
        raise AssertionError(f"pod {name}: timed out waiting for {what or 'condition'}; last: {last}")


def agent_config(root: Path) -> AgentConfig:
    return AgentConfig(data_dir=root / "agent", node_name=NODE, simulated_gpus=["4xH100-80GB"], discover_gpus=False,
                       heartbeat_interval=0.5, lease_duration=2, status_interval=5, backoff_initial=0.2,
                       backoff_max=1.0, log_index_period=0.05, shutdown_grace=1)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    server = await start_server(tmp_path / "api")
    assert server.kubeconfig is not None
    client = ApiClient.from_kubeconfig(server.kubeconfig)
    config = agent_config(tmp_path)
    agent = Agent(client, config)
    await agent.start()
    cluster = Cluster(server, client, agent, config)
    try:
        yield cluster
    finally:
        await cluster.agent.stop()
        await client.close()
        await server.stop()


def pod(name: str, code: str, *, node: str | None = NODE, restart: str = "Never", grace: int | None = None,
        **container: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"restartPolicy": restart,
                            "containers": [{"name": "main", "image": "python:3.11",
                                            "command": [PY, "-u", "-c", code], **container}]}
    if node:
        spec["nodeName"] = node
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def phase(obj: dict[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase"))


async def test_node_registers_with_gpus_and_renews_its_lease(cluster: Cluster) -> None:
    node = await cluster.client.get("v1", "nodes", NODE)
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB"
    assert labels["nvidia.com/gpu.count"] == "4"
    assert labels["corral.dev/simulated-gpus"] == "true"
    assert labels["kubernetes.io/hostname"] == NODE
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "4"
    assert to_int(node["status"]["capacity"]["ephemeral-storage"]) > 0
    assert to_int(node["status"]["allocatable"]["memory"]) > 0 and node["status"]["capacity"]["pods"] == "250"
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == cluster.agent.port
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert '"simulated":true' in node["metadata"]["annotations"]["corral.dev/devices"]
    first = await cluster.client.get("coordination.k8s.io/v1", "leases", NODE, "kube-node-lease")
    await asyncio.sleep(1.2)
    second = await cluster.client.get("coordination.k8s.io/v1", "leases", NODE, "kube-node-lease")
    assert second["spec"]["renewTime"] > first["spec"]["renewTime"]
    assert second["spec"]["holderIdentity"] == NODE


async def test_pod_runs_succeeds_and_kubectl_shows_and_follows_its_logs(cluster: Cluster) -> None:
    kubectl = require_tool("kubectl")
    code = "import time\nfor i in range(4):\n    print('line', i)\n    time.sleep(0.4)\n"
    await cluster.client.create(pod("hello", code))
    await cluster.wait_pod("hello", lambda p: phase(p) == "Running", what="Running")
    env = {**os.environ, "KUBECONFIG": str(cluster.server.kubeconfig)}
    follow = await asyncio.create_subprocess_exec(kubectl, "logs", "-f", "hello", env=env,
                                                  stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(follow.communicate(), 20)
    assert follow.returncode == 0, err
    assert out.decode().splitlines() == [f"line {i}" for i in range(4)]
    done = await cluster.wait_pod("hello", lambda p: phase(p) == "Succeeded", what="Succeeded")
    status = done["status"]["containerStatuses"][0]
    assert status["state"]["terminated"]["exitCode"] == 0
    assert status["image"] == "python:3.11"
    assert done["status"]["podIP"].startswith("127.")
    result = await asyncio.to_thread(subprocess.run, [kubectl, "logs", "hello", "--tail=1", "--timestamps"],
                                     env=env, capture_output=True, text=True, timeout=20, check=False)
    assert result.returncode == 0, result.stderr
    stamp, text = result.stdout.strip().split(" ", 1)
    assert text == "line 3" and stamp.endswith("Z")


async def test_crash_restarts_are_counted_in_the_api(cluster: Cluster) -> None:
    await cluster.client.create(pod("crash", "print('boom'); raise SystemExit(4)", restart="OnFailure"))
    crashed = await cluster.wait_pod(
        "crash", lambda p: ((p.get("status") or {}).get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 2,
        what="two restarts")
    status = crashed["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 4
    assert phase(crashed) == "Running"
    chunks = [c async for c in cluster.client.pod_log("default", "crash", previous=True)]
    assert b"".join(chunks) == b"boom\n"
    events = (await cluster.client.list("v1", "events", "default"))["items"]
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "crash"}
    assert {"Started", "BackOff"} <= reasons


async def test_bound_pod_gets_exactly_its_assigned_gpus(cluster: Cluster) -> None:
    code = "import os; print(repr(os.environ['CUDA_VISIBLE_DEVICES']), os.environ['POD_IP'])"
    await cluster.client.create(pod("gpu", code, node=None))
    await asyncio.sleep(0.3)
    assert (await cluster.pod("gpu") or {}).get("status", {}).get("phase") in (None, "Pending")
    await cluster.client.bind("default", "gpu", NODE, {"corral.dev/gpu-devices": "1,3"})
    done = await cluster.wait_pod("gpu", lambda p: phase(p) == "Succeeded", what="Succeeded")
    text = b"".join([c async for c in cluster.client.pod_log("default", "gpu")]).decode().strip()
    assert text == f"'1,3' {done['status']['podIP']}"


async def test_graceful_delete_honours_the_grace_period(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "sigterm"
    code = ("import signal, time\n"
            f"signal.signal(signal.SIGTERM, lambda *a: open({str(marker)!r}, 'w').write(str(time.time())))\n"
            "print('up', flush=True)\n"
            "while True: time.sleep(0.05)\n")
    await cluster.client.create(pod("stubborn", code, grace=2, restart="Always"))
    running = await cluster.wait_pod("stubborn", lambda p: phase(p) == "Running", what="Running")
    pid = cluster.agent.workers["default/stubborn"].runtime.containers[0].pid
    assert pid is not None
    for _ in range(200):  # the handler is installed once it printed "up"
        if b"up" in b"".join([c async for c in cluster.client.pod_log("default", "stubborn")]):
            break
        await asyncio.sleep(0.05)
    began, began_wall = time.monotonic(), time.time()
    await cluster.client.delete("v1", "pods", "stubborn", "default")
    terminating = await cluster.pod("stubborn")
    assert terminating is not None and terminating["metadata"].get("deletionTimestamp")
    deadline = time.monotonic() + 15
    while await cluster.pod("stubborn") is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - began
    assert await cluster.pod("stubborn") is None
    assert 1.9 <= elapsed < 6, elapsed
    assert marker.exists(), "SIGTERM reached the process first"
    assert float(marker.read_text()) - began_wall < 1.5, "SIGTERM came at the start of the grace period"
    assert proc_start_ticks(pid) is None, "SIGKILL must have ended the process"
    log = cluster.config.data_dir / "pods" / running["metadata"]["uid"]
    assert not log.exists(), "the pod's files are removed with it"


async def test_two_pods_serve_the_same_port_on_their_own_ips(cluster: Cluster) -> None:
    server = ("import http.server, os\n"
              "class H(http.server.BaseHTTPRequestHandler):\n"
              "    def do_GET(self):\n"
              "        self.send_response(200); self.end_headers(); self.wfile.write(os.environ['HOSTNAME'].encode())\n"
              "    def log_message(self, *a): pass\n"
              "http.server.HTTPServer((os.environ['POD_IP'], 8000), H).serve_forever()\n")
    probe = {"httpGet": {"port": 8000, "path": "/"}, "periodSeconds": 1}
    for name in ("web-a", "web-b"):
        await cluster.client.create(pod(name, server, restart="Always", readinessProbe=probe))
    ips = {}
    for name in ("web-a", "web-b"):
        ready = await cluster.wait_pod(name, lambda p: any(c["type"] == "Ready" and c["status"] == "True"
                                                           for c in (p.get("status") or {}).get("conditions") or []),
                                       what="Ready")
        ips[name] = ready["status"]["podIP"]
    assert ips["web-a"] != ips["web-b"]
    for name, ip in ips.items():
        reader, writer = await asyncio.open_connection(ip, 8000)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        body = await reader.read()
        writer.close()
        assert body.endswith(name.encode())


async def test_restarted_agent_adopts_the_running_pod(cluster: Cluster) -> None:
    await cluster.client.create(pod("long", "import time\nprint('up', flush=True)\ntime.sleep(120)",
                                    restart="Always"))
    await cluster.client.create(pod("done", "print('finished')"))
    await cluster.wait_pod("long", lambda p: phase(p) == "Running", what="Running")
    finished = await cluster.wait_pod("done", lambda p: phase(p) == "Succeeded", what="Succeeded")
    pid = cluster.agent.workers["default/long"].runtime.containers[0].pid
    assert pid is not None
    await cluster.agent.stop(kill_pods=False)
    assert proc_start_ticks(pid) is not None
    cluster.agent = Agent(cluster.client, cluster.config)
    await cluster.agent.start()
    worker = cluster.agent.workers["default/long"]
    for _ in range(100):
        if worker.runtime.containers[0].state == "running":
            break
        await asyncio.sleep(0.05)
    assert worker.runtime.containers[0].pid == pid
    after = await cluster.wait_pod("long", lambda p: phase(p) == "Running", what="still Running")
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    logs = b"".join([c async for c in cluster.client.pod_log("default", "done")])
    assert logs == b"finished\n", "a pod that finished before the restart keeps its logs"
    await cluster.client.delete("v1", "pods", "done", "default")
    done_dir = cluster.config.data_dir / "pods" / finished["metadata"]["uid"]
    for _ in range(100):
        if not done_dir.exists():
            break
        await asyncio.sleep(0.05)
    assert not done_dir.exists()
    await cluster.client.delete("v1", "pods", "long", "default", grace_period_seconds=1)
    for _ in range(100):
        if proc_start_ticks(pid) is None:
            break
        await asyncio.sleep(0.05)
    assert proc_start_ticks(pid) is None


async def test_lease_expiry_marks_the_node_unknown_taints_and_evicts(cluster: Cluster) -> None:
    client = cluster.client
    await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ghost"}})
    await client.create(pod("stranded", "pass", node="ghost"))
    await client.create({**pod("patient", "pass", node="ghost"),
                         "spec": {**pod("patient", "pass", node="ghost")["spec"], "tolerations": [
                             {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]}})
    controller = NodeLifecycleController(client, NodeLifecycleConfig(grace_period=1.0, default_toleration=0.5,
                                                                     resync=0.2))
    await controller.start()
    try:
        deadline = time.monotonic() + 15
        node: dict[str, Any] = {}
        while time.monotonic() < deadline:
            node = await client.get("v1", "nodes", "ghost")
            taints = node.get("spec", {}).get("taints") or []
            if any(t["key"] == "node.kubernetes.io/unreachable" for t in taints):
                break
            await asyncio.sleep(0.1)
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "Unknown"
        while time.monotonic() < deadline and await cluster.pod("stranded") is not None:
            await asyncio.sleep(0.1)
        assert await cluster.pod("stranded") is None, "the pod without a toleration is evicted"
        assert await cluster.pod("patient") is not None, "a pod tolerating forever stays"
        mine = await client.get("v1", "nodes", NODE)
        assert not any(t["key"] == "node.kubernetes.io/unreachable" for t in mine.get("spec", {}).get("taints") or [])
        assert next(c for c in mine["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    finally:
        await controller.stop()
        with pytest.raises(ApiError):
            await client.get("v1", "pods", "stranded", "default")


async def test_a_shorter_second_delete_cuts_the_grace_period(cluster: Cluster) -> None:
    code = ("import signal, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: None)\n"
            "print('up', flush=True)\n"
            "while True: time.sleep(0.05)\n")
    await cluster.client.create(pod("slow", code, grace=60, restart="Always"))
    await cluster.wait_pod("slow", lambda p: phase(p) == "Running", what="Running")
    pid = cluster.agent.workers["default/slow"].runtime.containers[0].pid
    assert pid is not None
    for _ in range(200):
        if b"up" in b"".join([c async for c in cluster.client.pod_log("default", "slow")]):
            break
        await asyncio.sleep(0.05)
    await cluster.client.delete("v1", "pods", "slow", "default")
    await asyncio.sleep(0.5)
    assert proc_start_ticks(pid) is not None, "SIGTERM is ignored; the 60 s grace period runs"
    began = time.monotonic()
    await cluster.client.delete("v1", "pods", "slow", "default", grace_period_seconds=1)
    while proc_start_ticks(pid) is not None and time.monotonic() - began < 10:
        await asyncio.sleep(0.05)
    assert proc_start_ticks(pid) is None
    assert time.monotonic() - began < 4
    for _ in range(100):
        if await cluster.pod("slow") is None:
            break
        await asyncio.sleep(0.05)
    assert await cluster.pod("slow") is None


def _marked_alive(mark: str) -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X") and any(arg.startswith(mark.encode()) for arg in args):
            alive.append(int(entry.name))
    return alive


async def test_deleting_a_daemonizing_pod_leaves_no_process(cluster: Cluster) -> None:
    mark = f"corral-daemon-{os.getpid()}-{time.monotonic_ns()}"
    sleeper = f"[{PY!r}, '-c', 'import time; time.sleep(1000)', {mark!r}]"
    code = (f"import os, subprocess, time\n"
            f"subprocess.Popen({sleeper}, start_new_session=True)\n"
            f"if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execv({PY!r}, {sleeper})\n"
            f"    os._exit(0)\n"
            f"os.wait()\nprint('ready', flush=True)\ntime.sleep(1000)\n")
    await cluster.client.create(pod("daemons", code, grace=1))
    await cluster.wait_pod("daemons", lambda p: phase(p) == "Running", what="Running")
    deadline = time.monotonic() + 15
    while len(_marked_alive(mark)) < 2:
        assert time.monotonic() < deadline, "the pod's children did not start"
        await asyncio.sleep(0.05)
    await cluster.client.delete("v1", "pods", "daemons", "default")
    deadline = time.monotonic() + 10
    while await cluster.pod("daemons") is not None:
        assert time.monotonic() < deadline, "the pod was not deleted"
        await asyncio.sleep(0.05)
    assert _marked_alive(mark) == []


async def test_logs_limit_bytes_and_tail_through_the_api(cluster: Cluster) -> None:
    code = "import sys\nfor i in range(20000):\n    sys.stdout.write('line %05d\\n' % i)\n"
    await cluster.client.create(pod("talk", code))
    await cluster.wait_pod("talk", lambda p: phase(p) == "Succeeded", what="Succeeded")
    headers = {"Authorization": f"Bearer {cluster.server.token}"}
    url = f"{cluster.server.url}/api/v1/namespaces/default/pods/talk/log"
    tls = cluster.server.ssl_context()
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(url, params={"limitBytes": "15"}, ssl=tls) as response:
            assert response.status == 200 and await response.read() == b"line 00000\nline"
        async with session.get(url, params={"tailLines": "2", "limitBytes": "13"}, ssl=tls) as response:
            assert await response.read() == b"line 19998\nli"


async def test_a_stored_pod_whose_container_name_leaves_its_directory_is_refused(cluster: Cluster) -> None:
    evil = pod("evil", "print('ran')")
    evil["spec"]["containers"][0]["name"] = "../../../x"
    evil["metadata"].update({"uid": "0c7d7a3e-0000-4000-8000-000000000022",
                             "creationTimestamp": "2026-01-01T00:00:00Z"})
    root = cluster.config.data_dir.parent
    before = sorted(str(p) for p in root.rglob("*") if "agent" not in p.parts and "api" not in p.parts)
    cluster.server.server.store.create("pods", evil)  # past the API's validation
    failed = await cluster.wait_pod("evil", lambda p: (p.get("status") or {}).get("reason") == "InvalidPodPaths",
                                    what="InvalidPodPaths")
    assert phase(failed) == "Failed" and "leaves" in failed["status"]["message"]
    after = sorted(str(p) for p in root.rglob("*") if "agent" not in p.parts and "api" not in p.parts)
    assert after == before, "the agent wrote outside its data dir"
    assert not (cluster.config.data_dir / "x").exists() and not (root / "x").exists()
    await cluster.client.delete("v1", "pods", "evil", "default", grace_period_seconds=0)
    deadline = time.monotonic() + 10
    while await cluster.pod("evil") is not None:
        assert time.monotonic() < deadline, "the pod was not deleted"
        await asyncio.sleep(0.05)
    assert list((cluster.config.data_dir / "pods").glob("*")) == []
