"""Helpers for the inference gateway/controller tests: real backend processes and objects."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


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
