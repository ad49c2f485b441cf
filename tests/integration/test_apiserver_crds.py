"""CustomResourceDefinitions through the official ``kubernetes`` client: ``ApiextensionsV1Api`` and
``CustomObjectsApi`` against the in-process server (real HTTP, real SQLite)."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from corral.apiserver.server import RunningServer
from corral.testing.apiserver import running_apiserver

T = TypeVar("T")
GROUP = "example.com"

WIDGETS: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": GROUP, "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"],
                  "categories": ["all"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                     "statusReplicasPath": ".status.replicas",
                                                     "labelSelectorPath": ".status.selector"}},
            "additionalPrinterColumns": [{"name": "Size", "type": "string", "jsonPath": ".spec.size"},
                                         {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}],
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "required": ["size"], "properties": {
                    "size": {"type": "string", "enum": ["S", "M", "L"]},
                    "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1}}},
                "status": {"type": "object", "properties": {
                    "replicas": {"type": "integer"}, "selector": {"type": "string"}}}}}},
        }],
    },
}


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


def apis(server: RunningServer) -> tuple[client.ApiextensionsV1Api, client.CustomObjectsApi, client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(server.kubeconfig))
    return client.ApiextensionsV1Api(api_client), client.CustomObjectsApi(api_client), api_client


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": "M", **spec}}


def raw(server: RunningServer, method: str, path: str, body: Any,
        content_type: str = "application/json") -> tuple[int, dict[str, Any], str]:
    """One plain HTTP request: (status, JSON answer, Warning header)."""
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method=method, headers={
        "Authorization": f"Bearer {server.token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read()), response.headers.get("Warning", "")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), ""


def error_body(error: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.value.body)
    return body


async def test_a_created_crd_is_served_at_once_with_every_verb(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server:
        extensions, custom, api_client = apis(server)
        try:
            crd = await blocking(extensions.create_custom_resource_definition, copy.deepcopy(WIDGETS))
            conditions = {c.type: c.status for c in crd.status.conditions}
            assert conditions == {"NamesAccepted": "True", "Established": "True"}
            assert crd.status.stored_versions == ["v1"] and crd.status.accepted_names.kind == "Widget"

            created = await blocking(custom.create_namespaced_custom_object, GROUP, "v1", "default", "widgets",
                                     widget("a"))
            assert created["spec"] == {"size": "M", "replicas": 1}  # defaulted
            assert created["metadata"]["generation"] == 1
            listed = await blocking(custom.list_namespaced_custom_object, GROUP, "v1", "default", "widgets")
            assert [item["metadata"]["name"] for item in listed["items"]] == ["a"]

            # the main resource ignores status; /status ignores everything else; generation follows spec
            patched = await blocking(custom.patch_namespaced_custom_object, GROUP, "v1", "default", "widgets", "a",
                                     {"spec": {"size": "L"}, "status": {"replicas": 9}})
            assert patched["spec"]["size"] == "L" and "status" not in patched
            assert patched["metadata"]["generation"] == 2
            status = await blocking(custom.patch_namespaced_custom_object_status, GROUP, "v1", "default", "widgets",
                                    "a", {"spec": {"size": "S"}, "status": {"replicas": 2, "selector": "app=a"}})
            assert status["spec"]["size"] == "L" and status["status"]["replicas"] == 2
            assert status["metadata"]["generation"] == 2

            scale = await blocking(custom.get_namespaced_custom_object_scale, GROUP, "v1", "default", "widgets", "a")
            assert (scale["kind"], scale["spec"], scale["status"]) == (
                "Scale", {"replicas": 1}, {"replicas": 2, "selector": "app=a"})
            await blocking(custom.patch_namespaced_custom_object_scale, GROUP, "v1", "default", "widgets", "a",
                           {"spec": {"replicas": 5}})
            read = await blocking(custom.get_namespaced_custom_object, GROUP, "v1", "default", "widgets", "a")
            assert read["spec"]["replicas"] == 5

            with pytest.raises(ApiException) as invalid:
                await blocking(custom.create_namespaced_custom_object, GROUP, "v1", "default", "widgets",
                               widget("b", size="XL", replicas=11))
            assert invalid.value.status == 422
            fields = {c["field"] for c in error_body(invalid)["details"]["causes"]}
            assert fields == {"spec.size", "spec.replicas"}
            code, _, _ = await blocking(raw, server, "PATCH", f"/apis/{GROUP}/v1/namespaces/default/widgets/a",
                                        {"spec": {"size": "S"}}, "application/strategic-merge-patch+json")
            assert code == 415

            events: list[tuple[str, str]] = []
            done = threading.Event()

            def run() -> None:
                for event in watch.Watch().stream(custom.list_namespaced_custom_object, GROUP, "v1", "default",
                                                  "widgets", resource_version=read["metadata"]["resourceVersion"],
                                                  timeout_seconds=10):
                    events.append((event["type"], event["object"]["metadata"]["name"]))
                    if len(events) == 2:
                        break
                done.set()

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            await blocking(custom.create_namespaced_custom_object, GROUP, "v1", "default", "widgets", widget("c"))
            await blocking(custom.delete_namespaced_custom_object, GROUP, "v1", "default", "widgets", "c")
            await blocking(done.wait, 10)
            assert events == [("ADDED", "c"), ("DELETED", "c")]
        finally:
            api_client.close()


async def test_unknown_fields_follow_field_validation(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server:
        extensions, _, api_client = apis(server)
        try:
            await blocking(extensions.create_custom_resource_definition, copy.deepcopy(WIDGETS))
            path = f"/apis/{GROUP}/v1/namespaces/default/widgets"
            code, obj, warning = await blocking(raw, server, "POST", path, widget("a", colour="red"))
            assert (code, obj["spec"]) == (201, {"size": "M", "replicas": 1})
            assert "unknown field" in warning and "spec.colour" in warning
            code, status, _ = await blocking(raw, server, "POST", path + "?fieldValidation=Strict", widget("s", colour="red"))
            assert code in (400, 422) and "spec.colour" in status["message"]  # 400 once strict decoding lands
            code, obj, warning = await blocking(raw, server, "POST", path + "?fieldValidation=Ignore",
                                                widget("b", colour="red"))
            assert code == 201 and "colour" not in obj["spec"] and warning == ""
        finally:
            api_client.close()


async def test_deleting_a_crd_deletes_its_objects_and_stops_serving(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server:
        extensions, custom, api_client = apis(server)
        try:
            await blocking(extensions.create_custom_resource_definition, copy.deepcopy(WIDGETS))
            await blocking(custom.create_namespaced_custom_object, GROUP, "v1", "default", "widgets", widget("a"))
            await blocking(extensions.delete_custom_resource_definition, "widgets.example.com")
            with pytest.raises(ApiException) as gone:
                await blocking(custom.list_namespaced_custom_object, GROUP, "v1", "default", "widgets")
            assert gone.value.status == 404
            # created again, the resource starts empty: the old objects went with the CRD
            await blocking(extensions.create_custom_resource_definition, copy.deepcopy(WIDGETS))
            listed = await blocking(custom.list_namespaced_custom_object, GROUP, "v1", "default", "widgets")
            assert listed["items"] == []
        finally:
            api_client.close()


async def test_crds_and_their_objects_survive_a_restart(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server:
        extensions, custom, api_client = apis(server)
        try:
            await blocking(extensions.create_custom_resource_definition, copy.deepcopy(WIDGETS))
            await blocking(custom.create_namespaced_custom_object, GROUP, "v1", "default", "widgets", widget("a"))
        finally:
            api_client.close()
    async with running_apiserver(tmp_path, tls=False) as server:
        _, custom, api_client = apis(server)
        try:
            read = await blocking(custom.get_namespaced_custom_object, GROUP, "v1", "default", "widgets", "a")
            assert read["spec"] == {"size": "M", "replicas": 1}
        finally:
            api_client.close()


async def test_multiple_versions_store_in_the_storage_version(tmp_path: Path) -> None:
    crd = copy.deepcopy(WIDGETS)
    v1 = crd["spec"]["versions"][0]
    crd["spec"]["versions"] = [{**copy.deepcopy(v1), "name": "v1beta1", "storage": False}, v1]
    async with running_apiserver(tmp_path, tls=False) as server:
        extensions, custom, api_client = apis(server)
        try:
            await blocking(extensions.create_custom_resource_definition, crd)
            old = {**widget("a"), "apiVersion": f"{GROUP}/v1beta1"}
            created = await blocking(custom.create_namespaced_custom_object, GROUP, "v1beta1", "default", "widgets", old)
            assert created["apiVersion"] == f"{GROUP}/v1beta1"
            read = await blocking(custom.get_namespaced_custom_object, GROUP, "v1", "default", "widgets", "a")
            assert read["apiVersion"] == f"{GROUP}/v1"
            stored = server.server.store.get("widgets.example.com", "default", "a")
            assert stored is not None and stored.obj["apiVersion"] == f"{GROUP}/v1"

            def first_watched() -> str:
                for event in watch.Watch().stream(custom.list_namespaced_custom_object, GROUP, "v1beta1", "default",
                                                  "widgets", resource_version="0", timeout_seconds=5):
                    return str(event["object"]["apiVersion"])
                return ""

            assert await blocking(first_watched) == f"{GROUP}/v1beta1"
        finally:
            api_client.close()


async def test_invalid_crds_are_refused_by_field_and_corral_kinds_are_read_only(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server:
        extensions, _, api_client = apis(server)
        try:
            bad = copy.deepcopy(WIDGETS)
            bad["spec"]["group"] = "example"
            bad["spec"]["versions"][0]["storage"] = False
            with pytest.raises(ApiException) as invalid:
                await blocking(extensions.create_custom_resource_definition, bad)
            assert invalid.value.status == 422
            fields = {c["field"] for c in error_body(invalid)["details"]["causes"]}
            assert {"spec.group", "spec.versions", "metadata.name"} <= fields
            names = {c.metadata.name for c in (await blocking(extensions.list_custom_resource_definition)).items}
            assert {"queues.corral.dev", "podgroups.corral.dev", "trainingjobs.corral.dev"} <= names
            with pytest.raises(ApiException) as refused:
                await blocking(extensions.delete_custom_resource_definition, "queues.corral.dev")
            assert refused.value.status == 405
            with pytest.raises(ApiException) as edited:
                await blocking(extensions.patch_custom_resource_definition, "queues.corral.dev",
                               {"spec": {"names": {"shortNames": ["qq"]}}})
            assert edited.value.status == 422 and "read-only" in error_body(edited)["message"]
        finally:
            api_client.close()


async def test_changing_a_crd_takes_effect_at_once(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server:
        extensions, custom, api_client = apis(server)
        try:
            await blocking(extensions.create_custom_resource_definition, copy.deepcopy(WIDGETS))
            await blocking(custom.create_namespaced_custom_object, GROUP, "v1", "default", "widgets", widget("a"))
            changed = copy.deepcopy(WIDGETS)
            v1 = changed["spec"]["versions"][0]
            v1["additionalPrinterColumns"].append({"name": "Created", "type": "date",
                                                   "jsonPath": ".metadata.creationTimestamp"})
            v2 = {**copy.deepcopy(v1), "name": "v2", "storage": False}
            changed["spec"]["versions"].append(v2)
            await blocking(extensions.patch_custom_resource_definition, "widgets.example.com",
                           {"spec": {"versions": changed["spec"]["versions"]}})
            read = await blocking(custom.get_namespaced_custom_object, GROUP, "v2", "default", "widgets", "a")
            assert read["apiVersion"] == f"{GROUP}/v2" and read["spec"]["size"] == "M"
            code, table, _ = await blocking(raw_get, server, f"/apis/{GROUP}/v2/namespaces/default/widgets",
                                            "application/json;as=Table;v=v1;g=meta.k8s.io")
            assert code == 200
            assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Replicas", "Created"]
            code, discovery, _ = await blocking(raw_get, server, f"/apis/{GROUP}", "application/json")
            assert discovery["preferredVersion"]["version"] == "v2"
            assert [v["version"] for v in discovery["versions"]] == ["v2", "v1"]
        finally:
            api_client.close()


def raw_get(server: RunningServer, path: str, accept: str) -> tuple[int, dict[str, Any], str]:
    request = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {server.token}",
                                                                  "Accept": accept})
    with urllib.request.urlopen(request) as response:
        return response.status, json.loads(response.read()), response.headers.get("Warning", "")
