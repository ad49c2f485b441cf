"""Helpers for the inference gateway/controller tests: real backend processes and objects."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = str(Path(__file__).resolve().parents[2])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BackendProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


async def start_backend(name: str, *flags: str) -> BackendProcess:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "corral.testing.inference_backend", "--host", "127.0.0.1", "--port", str(port),
         "--name", name, *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    backend = BackendProcess(name, port, process)
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"backend {name} exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return backend
        except OSError:
            await asyncio.sleep(0.05)
    backend.kill()
    raise RuntimeError(f"backend {name} did not listen on {port}")


@dataclass
class Backends:
    started: list[BackendProcess] = field(default_factory=list)

    async def start(self, name: str, *flags: str) -> BackendProcess:
        backend = await start_backend(name, *flags)
        self.started.append(backend)
        return backend

    def stop_all(self) -> None:
        for backend in self.started:
            with contextlib.suppress(Exception):
                backend.kill()


@contextlib.contextmanager
def backends() -> Iterator[Backends]:
    group = Backends()
    try:
        yield group
    finally:
        group.stop_all()


def pod(name: str, service: str, revision: str, port: int, *, ready: bool = True, namespace: str = "default",
        ip: str = "127.0.0.1") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"corral.dev/inference-service": service, "corral.dev/revision": revision}},
        "spec": {"containers": [{"name": "server", "ports": [{"containerPort": port}]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def service(name: str, *, route: dict[str, Any] | None = None, traffic: list[dict[str, Any]] | None = None,
            gateway: dict[str, Any] | None = None, namespace: str = "default") -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": {"containers": [{"name": "server"}]}}}
    if route:
        spec["route"] = route
    if gateway:
        spec["gateway"] = gateway
    obj: dict[str, Any] = {"apiVersion": "corral.dev/v1alpha1", "kind": "InferenceService",
                           "metadata": {"name": name, "namespace": namespace}, "spec": spec, "status": {}}
    if traffic:
        obj["status"]["traffic"] = traffic
    return obj


class PodRunner:
    """Runs the inference replica pods as local processes until corral's agent lands on main.

    Watches pods labelled ``corral.dev/inference-service`` through the API, gives each its own
    loopback IP (``127.0.<n>.<m>``, ``POD_IP``), runs ``command + args`` of its first container,
    reports ``Running`` + ``podIP`` and flips ``Ready`` when the readiness probe (tcpSocket or
    httpGet) passes; restarts exited containers (``restartCount``, ``CrashLoopBackOff``); kills
    the process when the pod is deleted. Pod status goes through the API like an agent's.
    """

    def __init__(self, client: Any) -> None:
        from corral.client import Informer

        self.client = client
        self.informer = Informer(client, "v1", "pods", None, label_selector="corral.dev/inference-service")
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.next_ip = 1
        # A random loopback /16 per runner, so concurrent test runs on one machine never collide.
        self.net = f"127.{random.randint(64, 250)}.{random.randint(0, 200)}"
        self.killed: list[str] = []
        self.terminating: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.informer.add_handler(self._on_pod, lambda _old, new: self._on_pod(new), self._on_delete)
        await self.informer.start()
        await self.informer.wait_synced(30)

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in [*self.tasks.values(), *self.terminating]:
            with contextlib.suppress(BaseException):
                await task
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        await self.informer.stop()

    def _key(self, pod: dict[str, Any]) -> str:
        return f"{pod['metadata'].get('namespace') or 'default'}/{pod['metadata']['name']}"

    def _on_pod(self, pod: dict[str, Any]) -> None:
        key = self._key(pod)
        if pod["metadata"].get("deletionTimestamp"):
            self._on_delete(pod)
            return
        if key not in self.tasks:
            self.tasks[key] = asyncio.get_running_loop().create_task(self._run(pod))

    def _on_delete(self, pod: dict[str, Any]) -> None:
        key = self._key(pod)
        task = self.tasks.pop(key, None)
        if task is not None:
            task.cancel()
        process = self.processes.pop(key, None)
        if process is not None:
            # As the agent does: SIGTERM (the server finishes what it serves), SIGKILL after a grace period.
            self.killed.append(key)
            self.terminating.append(asyncio.get_running_loop().create_task(self._terminate(process)))

    async def _terminate(self, process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        if process.poll() is None:
            process.terminate()
        deadline = asyncio.get_running_loop().time() + grace
        while process.poll() is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)

    async def _status(self, pod: dict[str, Any], status: dict[str, Any]) -> bool:
        from corral.client import ApiError

        try:
            await self.client.patch("v1", "pods", pod["metadata"]["name"], {"status": status},
                                    namespace=pod["metadata"].get("namespace") or "default", subresource="status")
            return True
        except ApiError:
            return False

    async def _probe(self, container: dict[str, Any], ip: str, port: int) -> bool:
        probe = container.get("readinessProbe") or {"tcpSocket": {"port": port}}
        try:
            if "httpGet" in probe:
                path = probe["httpGet"].get("path", "/")
                probe_port = int(probe["httpGet"].get("port", port))
                import aiohttp

                async with aiohttp.ClientSession() as http, \
                        http.get(f"http://{ip}:{probe_port}{path}", timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    return 200 <= resp.status < 400
            probe_port = int((probe.get("tcpSocket") or {}).get("port", port))
            _, writer = await asyncio.open_connection(ip, probe_port)
            writer.close()
            await writer.wait_closed()
            return True
        except Exception:
            return False

    async def _run(self, pod: dict[str, Any]) -> None:
        import os
        from datetime import UTC, datetime

        from corral.util.clock import format_timestamp

        key = self._key(pod)
        ip = f"{self.net}.{self.next_ip % 250 + 2}"
        self.next_ip += 1
        container = pod["spec"]["containers"][0]
        port = int((container.get("ports") or [{}])[0].get("containerPort", 8080))
        env = {**os.environ, "POD_IP": ip, "HOSTNAME": pod["metadata"]["name"]}
        for item in container.get("env") or []:
            env[item["name"]] = str(item.get("value", ""))
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        argv = [sys.executable if a in ("python", "python3") else a for a in argv]
        restarts = 0
        process: subprocess.Popen[bytes] | None = None
        try:
            while True:
                if process is not None:
                    process.wait(timeout=10)
                process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           cwd=container.get("workingDir") or REPO_ROOT)
                self.processes[key] = process
                await self._status(pod, {"phase": "Running", "podIP": ip, "conditions": [
                    {"type": "Ready", "status": "False", "lastTransitionTime": format_timestamp(datetime.now(UTC))}],
                    "containerStatuses": [{"name": container["name"], "restartCount": restarts, "ready": False,
                                           "state": {"running": {}}}]})
                ready = False
                while process.poll() is None:
                    ok = await self._probe(container, ip, port)
                    if ok != ready:
                        ready = ok
                        await self._status(pod, {"conditions": [
                            {"type": "Ready", "status": "True" if ok else "False",
                             "lastTransitionTime": format_timestamp(datetime.now(UTC))}]})
                    await asyncio.sleep(0.1)
                restarts += 1
                await self._status(pod, {"conditions": [{"type": "Ready", "status": "False"}],
                                         "containerStatuses": [{"name": container["name"], "restartCount": restarts,
                                                                "ready": False, "state": {"waiting": {
                                                                    "reason": "CrashLoopBackOff"}}}]})
                await asyncio.sleep(min(2.0, 0.2 * 2**restarts))
        except asyncio.CancelledError:
            self.processes.pop(key, None)
            if process is not None:
                if process.poll() is None:
                    process.kill()
                process.wait(timeout=10)
            raise


@dataclass
class Stack:
    server: Any
    client: Any
    gateway: Any
    controller: Any
    runner: PodRunner

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        from corral.client import ApiError

        try:
            return dict(await self.client.create(obj))
        except ApiError as error:
            if error.code != 409:
                raise
        for _ in range(20):  # the controller writes status concurrently: retry on conflicts
            current = await self.client.get("corral.dev/v1alpha1", "inferenceservices", obj["metadata"]["name"],
                                            obj["metadata"].get("namespace") or "default")
            try:
                return dict(await self.client.update({**current, "spec": obj["spec"]}))
            except ApiError as error:
                if error.code != 409:
                    raise
        raise AssertionError("could not update the InferenceService: conflicts kept coming")

    async def get(self, name: str) -> dict[str, Any]:
        return dict(await self.client.get("corral.dev/v1alpha1", "inferenceservices", name, "default"))

    async def pods(self, name: str) -> list[dict[str, Any]]:
        listing = await self.client.list("v1", "pods", "default",
                                         label_selector=f"corral.dev/inference-service={name}")
        return list(listing["items"])

    async def wait_for(self, predicate: Any, timeout: float, what: str) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await predicate()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def inference_stack(tmp_path: Any, *, tick: float = 0.5, tls: bool = False) -> Any:
    from corral.autoscaling.autoscaler import Autoscaler
    from corral.client import ApiClient
    from corral.controllers.inferenceservice import InferenceServiceController
    from corral.gateway.server import Gateway
    from corral.testing.apiserver import running_apiserver

    async with running_apiserver(tmp_path, tls=tls) as server:
        client = ApiClient.from_kubeconfig(server.kubeconfig) if tls else ApiClient(server.url, server.token)
        gateway = Gateway(seed=3)
        await gateway.start()
        runner = PodRunner(client)
        await runner.start()

        async def feed() -> dict[str, Any]:
            return gateway.feed()

        controller = InferenceServiceController(client, Autoscaler(tick=tick), gateway_url=gateway.url, feed=feed,
                                                tick=tick)
        gateway.on_activate = controller.activate
        await gateway.watch_api(client)
        await controller.start()
        try:
            yield Stack(server, client, gateway, controller, runner)
        finally:
            await controller.stop()
            await gateway.stop()
            await runner.stop()
            await client.close()


def backend_template(*args: str, probe: dict[str, Any] | None = None, port: int = 8080) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "server", "image": "python",
        "command": ["python", "-m", "corral.testing.inference_backend"], "args": list(args),
        "ports": [{"containerPort": port}],
    }
    if probe:
        container["readinessProbe"] = probe
    return {"spec": {"containers": [container]}}


def inference_service(name: str, template: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "corral.dev/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"template": template, **spec}}
