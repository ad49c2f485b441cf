"""Secrets and pod logs are corral's user's only; pods get nothing inside the data dir; runAs* honoured
(issue 22, item 3).

A real API server and a real agent on a fresh data dir, real pods (``/bin/sh``, so a process of
another uid can run them: the venv's interpreter may live where uid 65534 cannot reach).
The tests that switch users need root, as the agent does to honour ``runAsUser``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral.agent.agent import Agent, AgentConfig
from corral.apiserver.server import RunningServer, start_server
from corral.client import ApiClient
from corral.util.datadir import pod_root
from tests.conftest import require_tool

NODE = "node-sec"
NOBODY = 65534
SECRET_BYTES = "c2VjcmV0LXZhbHVlLTQyNDI="  # base64 of a value no other user may read
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (as the agent does)")


@dataclass
class Cluster:
    data: Path
    server: RunningServer
    client: ApiClient
    agent: Agent

    async def run(self, name: str, script: str, **spec: Any) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "main", "image": "sh", "command": ["/bin/sh", "-c", script]}
        container.update(spec.pop("container", {}))
        await self.client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                                  "spec": {"nodeName": NODE, "restartPolicy": "Never", "containers": [container],
                                           **spec}})
        return await self.wait(name, lambda p: (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"))

    async def wait(self, name: str, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = await self.client.get_or_none("v1", "pods", name, "default")
            if last is not None and predicate(last):
                return last
            await asyncio.sleep(0.05)
        raise AssertionError(f"pod {name}: timed out; last: {last}")

    async def log(self, name: str) -> str:
        text = await self.client.request("GET", f"/api/v1/namespaces/default/pods/{name}/log")
        return str(text)


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory others may pass through (``tmp_path`` sits in pytest's 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="corral-sec-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def start_cluster(data: Path) -> Cluster:
    server = await start_server(data)  # HTTPS: the self-signed key goes to data/tls
    assert server.kubeconfig is not None
    client = ApiClient.from_kubeconfig(server.kubeconfig)
    agent = Agent(client, AgentConfig(data_dir=data / "agent", node_name=NODE, discover_gpus=False,
                                      heartbeat_interval=0.5, lease_duration=2, backoff_initial=0.2,
                                      log_index_period=0.05, shutdown_grace=1, pod_root=pod_root(data)))
    await agent.start()
    return Cluster(data, server, client, agent)


async def stop_cluster(cluster: Cluster) -> None:
    await cluster.agent.stop()
    await cluster.client.close()
    await cluster.server.stop()


@pytest.fixture
async def cluster(base: Path) -> AsyncIterator[Cluster]:
    running = await start_cluster(base / "data")
    try:
        yield running
    finally:
        await stop_cluster(running)


def modes(root: Path) -> dict[str, int]:
    """Mode of every directory and regular file under ``root`` (itself included)."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            info = path.lstat()
            if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
                found[str(path.relative_to(root))] = stat.S_IMODE(info.st_mode)
    return found


def wrong_modes(root: Path) -> dict[str, str]:
    return {name: oct(mode) for name, mode in modes(root).items()
            if mode != (0o700 if (root / name).is_dir() else 0o600)}


async def put_secret_and_log(cluster: Cluster) -> None:
    await cluster.client.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
                                 "data": {"token": SECRET_BYTES}})
    pod = await cluster.run("talker", "echo hello from the pod; echo $CORRAL_CHECKPOINT_DIR")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]


async def test_fresh_data_dir_is_private_dirs_0700_files_0600(cluster: Cluster) -> None:
    await put_secret_and_log(cluster)
    data = cluster.data
    names = set(modes(data))
    for expected in ("store.db", "store.db-wal", "tokens.csv", "kubeconfig", "tls", "agent"):
        assert expected in names or any(n.startswith(expected) for n in names), (expected, sorted(names))
    assert any(name.endswith(".log") for name in names), sorted(names)  # the pod's log is in there
    assert wrong_modes(data) == {}


async def test_a_data_dir_left_open_by_an_older_version_is_closed_at_start(base: Path) -> None:
    data = base / "data"
    cluster = await start_cluster(data)
    await put_secret_and_log(cluster)
    await stop_cluster(cluster)
    for path in [data, *data.rglob("*")]:  # what an older corral (umask 022) left
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert wrong_modes(data) != {}
    cluster = await start_cluster(data)
    try:
        assert wrong_modes(data) == {}
    finally:
        await stop_cluster(cluster)


async def test_pods_get_no_path_inside_the_data_dir(cluster: Cluster) -> None:
    await put_secret_and_log(cluster)
    checkpoint = Path((await cluster.log("talker")).splitlines()[1])
    data = cluster.data.resolve()
    assert checkpoint.is_absolute()
    assert data not in checkpoint.resolve().parents, f"{checkpoint} is inside the data dir {data}"
    assert checkpoint.resolve().is_relative_to(pod_root(cluster.data).resolve())


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=30, check=False)


@needs_root
async def test_another_user_cannot_read_the_store_or_a_secret_or_logs(cluster: Cluster) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    await put_secret_and_log(cluster)
    data = cluster.data
    assert as_nobody("/bin/sh", "-c", f"cd {os.fspath(data.parent)}").returncode == 0  # the base is passable
    targets = [data / "store.db", data / "store.db-wal", data / "tokens.csv", data / "kubeconfig",
               *data.rglob("*.log"), *(data / "tls").iterdir()]
    for path in targets:
        result = as_nobody("/bin/cat", os.fspath(path))
        assert result.returncode != 0 and "Permission denied" in result.stderr, (path, result)
        assert SECRET_BYTES not in result.stdout
    listing = as_nobody("/bin/ls", os.fspath(data))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr


