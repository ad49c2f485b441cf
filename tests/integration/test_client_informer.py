"""The client, informers, the controller runtime and the garbage collector against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.apiserver.server import RunningServer, start_server
from corral.client import ApiClient, ApiError, Informer, InformerFactory
from corral.controllers.gc import GarbageCollector
from corral.controllers.runtime import Controller, Manager, Result


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(tmp_path / "api", tls=False, history=50)
    yield running
    await running.stop()


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[ApiClient]:
    api = ApiClient(server.url, server.token)
    yield api
    await api.close()


def pod(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}


async def eventually(check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_crud_conflict_and_not_found(client: ApiClient) -> None:
    created = await client.create(pod("a", app="x"))
    assert created["metadata"]["uid"]
    stale = dict(created)
    fresh = await client.patch("v1", "pods", "a", {"metadata": {"labels": {"app": "y"}}}, namespace="default")
    assert fresh["metadata"]["labels"]["app"] == "y"
    with pytest.raises(ApiError) as conflict:
        await client.update(stale)
    assert conflict.value.conflict
    page = await client.list("v1", "pods", "default", label_selector="app=y")
    assert [p["metadata"]["name"] for p in page["items"]] == ["a"]
    await client.delete("v1", "pods", "a", "default")
    assert await client.get_or_none("v1", "pods", "a", "default") is None
    with pytest.raises(ApiError) as missing:
        await client.get("v1", "pods", "a", "default")
    assert missing.value.not_found and "a" in missing.value.message


async def test_list_all_pages_through_everything(client: ApiClient) -> None:
    for index in range(7):
        await client.create(pod(f"p{index}"))
    items, resource_version = await client.list_all("v1", "pods", "default", page_size=3)
    assert sorted(p["metadata"]["name"] for p in items) == [f"p{i}" for i in range(7)]
    assert int(resource_version) > 0


async def test_informer_sees_adds_updates_deletes_and_indexes(client: ApiClient) -> None:
    seen: list[tuple[str, str]] = []
    informer = Informer(client, "v1", "pods", "default")
    informer.add_indexer("app", lambda obj: [obj["metadata"].get("labels", {}).get("app", "")])
    informer.add_handler(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                         on_update=lambda _o, n: seen.append(("update", n["metadata"]["name"])),
                         on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
    await client.create(pod("before", app="web"))
    await informer.start()
    await informer.wait_synced(5)
    try:
        await client.create(pod("after", app="web"))
        await client.patch("v1", "pods", "before", {"metadata": {"labels": {"app": "db"}}}, namespace="default")
        await client.delete("v1", "pods", "after", "default")
        await eventually(lambda: ("delete", "after") in seen)
        assert seen == [("add", "before"), ("add", "after"), ("update", "before"), ("delete", "after")]
        assert [o["metadata"]["name"] for o in informer.by_index("app", "db")] == ["before"]
        assert informer.by_index("app", "web") == []
        assert informer.relists == 1  # steady state never re-lists
    finally:
        await informer.stop()


async def test_informer_relists_after_history_expired_without_missing_a_delete(
    server: RunningServer, client: ApiClient
) -> None:
    informer = Informer(client, "v1", "pods", "default")
    deleted: list[str] = []
    informer.add_handler(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
    await client.create(pod("victim"))
    await informer.start()
    await informer.wait_synced(5)
    await informer.stop()  # the informer is away while history moves past its version
    await client.delete("v1", "pods", "victim", "default")
    for index in range(80):  # history keeps 50 events
        await client.create(pod(f"filler{index}"))
    await informer.start()
    try:
        await eventually(lambda: "victim" in deleted and len(informer) == 80)
        assert informer.relists == 2
    finally:
        await informer.stop()


class CountingReconciler:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.fail_once = {"default/flaky"}

    async def reconcile(self, key: str) -> Result | None:
        self.calls[key] = self.calls.get(key, 0) + 1
        if key in self.fail_once:
            self.fail_once.discard(key)
            raise RuntimeError("transient")
        return None


async def test_controller_reconciles_each_key_and_retries_errors(client: ApiClient) -> None:
    factory = InformerFactory(client)
    reconciler = CountingReconciler()
    controller = Controller("counter", reconciler, workers=2)
    controller.watch(factory.informer("v1", "pods", "default"))
    manager = Manager(factory)
    manager.add(controller)
    await client.create(pod("steady"))
    await manager.start(sync_timeout=5)
    try:
        await client.create(pod("flaky"))
        await eventually(lambda: reconciler.calls.get("default/flaky", 0) >= 2 and "default/steady" in reconciler.calls)
        assert controller.errors == 1
    finally:
        await manager.stop()


async def test_garbage_collector_deletes_dependents_of_a_deleted_owner(client: ApiClient) -> None:
    owner = await client.create(pod("owner"))
    reference = {"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": owner["metadata"]["uid"],
                 "controller": True}
    child = pod("child")
    child["metadata"]["ownerReferences"] = [reference]
    await client.create(child)
    unrelated = pod("unrelated")
    unrelated["metadata"]["ownerReferences"] = [{**reference, "kind": "ReplicaSet", "apiVersion": "apps/v1"}]
    await client.create(unrelated)
    factory = InformerFactory(client)
    collector = GarbageCollector(client, factory, resources=[("v1", "Pod", "pods")])
    manager = Manager(factory)
    manager.add(collector.controller)
    await manager.start(sync_timeout=5)
    try:
        await asyncio.sleep(0.2)
        assert await client.get_or_none("v1", "pods", "child", "default") is not None  # owner still there
        await client.delete("v1", "pods", "owner", "default")
        for _ in range(250):
            if await client.get_or_none("v1", "pods", "child", "default") is None:
                break
            await asyncio.sleep(0.02)
        assert await client.get_or_none("v1", "pods", "child", "default") is None
        assert await client.get_or_none("v1", "pods", "unrelated", "default") is not None  # unwatched owner kind
    finally:
        await manager.stop()


async def test_list_all_falls_back_to_one_full_list_when_its_snapshot_expires(server: RunningServer) -> None:
    class ChurningClient(ApiClient):
        """Writes 60 objects between the first and second page (the fixture's history keeps 50)."""

        pages = 0

        async def list(self, *args, **kwargs):  # type: ignore[no-untyped-def,override]
            result = await super().list(*args, **kwargs)
            self.pages += 1
            if self.pages == 1:
                for i in range(60):
                    await self.create(pod(f"late-{i}"))
            return result

    api = ChurningClient(server.url, server.token)
    try:
        for i in range(6):
            await api.create(pod(f"early-{i}"))
        items, rv = await api.list_all("v1", "pods", "default", page_size=2)
        names = {item["metadata"]["name"] for item in items}
        assert len(names) == 66 and len(items) == 66, "one consistent full list, no duplicates"
        assert int(rv) >= 66
    finally:
        await api.close()
