"""Watch-list (``sendInitialEvents=true&resourceVersionMatch=NotOlderThan``) and list/watch option checks, over real HTTP.

Each request goes to a real server; the ones without ``watch`` are served by the lean front,
the watches by aiohttp (the lean front hands them over), so both fronts are covered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from corral.testing.apiserver import running_apiserver
from tests.integration.test_apiserver_http import POD, Client, pod, read_events

WATCH_LIST = "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    async with running_apiserver(tmp_path, tls=False, history=64, bookmark_interval=30) as server, \
            aiohttp.ClientSession() as session:
        yield Client(server, session)


def names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


async def watch_events(client: Client, query: str, count: int, during: Any = None) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {client.server.token}"}
    async with client.session.get(f"{client.server.url}{POD}?{query}", headers=headers) as response:
        assert response.status == 200, await response.text()
        events = await read_events(response, count)
        if during is not None:
            await during()
            events += await read_events(response, 1)
    return events


@pytest.mark.parametrize("rv", ["", "0", "current"])
async def test_watch_list_sends_matching_objects_then_the_initial_events_end_bookmark(client: Client, rv: str) -> None:
    await client.call("POST", POD, pod("a", {"app": "x"}))
    await client.call("POST", POD, pod("b", {"app": "y"}))
    _, listed = await client.call("GET", POD)
    snapshot = listed["metadata"]["resourceVersion"]
    version = snapshot if rv == "current" else rv

    async def change() -> None:
        await client.call("POST", POD, pod("c", {"app": "x"}))

    events = await watch_events(client, f"{WATCH_LIST}&resourceVersion={version}&labelSelector=app%3Dx", 2, change)
    assert names(events) == [("ADDED", "a"), ("BOOKMARK", ""), ("ADDED", "c")]
    bookmark = events[1]["object"]
    assert bookmark["kind"] == "Pod" and bookmark["apiVersion"] == "v1"
    assert bookmark["metadata"]["resourceVersion"] == snapshot
    assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_watch_list_with_a_field_selector_sends_initial_events(client: Client) -> None:
    """``kubectl wait`` and ``kubectl delete`` watch one pod by ``metadata.name``."""
    await client.call("POST", POD, pod("a"))
    await client.call("POST", POD, pod("b"))
    events = await watch_events(client, f"{WATCH_LIST}&fieldSelector=metadata.name%3Db", 2)
    assert names(events) == [("ADDED", "b"), ("BOOKMARK", "")]
    events = await watch_events(client, f"{WATCH_LIST}&fieldSelector=metadata.name%3Dnone", 1)
    assert names(events) == [("BOOKMARK", "")]


async def test_watch_list_on_an_empty_collection_sends_only_the_bookmark(client: Client) -> None:
    events = await watch_events(client, WATCH_LIST, 1)
    assert events[0]["type"] == "BOOKMARK"
    assert events[0]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"


async def test_plain_watches_send_no_initial_events_end_bookmark(client: Client) -> None:
    """Legacy watch from ``resourceVersion=""``: the objects, no closing bookmark (none was asked for)."""
    await client.call("POST", POD, pod("a"))

    async def change() -> None:
        await client.call("POST", POD, pod("b"))

    events = await watch_events(client, "watch=1&allowWatchBookmarks=true", 1, change)
    assert names(events) == [("ADDED", "a"), ("ADDED", "b")]
    events = await watch_events(client, "watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan", 0,
                                lambda: client.call("POST", POD, pod("c")))
    assert names(events) == [("ADDED", "c")]


async def test_watch_list_for_a_future_resource_version_is_too_large(client: Client) -> None:
    status, body = await client.call("GET", f"{POD}?{WATCH_LIST}&resourceVersion=999999")
    assert status == 504 and body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"


@pytest.mark.parametrize(("query", "field", "problem"), [
    ("watch=1&sendInitialEvents=true", "resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch"),
    ("watch=1&sendInitialEvents=true&resourceVersionMatch=Exact", "resourceVersionMatch", "Unsupported value"),
    ("watch=1&resourceVersionMatch=NotOlderThan", "resourceVersionMatch", "unless sendInitialEvents is provided"),
    ("sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0", "sendInitialEvents",
     "forbidden for list"),
    ("resourceVersionMatch=NotOlderThan", "resourceVersionMatch", "unless resourceVersion is provided"),
    ("resourceVersionMatch=Exact&resourceVersion=0", "resourceVersionMatch", "forbidden for resourceVersion"),
    ("resourceVersionMatch=Newest&resourceVersion=1", "resourceVersionMatch", "Unsupported value"),
])
async def test_bad_list_options_get_422_naming_the_field(client: Client, query: str, field: str, problem: str) -> None:
    status, body = await client.call("GET", f"{POD}?{query}")
    assert status == 422 and body["kind"] == "Status" and body["reason"] == "Invalid", body
    assert body["details"]["kind"] == "ListOptions" and body["details"]["group"] == "meta.k8s.io"
    assert any(c["field"] == field and problem in c["message"] for c in body["details"]["causes"]), body
    assert field in body["message"]


async def test_list_with_resource_version_match(client: Client) -> None:
    _, first = await client.call("POST", POD, pod("a"))
    at = first["metadata"]["resourceVersion"]
    await client.call("POST", POD, pod("b"))
    status, exact = await client.call("GET", f"{POD}?resourceVersionMatch=Exact&resourceVersion={at}")
    assert status == 200 and [p["metadata"]["name"] for p in exact["items"]] == ["a"]
    assert exact["metadata"]["resourceVersion"] == at
    status, newer = await client.call("GET", f"{POD}?resourceVersionMatch=NotOlderThan&resourceVersion={at}")
    assert status == 200 and [p["metadata"]["name"] for p in newer["items"]] == ["a", "b"]
    status, body = await client.call("GET", f"{POD}?resourceVersionMatch=NotOlderThan&resourceVersion=999999")
    assert status == 504 and body["reason"] == "Timeout"


async def test_field_selectors_on_name_and_namespace_across_paths(client: Client) -> None:
    """Names found by key (no object decoded) still give exactly what the full selector gives."""
    await client.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    await client.call("POST", POD, pod("a"))
    await client.call("POST", POD, pod("b"))
    await client.call("POST", "/api/v1/namespaces/team/pods", pod("a"))
    cases = [
        ("/api/v1/pods?fieldSelector=metadata.name%3Da", [("default", "a"), ("team", "a")]),
        ("/api/v1/pods?fieldSelector=metadata.name%3Da,metadata.namespace%3Dteam", [("team", "a")]),
        ("/api/v1/pods?fieldSelector=metadata.namespace%3Ddefault", [("default", "a"), ("default", "b")]),
        ("/api/v1/pods?fieldSelector=metadata.name%21%3Da", [("default", "b")]),
        (f"{POD}?fieldSelector=metadata.name%3Da,metadata.namespace%3Dteam", []),
        ("/api/v1/namespaces?fieldSelector=metadata.name%3Dteam", [("", "team")]),
    ]
    for path, expected in cases:
        status, listed = await client.call("GET", path)
        assert status == 200, listed
        assert [(i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in listed["items"]] == expected, path
        headers = {"Authorization": f"Bearer {client.server.token}"}
        async with client.session.get(f"{client.server.url}{path}&{WATCH_LIST}", headers=headers) as response:
            events = await read_events(response, len(expected) + 1)
        assert [(e["object"]["metadata"].get("namespace", ""), e["object"]["metadata"]["name"])
                for e in events[:-1]] == expected, path
        assert events[-1]["type"] == "BOOKMARK"
