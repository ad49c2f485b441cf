"""The API server over real HTTP (aiohttp client), in-process on a free port, with real SQLite."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from corral.api.kinds import core_kinds
from corral.api.meta import CorralObject, StrictModel
from corral.api.registry import Registry, ResourceType
from corral.apiserver.server import RunningServer
from corral.testing.apiserver import running_apiserver

POD = "/api/v1/namespaces/default/pods"


class WidgetSpec(StrictModel):
    size: int
    color: str | None = None


class Widget(CorralObject):
    spec: WidgetSpec
    status: dict[str, Any] | None = None


def registry() -> Registry:
    widget = ResourceType(group="test.corral.dev", version="v1alpha1", kind="Widget", plural="widgets",
                          namespaced=True, model=Widget, strict=True)
    return Registry([*core_kinds(), widget])


class Client:
    def __init__(self, server: RunningServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def call(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                   headers: dict[str, str] | None = None, raw: bytes | None = None, auth: bool = True) -> tuple[int, Any]:
        all_headers = {"Content-Type": content_type, **(headers or {})}
        if auth:
            all_headers["Authorization"] = f"Bearer {self.server.token}"
        data: Any = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None and len(data) > 1024 * 1024:
            data = io.BytesIO(data)
        async with self.session.request(method, self.server.url + path, data=data, headers=all_headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with running_apiserver(tmp_path, tls=False, registry=registry(), history=64, bookmark_interval=0.3) as server, \
            aiohttp.ClientSession() as session:
        yield Client(server, session)


def pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec}}


async def test_health_and_version_need_no_token_but_resources_do(client: Client) -> None:
    for path in ("/healthz", "/readyz", "/livez", "/version"):
        status, _ = await client.call("GET", path, auth=False)
        assert status == 200, path
    status, body = await client.call("GET", POD, auth=False)
    assert status == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"
    status, body = await client.call("GET", POD, headers={"Authorization": "Bearer wrong"}, auth=False)
    assert status == 401


async def test_discovery_with_and_without_trailing_slash(client: Client) -> None:
    for path in ("/api", "/api/", "/api/v1", "/api/v1/", "/apis", "/apis/", "/apis/coordination.k8s.io/v1/"):
        status, body = await client.call("GET", path)
        assert status == 200, (path, body)
    _, body = await client.call("GET", "/api/v1")
    names = {r["name"] for r in body["resources"]}
    assert {"pods", "pods/status", "pods/binding", "pods/log", "nodes", "namespaces", "events", "configmaps",
            "secrets", "services"} <= names
    _, groups = await client.call("GET", "/apis")
    assert {g["name"] for g in groups["groups"]} >= {"coordination.k8s.io", "scheduling.k8s.io", "test.corral.dev"}


async def test_default_namespaces_and_scheduler_name(client: Client) -> None:
    _, namespaces = await client.call("GET", "/api/v1/namespaces")
    assert {"default", "kube-system"} <= {n["metadata"]["name"] for n in namespaces["items"]}
    status, created = await client.call("POST", POD, pod("a"))
    assert status == 201
    assert created["spec"]["schedulerName"] == "corral"
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    assert created["status"]["phase"] == "Pending"


async def test_create_get_list_selectors_and_paging(client: Client) -> None:
    for i in range(5):
        status, _ = await client.call("POST", POD, pod(f"p{i}", {"app": "web" if i % 2 else "db", "tier": str(i)}))
        assert status == 201
    status, body = await client.call("POST", POD, {**pod("x"), "metadata": {"generateName": "gen-"}})
    assert status == 201 and body["metadata"]["name"].startswith("gen-")
    _, got = await client.call("GET", f"{POD}/p1")
    assert got["metadata"]["labels"]["app"] == "web"
    _, listed = await client.call("GET", f"{POD}?labelSelector=app%3Dweb")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["p1", "p3"]
    _, listed = await client.call("GET", f"{POD}?labelSelector=tier%20in%20(0,4),app!%3Dweb")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["p0", "p4"]
    _, listed = await client.call("GET", f"{POD}?labelSelector=!tier")
    assert [p["metadata"]["name"] for p in listed["items"]] == [body["metadata"]["name"]]
    _, listed = await client.call("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dp2")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["p2"]
    _, listed = await client.call("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3D,metadata.namespace%3Ddefault")
    assert len(listed["items"]) == 6
    names: list[str] = []
    token = ""
    while True:
        _, page = await client.call("GET", f"{POD}?limit=2" + (f"&continue={token}" if token else ""))
        names += [p["metadata"]["name"] for p in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert len(names) == 6 and names == sorted(names)
    status, body = await client.call("GET", f"{POD}?labelSelector=in%20in%20in")
    assert status == 400 and body["kind"] == "Status"


async def test_update_conflict_generation_and_noop(client: Client) -> None:
    _, created = await client.call("POST", POD, pod("a"))
    stale = json.loads(json.dumps(created))
    created["metadata"]["labels"] = {"changed": "yes"}
    status, updated = await client.call("PUT", f"{POD}/a", created)
    assert status == 200 and updated["metadata"]["generation"] == 1
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    stale["spec"]["containers"][0]["image"] = "other"
    status, body = await client.call("PUT", f"{POD}/a", stale)
    assert status == 409 and body["reason"] == "Conflict"
    updated["spec"]["containers"][0]["image"] = "other"
    _, bumped = await client.call("PUT", f"{POD}/a", updated)
    assert bumped["metadata"]["generation"] == 2
    status, same = await client.call("PUT", f"{POD}/a", bumped)
    assert status == 200 and same["metadata"]["resourceVersion"] == bumped["metadata"]["resourceVersion"]
    # the main resource ignores status; /status changes only status
    bumped["status"] = {"phase": "Running"}
    _, ignored = await client.call("PUT", f"{POD}/a", bumped)
    assert ignored["status"]["phase"] == "Pending"
    status, st = await client.call("PATCH", f"{POD}/a/status", {"status": {"phase": "Running"}, "spec": {"x": 1}},
                                   content_type="application/merge-patch+json")
    assert status == 200 and st["status"]["phase"] == "Running" and "x" not in st["spec"]
    assert st["metadata"]["generation"] == 2


async def test_patch_types(client: Client) -> None:
    base = pod("a")
    base["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    await client.call("POST", POD, base)
    status, merged = await client.call("PATCH", f"{POD}/a", {"metadata": {"labels": {"m": "1"}}},
                                       content_type="application/merge-patch+json")
    assert status == 200 and merged["metadata"]["labels"] == {"m": "1"}
    status, patched = await client.call("PATCH", f"{POD}/a", [{"op": "replace", "path": "/metadata/labels/m", "value": "2"}],
                                        content_type="application/json-patch+json")
    assert status == 200 and patched["metadata"]["labels"]["m"] == "2"
    strategic = {"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]},
                                         {"name": "side", "image": "busybox"}]}}
    status, sm = await client.call("PATCH", f"{POD}/a", strategic, content_type="application/strategic-merge-patch+json")
    assert status == 200, sm
    main, side = sm["spec"]["containers"]
    assert main["image"] == "busybox" and side["name"] == "side"
    assert main["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    status, deleted = await client.call(
        "PATCH", f"{POD}/a", {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}},
        content_type="application/strategic-merge-patch+json")
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["main"]
    status, body = await client.call("PATCH", f"{POD}/a", [{"op": "test", "path": "/metadata/name", "value": "zz"}],
                                     content_type="application/json-patch+json")
    assert status == 422 and body["kind"] == "Status"


async def test_server_side_apply_owns_and_removes_fields(client: Client) -> None:
    path = "/api/v1/namespaces/default/configmaps/cfg"
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}}
    status, body = await client.call("PATCH", f"{path}?fieldManager=one", applied, content_type="application/apply-patch+yaml")
    assert status == 201 and body["data"] == {"a": "1", "b": "2"}
    applied["data"] = {"a": "1"}
    status, body = await client.call("PATCH", f"{path}?fieldManager=one", applied, content_type="application/apply-patch+yaml")
    assert status == 200 and body["data"] == {"a": "1"}
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "other"}}
    status, body = await client.call("PATCH", f"{path}?fieldManager=two", other, content_type="application/apply-patch+yaml")
    assert status == 409 and "one" in body["message"]
    status, body = await client.call("PATCH", f"{path}?fieldManager=two&force=true", other,
                                     content_type="application/apply-patch+yaml")
    assert status == 200 and body["data"] == {"a": "other"}
    status, body = await client.call("PATCH", path, other, content_type="application/apply-patch+yaml")
    assert status == 400 and "fieldManager" in body["message"]


async def test_binding_and_graceful_pod_deletion_contract(client: Client) -> None:
    await client.call("POST", POD, pod("a"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "a", "annotations": {"corral.dev/gpu-devices": "0"}},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}
    status, _ = await client.call("POST", f"{POD}/a/binding", binding)
    assert status == 201
    _, bound = await client.call("GET", f"{POD}/a")
    assert bound["spec"]["nodeName"] == "n1"
    assert bound["metadata"]["annotations"]["corral.dev/gpu-devices"] == "0"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in bound["status"]["conditions"])
    status, _body = await client.call("POST", f"{POD}/a/binding", binding)
    assert status == 409
    # bound pod: graceful, stays with deletionTimestamp until the agent deletes with grace 0
    status, deleting = await client.call("DELETE", f"{POD}/a")
    assert status == 200 and deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["deletionGracePeriodSeconds"] == 30
    _, still = await client.call("GET", f"{POD}/a")
    assert still["metadata"]["deletionTimestamp"]
    status, _ = await client.call("DELETE", f"{POD}/a?gracePeriodSeconds=0")
    assert status == 200
    status, _ = await client.call("GET", f"{POD}/a")
    assert status == 404
    # unbound pod: immediate
    await client.call("POST", POD, pod("b"))
    await client.call("DELETE", f"{POD}/b")
    status, _ = await client.call("GET", f"{POD}/b")
    assert status == 404


async def test_finalizers_hold_deletion(client: Client) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["test/hold"]}, "data": {}}
    path = "/api/v1/namespaces/default/configmaps"
    await client.call("POST", path, cm)
    status, body = await client.call("DELETE", f"{path}/c")
    assert status == 200 and body["metadata"]["deletionTimestamp"]
    _, body = await client.call("GET", f"{path}/c")
    status, _ = await client.call("PATCH", f"{path}/c", {"metadata": {"finalizers": None}},
                                  content_type="application/merge-patch+json")
    assert status == 200
    status, _ = await client.call("GET", f"{path}/c")
    assert status == 404


async def test_namespace_deletion_removes_contents(client: Client) -> None:
    await client.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    await client.call("POST", "/api/v1/namespaces/team/pods", pod("a"))
    status, _ = await client.call("DELETE", "/api/v1/namespaces/team")
    assert status == 200
    status, _ = await client.call("GET", "/api/v1/namespaces/team")
    assert status == 404
    status, body = await client.call("POST", "/api/v1/namespaces/team/pods", pod("b"))
    assert status == 404 and "team" in body["message"]
    status, body = await client.call("DELETE", "/api/v1/namespaces/default")
    assert status == 403


@pytest.mark.parametrize(
    ("path", "body", "raw", "code", "words"),
    [
        (POD, None, b"{not json", 400, "not valid JSON"),
        (POD, {"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": []}}, None, 400,
         "apps/v1"),
        (POD, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}}, None, 400, "Service"),
        (POD, pod("Bad_Name"), None, 422, "metadata.name"),
        (POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": [{"image": "x"}]}},
         None, 422, "spec.containers[0].name"),
        ("/apis/test.corral.dev/v1alpha1/namespaces/default/widgets",
         {"apiVersion": "test.corral.dev/v1alpha1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1, "colour": "x"}},
         None, 400, 'strict decoding error: unknown field "spec.colour"'),
        ("/api/v1/namespaces/default/gizmos", {"metadata": {"name": "a"}}, None, 404, "gizmos"),
        (POD, None, b"[1, 2]", 400, "Pod object"),
    ],
)
async def test_bad_input_is_a_status_naming_the_problem_and_changes_nothing(
    client: Client, path: str, body: Any, raw: bytes | None, code: int, words: str
) -> None:
    _, before = await client.call("GET", "/api/v1/namespaces")
    status, answer = await client.call("POST", path, body, raw=raw)
    assert status == code, answer
    assert answer["kind"] == "Status" and answer["code"] == code
    assert words in answer["message"], answer["message"]
    _, after = await client.call("GET", "/api/v1/namespaces")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_body_over_3_mib_is_rejected(client: Client) -> None:
    big = pod("big")
    big["metadata"]["annotations"] = {"x": "y" * (3 * 1024 * 1024 + 10)}
    status, body = await client.call("POST", POD, big)
    assert status == 413 and body["reason"] == "RequestEntityTooLarge" and "3 MiB" in body["message"]


async def test_strict_kind_field_validation_modes(client: Client) -> None:
    path = "/apis/test.corral.dev/v1alpha1/namespaces/default/widgets"
    widget = {"apiVersion": "test.corral.dev/v1alpha1", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": 1, "colour": "x"}}
    async with client.session.post(client.server.url + path + "?fieldValidation=Warn", json=widget,
                                   headers={"Authorization": f"Bearer {client.server.token}"}) as response:
        assert response.status == 201
        assert "colour" in response.headers.get("Warning", "")
        assert "colour" not in (await response.json())["spec"]
    status, _ = await client.call("POST", path + "?fieldValidation=Ignore", {**widget, "metadata": {"name": "w2"}})
    assert status == 201
    status, _body = await client.call("POST", path + "?fieldValidation=Bogus", {**widget, "metadata": {"name": "w3"}})
    assert status == 400


async def read_events(response: aiohttp.ClientResponse, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    events = []
    async with asyncio.timeout(timeout):
        while len(events) < count:
            line = await response.content.readline()
            if not line:
                break
            events.append(json.loads(line))
    return events


async def test_watch_from_version_sees_every_change_once_in_order(client: Client) -> None:
    _, first = await client.call("POST", POD, pod("w0"))
    start = first["metadata"]["resourceVersion"]
    for i in range(1, 6):
        await client.call("POST", POD, pod(f"w{i}"))
    await client.call("DELETE", f"{POD}/w1")
    headers = {"Authorization": f"Bearer {client.server.token}"}
    async with client.session.get(f"{client.server.url}{POD}?watch=True&resourceVersion={start}", headers=headers) as response:
        assert response.status == 200
        await client.call("PATCH", f"{POD}/w2", {"metadata": {"labels": {"late": "1"}}}, content_type="application/merge-patch+json")
        events = await read_events(response, 7)
    kinds = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert kinds == [("ADDED", "w1"), ("ADDED", "w2"), ("ADDED", "w3"), ("ADDED", "w4"), ("ADDED", "w5"),
                     ("DELETED", "w1"), ("MODIFIED", "w2")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


async def test_watch_without_version_lists_first_and_filters_by_label(client: Client) -> None:
    await client.call("POST", POD, pod("a", {"app": "x"}))
    await client.call("POST", POD, pod("b", {"app": "y"}))
    headers = {"Authorization": f"Bearer {client.server.token}"}
    async with client.session.get(f"{client.server.url}{POD}?watch=1&labelSelector=app%3Dx", headers=headers) as response:
        initial = await read_events(response, 1)
        await client.call("PATCH", f"{POD}/b", {"metadata": {"labels": {"app": "x"}}}, content_type="application/merge-patch+json")
        await client.call("PATCH", f"{POD}/a", {"metadata": {"labels": {"app": "z"}}}, content_type="application/merge-patch+json")
        later = await read_events(response, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in initial + later] == [
        ("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]


async def test_watch_too_old_gets_410_and_bookmarks_and_timeout(client: Client) -> None:
    for i in range(80):  # history is 64 events in this fixture
        await client.call("POST", "/api/v1/namespaces/default/configmaps",
                          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
    headers = {"Authorization": f"Bearer {client.server.token}"}
    async with client.session.get(f"{client.server.url}{POD}?watch=true&resourceVersion=2", headers=headers) as response:
        (event,) = await read_events(response, 1)
    assert event["type"] == "ERROR" and event["object"]["code"] == 410
    _, listed = await client.call("GET", POD)
    rv = listed["metadata"]["resourceVersion"]
    url = f"{client.server.url}{POD}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1"
    async with client.session.get(url, headers=headers) as response:
        events = await read_events(response, 10, timeout=5)
    assert events and all(e["type"] == "BOOKMARK" for e in events)
    assert events[0]["object"]["metadata"]["resourceVersion"] == rv


async def test_watch_parses_bool_like_go(client: Client) -> None:
    status, body = await client.call("GET", f"{POD}?watch=maybe")
    assert status == 400 and "watch" in body["message"]


async def test_metrics_are_prometheus_text(client: Client) -> None:
    await client.call("GET", POD)
    status, text = await client.call("GET", "/metrics")
    assert status == 200 and "apiserver_request_total" in text and "apiserver_storage_objects" in text


async def test_pod_log_from_data_dir(client: Client) -> None:
    await client.call("POST", POD, pod("a"))
    log = client.server.server.config.data_dir / "logs" / "default" / "a" / "main.log"  # type: ignore[operator]
    log.parent.mkdir(parents=True)
    log.write_text("one\ntwo\nthree\n")
    status, text = await client.call("GET", f"{POD}/a/log")
    assert status == 200 and text == "one\ntwo\nthree\n"
    status, text = await client.call("GET", f"{POD}/a/log?tailLines=1")
    assert text == "three\n"
    status, text = await client.call("GET", f"{POD}/a/log?limitBytes=5")
    assert text == "one\nt"
    status, text = await client.call("GET", f"{POD}/a/log?tailLines=2&limitBytes=6")
    assert text == "two\nth"
    with log.open("a") as handle:
        handle.write("unfinished")
    status, text = await client.call("GET", f"{POD}/a/log?tailLines=2")
    assert text == "three\nunfinished"
    status, _body = await client.call("GET", f"{POD}/a/log?container=nope")
    assert status == 400


async def test_bookmarks_arrive_while_other_resources_keep_changing(client: Client) -> None:
    _, listed = await client.call("GET", POD)
    url = f"{client.server.url}{POD}?watch=true&resourceVersion={listed['metadata']['resourceVersion']}&allowWatchBookmarks=true"
    headers = {"Authorization": f"Bearer {client.server.token}"}
    async with client.session.get(url, headers=headers) as response:

        async def churn() -> None:
            for i in range(40):
                await client.call("POST", "/api/v1/namespaces/default/configmaps",
                                  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"churn{i}"}})
                await asyncio.sleep(0.02)

        task = asyncio.ensure_future(churn())
        (event,) = await read_events(response, 1)
        await task
    assert event["type"] == "BOOKMARK"
    assert int(event["object"]["metadata"]["resourceVersion"]) > int(listed["metadata"]["resourceVersion"])


async def test_continue_pages_show_the_first_pages_snapshot(client: Client) -> None:
    for name in ("c1", "c2", "c3", "c4"):
        await client.call("POST", POD, pod(name))
    _, first = await client.call("GET", f"{POD}?limit=2")
    assert [p["metadata"]["name"] for p in first["items"]] == ["c1", "c2"]
    snapshot_rv = first["metadata"]["resourceVersion"]
    _, c3 = await client.call("GET", f"{POD}/c3")
    # Changes after the first page: none of them may show on the next pages.
    changed = json.loads(json.dumps(c3))
    changed["metadata"]["labels"] = {"late": "yes"}
    await client.call("PUT", f"{POD}/c3", changed)
    await client.call("DELETE", f"{POD}/c4")
    await client.call("POST", POD, pod("c5"))
    _, second = await client.call("GET", f"{POD}?limit=2&continue={first['metadata']['continue']}")
    assert [p["metadata"]["name"] for p in second["items"]] == ["c3", "c4"]
    assert second["items"][0]["metadata"]["resourceVersion"] == c3["metadata"]["resourceVersion"]
    assert "labels" not in second["items"][0]["metadata"] or "late" not in second["items"][0]["metadata"]["labels"]
    assert second["metadata"]["resourceVersion"] == snapshot_rv
    assert not second["metadata"].get("continue"), "c5 came after the snapshot"
    _, fresh = await client.call("GET", POD)
    assert [p["metadata"]["name"] for p in fresh["items"]] == ["c1", "c2", "c3", "c5"]
    status, body = await client.call("GET", f"{POD}?limit=2&continue=bm90LWpzb24=")
    assert status == 400 and "continue" in body["message"]


async def test_a_continue_older_than_the_history_is_gone(client: Client) -> None:
    for name in ("g1", "g2", "g3"):
        await client.call("POST", POD, pod(name))
    _, first = await client.call("GET", f"{POD}?limit=1")
    for i in range(70):  # history is 64 events in this fixture
        await client.call("POST", "/api/v1/namespaces/default/configmaps",
                          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"churn-{i}"}})
    status, body = await client.call("GET", f"{POD}?limit=1&continue={first['metadata']['continue']}")
    assert status == 410 and body["reason"] == "Expired" and "continue" in body["message"]
