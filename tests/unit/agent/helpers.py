"""Shared helpers for the agent tests: pod builders and waiting on real processes."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from typing import Any

PY = sys.executable


def make_pod(name: str, containers: list[dict[str, Any]], *, namespace: str = "default",
             restart_policy: str = "Never", init: list[dict[str, Any]] | None = None,
             annotations: dict[str, str] | None = None, grace: int | None = None,
             node: str = "node-a") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers, "restartPolicy": restart_policy, "nodeName": node}
    if init:
        spec["initContainers"] = init
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                     "annotations": annotations or {}},
        "spec": spec,
    }


def py(name: str, code: str, **extra: Any) -> dict[str, Any]:
    """A container running a Python snippet with this interpreter."""
    return {"name": name, "image": "python:3.11", "command": [PY, "-u", "-c", code], **extra}


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
                   what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
