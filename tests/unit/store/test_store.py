"""The store on real SQLite: check-and-set, group commit, restart rebuild, watch history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.store import AlreadyExistsError, ConflictError, ExpiredError, NotFoundError, Store


def obj(name: str, namespace: str = "default", **data: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


async def test_create_update_delete_and_versions(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    await store.open()
    created = await store.create("configmaps", obj("a", x="1")).wait()
    assert created.rv == 1 and created.obj["metadata"]["resourceVersion"] == "1"
    with pytest.raises(AlreadyExistsError):
        store.create("configmaps", obj("a"))
    updated = await store.update("configmaps", obj("a", x="2"), expected_rv=1).wait()
    assert updated.rv == 2
    with pytest.raises(ConflictError):
        store.update("configmaps", obj("a", x="3"), expected_rv=1)
    with pytest.raises(NotFoundError):
        store.update("configmaps", obj("zz"))
    deleted = await store.delete("configmaps", "default", "a").wait()
    assert deleted.rv == 3 and store.get("configmaps", "default", "a") is None
    assert [e.type for e in store.events_since(0)] == ["ADDED", "MODIFIED", "DELETED"]
    await store.close()


async def test_concurrent_writes_share_commits_and_survive_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    await store.open()
    writes = [store.create("configmaps", obj(f"o{i}", n=str(i))) for i in range(500)]
    await asyncio.gather(*(w.wait() for w in writes))
    assert store.batches < 500  # group commit
    store.delete("configmaps", "default", "o7")
    await store.barrier()
    await store.close()
    again = Store(tmp_path / "db")
    await again.open()
    assert again.rv == 501 and again.count("configmaps") == 499
    assert again.get("configmaps", "default", "o8").obj["data"] == {"n": "8"}  # type: ignore[union-attr]
    assert [e.name for e in again.entries("configmaps", "default")][:3] == ["o0", "o1", "o10"]
    with pytest.raises(ExpiredError):  # history starts empty after a restart
        again.watcher(10)
    assert again.watcher(501).cursor == 501
    await again.close()


async def test_watch_history_expires(tmp_path: Path) -> None:
    store = Store(None, history=16)
    await store.open()
    for i in range(40):
        store.create("configmaps", obj(f"o{i}"))
    with pytest.raises(ExpiredError):
        store.events_since(3)
    events = store.events_since(30)
    assert [e.rv for e in events] == list(range(31, 41))
    watcher = store.watcher(38)
    assert [e.rv for e in watcher.take()] == [39, 40]
    store.create("configmaps", obj("late"))
    assert await watcher.wait(1.0)
    assert [e.entry.name for e in watcher.take()] == ["late"]
    await store.close()


operations = st.lists(st.tuples(st.sampled_from(["put", "delete"]), st.sampled_from(["a", "b", "c", "d"]),
                                st.sampled_from(["default", "other"]), st.integers(0, 9)), max_size=40)


async def apply_ops(store: Store, ops: list[Any], state: dict[tuple[str, str], str]) -> AsyncIterator[None]:
    """Apply ``ops`` to configmaps, keeping ``state`` = what the store should hold; yields after each write."""
    for op, name, namespace, value in ops:
        if op == "put":
            if (namespace, name) in state:
                write = store.update("configmaps", obj(name, namespace, v=str(value)))
            else:
                write = store.create("configmaps", obj(name, namespace, v=str(value)))
            state[(namespace, name)] = str(value)
        elif (namespace, name) in state:
            write = store.delete("configmaps", namespace, name)
            del state[(namespace, name)]
        else:
            continue
        await write.wait()
        yield None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_restart_rebuilds_exactly_what_was_acknowledged(tmp_path_factory: pytest.TempPathFactory, ops: list[Any]) -> None:
    path = tmp_path_factory.mktemp("store") / "db"

    async def run() -> None:
        store = Store(path)
        await store.open()
        expected: dict[tuple[str, str], str] = {}
        async for _ in apply_ops(store, ops, expected):
            pass
        rv = store.rv
        events = store.events_since(0)
        assert [e.rv for e in events] == list(range(1, rv + 1))
        await store.close()
        again = Store(path)
        await again.open()
        assert again.rv == rv
        assert {(e.namespace, e.name): e.obj["data"]["v"] for e in again.entries("configmaps")} == expected
        await again.close()

    asyncio.run(run())


async def test_push_watchers_get_each_commit_once_and_fall_back_to_pulling(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    await store.open()
    pushed: list[int] = []
    accept = True
    shared_seen: list[dict[Any, bytes]] = []

    def deliver(events: list[Any], shared: dict[Any, bytes]) -> bool:
        shared_seen.append(shared)
        if not accept:
            return False
        pushed.extend(e.rv for e in events)
        return True

    watcher = store.watcher(0, deliver)
    other = store.watcher(0, deliver)
    await store.create("configmaps", obj("a")).wait()
    await asyncio.gather(store.create("configmaps", obj("b")).wait(), store.create("configmaps", obj("c")).wait())
    assert pushed == [1, 1, 2, 3, 2, 3]  # both watchers, each commit once, in order
    assert shared_seen[0] is shared_seen[1]  # one dict per commit, shared by its watchers
    accept = False  # e.g. a full socket: the watcher is woken and pulls instead
    await store.create("configmaps", obj("d")).wait()
    assert await watcher.wait(1.0)
    assert [e.rv for e in watcher.take()] == [4]
    accept = True
    await store.create("configmaps", obj("e")).wait()  # caught up again: pushed
    assert pushed[-1] == 5 and watcher.cursor == 5
    assert [e.rv for e in other.take()] == [4, 5]  # it stayed behind, so it pulls both
    watcher.close()
    other.close()
    await store.close()


@settings(max_examples=40, deadline=None)
@given(ops=operations, history=st.integers(4, 64))
def test_entries_at_any_version_in_history_is_the_state_then(ops: list[Any], history: int) -> None:
    """The state behind every ``continue`` page: what a list at that version showed, or 410."""

    async def run() -> None:
        store = Store(None, history=history)
        await store.open()
        store.create("secrets", obj("unrelated"))  # another resource's events are skipped
        seen: dict[int, dict[str, list[tuple[str, str, str]]]] = {}
        async for _ in apply_ops(store, ops, {}):
            seen[store.rv] = {ns: [(e.namespace, e.name, e.obj["data"]["v"]) for e in store.entries("configmaps", ns)]
                              for ns in ("default", "other", None)}  # type: ignore[misc]
        for rv, expected in seen.items():
            for namespace, entries in expected.items():
                if rv < store.oldest_watchable_rv:
                    with pytest.raises(ExpiredError):
                        store.entries_at("configmaps", namespace, rv)
                    continue
                got = [(e.namespace, e.name, e.obj["data"]["v"]) for e in store.entries_at("configmaps", namespace, rv)]
                assert got == entries, (rv, namespace)
        await store.close()

    asyncio.run(run())
