"""Cascading deletion with ``propagationPolicy`` Foreground and Orphan, against a real server and collector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from corral.apiserver.server import RunningServer, start_server
from corral.client import ApiClient, ApiError, InformerFactory
from corral.controllers.gc import GarbageCollector
from corral.controllers.runtime import Manager


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(tmp_path / "api", tls=False, history=200)
    yield running
    await running.stop()


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[ApiClient]:
    api = ApiClient(server.url, server.token)
    yield api
    await api.close()


@pytest.fixture
async def collector(client: ApiClient) -> AsyncIterator[GarbageCollector]:
    factory = InformerFactory(client)
    gc = GarbageCollector(client, factory, resources=[("v1", "Pod", "pods"), ("v1", "ConfigMap", "configmaps")])
    manager = Manager(factory)
    manager.add(gc.controller)
    await manager.start(sync_timeout=5)
    yield gc
    await manager.stop()


def owned_by(*owners: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"],
             "uid": o["metadata"]["uid"]} for o in owners]


def configmap(name: str, owners: list[dict[str, Any]] | None = None, finalizers: list[str] | None = None) -> dict:
    metadata: dict[str, Any] = {"name": name, "namespace": "default"}
    if owners:
        metadata["ownerReferences"] = owners
    if finalizers:
        metadata["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": name}}


def pod(name: str, owners: list[dict[str, Any]]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "ownerReferences": owners},
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}


async def until(check: Callable[[], Any], timeout: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.03)


async def test_foreground_deletion_removes_dependents_first_and_waits_for_them(
        client: ApiClient, collector: GarbageCollector) -> None:
    owner = await client.create(configmap("app"))
    child = await client.create(configmap("child", owned_by(owner)))
    await client.create(configmap("grandchild", owned_by(child)))
    # A dependent with a finalizer of its own holds the owner's deletion until it is released.
    await client.create(configmap("held", owned_by(owner), finalizers=["example.com/hold"]))
    await client.create(pod("worker", owned_by(owner)))

    answer = await client.delete("v1", "configmaps", "app", "default", propagation_policy="Foreground")
    assert "foregroundDeletion" in answer["metadata"]["finalizers"]
    assert answer["metadata"].get("deletionTimestamp")

    async def dependents_gone() -> bool:
        return all([await client.get_or_none("v1", plural, name, "default") is None
                    for plural, name in (("configmaps", "child"), ("configmaps", "grandchild"), ("pods", "worker"))])
    await until(dependents_gone)
    await asyncio.sleep(0.3)
    held = await client.get("v1", "configmaps", "held", "default")
    assert held["metadata"].get("deletionTimestamp"), "the held dependent is being deleted"
    still = await client.get("v1", "configmaps", "app", "default")
    assert still["metadata"]["finalizers"] == ["foregroundDeletion"], "the owner waits for its last dependent"

    await client.patch("v1", "configmaps", "held", {"metadata": {"finalizers": None}}, namespace="default")

    async def owner_gone() -> bool:
        return await client.get_or_none("v1", "configmaps", "app", "default") is None
    await until(owner_gone)


async def test_orphan_deletion_releases_dependents_and_keeps_their_other_owners(
        client: ApiClient, collector: GarbageCollector) -> None:
    owner = await client.create(configmap("owner"))
    other = await client.create(configmap("other-owner"))
    await client.create(configmap("shared", owned_by(owner, other)))
    await client.create(pod("solo", owned_by(owner)))

    await client.delete("v1", "configmaps", "owner", "default", propagation_policy="Orphan")

    async def owner_gone() -> bool:
        return await client.get_or_none("v1", "configmaps", "owner", "default") is None
    await until(owner_gone)
    shared = await client.get("v1", "configmaps", "shared", "default")
    assert [ref["name"] for ref in shared["metadata"]["ownerReferences"]] == ["other-owner"]
    solo = await client.get("v1", "pods", "solo", "default")
    assert not solo["metadata"].get("ownerReferences")
    await asyncio.sleep(0.3)  # the collector had every chance to delete them, and must not
    assert await client.get_or_none("v1", "pods", "solo", "default") is not None
    assert await client.get_or_none("v1", "configmaps", "shared", "default") is not None


async def test_background_is_the_default_and_removes_the_owner_at_once(
        client: ApiClient, collector: GarbageCollector) -> None:
    owner = await client.create(configmap("bg"))
    await client.create(pod("bg-worker", owned_by(owner)))
    await client.delete("v1", "configmaps", "bg", "default")
    assert await client.get_or_none("v1", "configmaps", "bg", "default") is None

    async def dependent_gone() -> bool:
        return await client.get_or_none("v1", "pods", "bg-worker", "default") is None
    await until(dependent_gone)


async def test_bad_propagation_policy_is_refused_and_deletes_nothing(client: ApiClient) -> None:
    await client.create(configmap("keep"))
    with pytest.raises(ApiError) as refused:
        await client.delete("v1", "configmaps", "keep", "default", propagation_policy="Sideways")
    assert refused.value.code == 400
    assert "propagationPolicy" in refused.value.message and "Sideways" in refused.value.message
    with pytest.raises(ApiError) as both:
        await client.request("DELETE", "/api/v1/namespaces/default/configmaps/keep",
                             params={"orphanDependents": "true", "propagationPolicy": "Foreground"})
    assert both.value.code == 400
    assert await client.get_or_none("v1", "configmaps", "keep", "default") is not None


async def test_deprecated_orphan_dependents_query_orphans(client: ApiClient, collector: GarbageCollector) -> None:
    owner = await client.create(configmap("legacy"))
    await client.create(pod("legacy-worker", owned_by(owner)))
    await client.request("DELETE", "/api/v1/namespaces/default/configmaps/legacy", params={"orphanDependents": "true"})

    async def owner_gone() -> bool:
        return await client.get_or_none("v1", "configmaps", "legacy", "default") is None
    await until(owner_gone)
    worker = await client.get("v1", "pods", "legacy-worker", "default")
    assert not worker["metadata"].get("ownerReferences")