@needs_root
async def test_run_as_user_runs_the_process_as_that_user(cluster: Cluster) -> None:
    pod = await cluster.run(
        "nobody", 'id -u; id -g; echo written > "$CORRAL_CHECKPOINT_DIR/f" && echo checkpoint-ok; '
        f'cat {cluster.data}/kubeconfig >/dev/null 2>&1 || echo kubeconfig-denied',
        securityContext={"runAsUser": NOBODY, "runAsGroup": NOBODY})
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert (await cluster.log("nobody")).split() == [str(NOBODY), str(NOBODY), "checkpoint-ok", "kubeconfig-denied"]
    # the container's own securityContext wins over the pod's
    pod = await cluster.run("override", "id -u", securityContext={"runAsUser": 0},
                            container={"securityContext": {"runAsUser": NOBODY, "runAsGroup": NOBODY}})
    assert pod["status"]["phase"] == "Succeeded" and (await cluster.log("override")).strip() == str(NOBODY)


@needs_root
async def test_run_as_non_root_without_a_user_waits_with_create_container_config_error(cluster: Cluster) -> None:
    await cluster.client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "strict", "namespace": "default"},
                                 "spec": {"nodeName": NODE, "securityContext": {"runAsNonRoot": True},
                                          "containers": [{"name": "main", "image": "sh",
                                                          "command": ["/bin/sh", "-c", "touch /tmp/ran-as-root"]}]}})
    pod = await cluster.wait("strict", lambda p: any(
        (s.get("state") or {}).get("waiting", {}).get("reason") == "CreateContainerConfigError"
        for s in (p.get("status") or {}).get("containerStatuses") or []))
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert "runAsNonRoot and image will run as root" in waiting["message"]
    assert pod["status"]["phase"] == "Pending"
    events = await cluster.client.list("v1", "events", "default")
    assert any("runAsNonRoot" in (e.get("message") or "") for e in events["items"])
    kubectl = require_tool("kubectl")
    shown = await asyncio.to_thread(subprocess.run, [kubectl, "get", "pod", "strict", "--no-headers"],
                                    env={**os.environ, "KUBECONFIG": str(cluster.server.kubeconfig)},
                                    capture_output=True, text=True, timeout=30, check=False)
    assert "CreateContainerConfigError" in shown.stdout, shown


async def test_only_corrals_own_entries_are_changed_in_a_shared_directory(base: Path) -> None:
    data = base / "data"
    data.mkdir()
    (data / "notes.txt").write_text("the user's own file")
    (data / "notes.txt").chmod(0o644)
    cluster = await start_cluster(data)
    try:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "notes.txt").stat().st_mode) == 0o644
        assert stat.S_IMODE((data / "store.db").stat().st_mode) == 0o600
    finally:
        await stop_cluster(cluster)


async def test_containers_get_the_usual_umask_not_the_agents(cluster: Cluster) -> None:
    pod = await cluster.run("mask", "umask")
    assert pod["status"]["phase"] == "Succeeded"
    assert (await cluster.log("mask")).strip() == "0022"


@needs_root
async def test_exec_probes_run_as_the_container_does(cluster: Cluster) -> None:
    probe = {"exec": {"command": ["/bin/sh", "-c", f'test "$(id -u)" = {NOBODY}']}, "periodSeconds": 1}
    await cluster.client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probed", "namespace": "default"},
                                 "spec": {"nodeName": NODE, "securityContext": {"runAsUser": NOBODY},
                                          "containers": [{"name": "main", "image": "sh", "command": ["sleep", "30"],
                                                          "readinessProbe": probe}]}})
    await cluster.wait("probed", lambda p: any(c.get("type") == "Ready" and c.get("status") == "True"
                                               for c in (p.get("status") or {}).get("conditions") or []))


async def test_corral_up_leaves_a_private_data_dir_and_hands_pods_the_pod_root(base: Path) -> None:
    from corral.cli.up import start_corral

    data = base / "data"
    running = await asyncio.wait_for(start_corral(data, port=0, gateway_port=0, node_name="up-node"), 60)
    try:
        async with ApiClient.from_kubeconfig(running.context.kubeconfig) as client:
            await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                                 "spec": {"restartPolicy": "Never", "containers": [
                                     {"name": "main", "image": "sh", "command": ["/bin/sh", "-c",
                                                                                 "echo $CORRAL_CHECKPOINT_DIR"]}]}})
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pod = await client.get("v1", "pods", "p", "default")
                if (pod.get("status") or {}).get("phase") == "Succeeded":
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"the pod did not finish: {pod.get('status')}")
            checkpoint = Path(str(await client.request("GET", "/api/v1/namespaces/default/pods/p/log")).strip())
        assert checkpoint.is_relative_to(base / "data-pods"), checkpoint
        assert (base / "data-pods").is_dir() and stat.S_IMODE((base / "data-pods").stat().st_mode) == 0o711
        assert wrong_modes(data) == {}
        assert {"store.db", "tokens.csv", "kubeconfig", "tls", "agent"} <= set(modes(data))
    finally:
        await running.stop()
