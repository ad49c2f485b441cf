"""Protobuf bodies and responses over real HTTP, as client-go programs (helm) send them; OpenAPI v2."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from corral.apiserver.openapi_v2 import PROTOBUF_V2
from corral.apiserver.protobuf import codec
from corral.apiserver.server import RunningServer
from corral.testing.apiserver import running_apiserver, store_unvalidated
from tests.unit.apiserver.test_protobuf_codec import KUBECTL_DEPLOYMENT, KUBECTL_JOB

PROTOBUF = "application/vnd.kubernetes.protobuf"
CLIENT_GO_ACCEPT = "application/vnd.kubernetes.protobuf,application/json"
SECRETS = "/api/v1/namespaces/default/secrets"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_apiserver(tmp_path, tls=False) as running:
        yield running


async def call(server: RunningServer, method: str, path: str, body: bytes | None = None, *,
               content_type: str = PROTOBUF, accept: str = CLIENT_GO_ACCEPT) -> tuple[int, str, bytes]:
    headers = {"Authorization": f"Bearer {server.token}", "Accept": accept}
    if body is not None:
        headers["Content-Type"] = content_type
    async with aiohttp.ClientSession() as session, session.request(
            method, server.url + path, data=body, headers=headers) as response:
        return response.status, response.content_type, await response.read()


def read(content_type: str, body: bytes) -> dict[str, Any]:
    if content_type == PROTOBUF:
        return codec.decode_object(body)
    result: dict[str, Any] = json.loads(body)
    return result


def release(version: int, status: str, **meta: Any) -> bytes:
    """A helm release record: a Secret written by client-go in protobuf."""
    return codec.encode_object({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": "sh.helm.release.v1.demo.v1", "labels": {"owner": "helm", "status": status,
                                                                     "version": str(version)}, **meta},
        "data": {"release": base64.b64encode(b"H4sI" + bytes(range(256)) * 300).decode()},
    })


async def test_helm_release_record_create_update_and_delete_in_protobuf(server: RunningServer) -> None:
    status, content_type, body = await call(server, "POST", SECRETS, release(1, "pending-install"))
    assert status == 201 and content_type == PROTOBUF  # client-go asked for protobuf first
    created = codec.decode_object(body)
    assert created["metadata"]["labels"]["status"] == "pending-install"
    rv = created["metadata"]["resourceVersion"]
    # client-go sends the whole object back: an empty metadata.namespace (Go's zero string) and its resourceVersion.
    update = release(1, "deployed", namespace="", resourceVersion=rv)
    status, content_type, body = await call(server, "PUT", f"{SECRETS}/sh.helm.release.v1.demo.v1", update)
    assert status == 200, body
    assert codec.decode_object(body)["metadata"]["labels"]["status"] == "deployed"
    # The stale resourceVersion is now checked (it used to be dropped, skipping optimistic concurrency).
    status, _, body = await call(server, "PUT", f"{SECRETS}/sh.helm.release.v1.demo.v1",
                                 release(1, "failed", resourceVersion=rv), accept="application/json")
    assert status == 409 and json.loads(body)["reason"] == "Conflict"
    status, _, body = await call(server, "GET", f"{SECRETS}/sh.helm.release.v1.demo.v1", accept="application/json")
    stored = json.loads(body)
    assert stored["metadata"]["labels"]["status"] == "deployed" and stored["type"] == "helm.sh/release.v1"
    assert base64.b64decode(stored["data"]["release"]) == b"H4sI" + bytes(range(256)) * 300

    stale = codec.encode_object({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"resourceVersion": rv}})
    status, _, body = await call(server, "DELETE", f"{SECRETS}/sh.helm.release.v1.demo.v1", stale)
    assert status == 409, body
    options = codec.encode_object({"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                                   "preconditions": {"resourceVersion": stored["metadata"]["resourceVersion"]}})
    status, _, body = await call(server, "DELETE", f"{SECRETS}/sh.helm.release.v1.demo.v1", options)
    assert status == 200, body
    status, _, _ = await call(server, "GET", f"{SECRETS}/sh.helm.release.v1.demo.v1")
    assert status == 404


async def test_lists_answer_in_protobuf_and_json_as_asked(server: RunningServer) -> None:
    for name in ("a", "b"):
        body = codec.encode_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}})
        assert (await call(server, "POST", "/api/v1/namespaces/default/configmaps", body))[0] == 201
    status, content_type, body = await call(server, "GET", "/api/v1/namespaces/default/configmaps")
    assert status == 200 and content_type == PROTOBUF
    listed = codec.decode_object(body)
    assert listed["kind"] == "ConfigMapList" and int(listed["metadata"]["resourceVersion"]) > 0
    assert [(i["metadata"]["name"], i["data"]) for i in listed["items"]] == [("a", {"k": "a"}), ("b", {"k": "b"})]
    _, content_type, body = await call(server, "GET", "/api/v1/namespaces/default/configmaps", accept="application/json")
    assert content_type == "application/json" and len(json.loads(body)["items"]) == 2
    # corral's own kinds have no protobuf form: JSON even when protobuf is preferred, as for custom resources.
    _, content_type, _ = await call(server, "GET", "/apis/corral.dev/v1alpha1/namespaces/default/queues")
    assert content_type == "application/json"


async def test_a_pod_sent_in_protobuf_is_stored_as_the_same_pod_sent_in_json(server: RunningServer) -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"app": "web"}},
        "spec": {"automountServiceAccountToken": False, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "1"],
                                 "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                                 "ports": [{"containerPort": 80, "name": "http"}],
                                 "readinessProbe": {"httpGet": {"port": "http", "path": "/"}},
                                 "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}}],
                 "volumes": [{"name": "cfg", "configMap": {"name": "c", "defaultMode": 420}}],
                 "tolerations": [{"key": "k", "operator": "Exists"}]},
    }
    stored = []
    for name, content_type in (("json", "application/json"), ("proto", PROTOBUF)):
        obj = {**pod, "metadata": {**pod["metadata"], "name": name}}
        body = json.dumps(obj).encode() if content_type == "application/json" else codec.encode_object(obj)
        status, response_type, response = await call(server, "POST", "/api/v1/namespaces/default/pods", body,
                                                     content_type=content_type)
        assert status == 201, response
        stored.append(read(response_type, response))
    assert stored[0]["spec"] == stored[1]["spec"]
    assert stored[1]["spec"]["automountServiceAccountToken"] is False  # a Go pointer: false is kept


async def test_protobuf_bodies_it_cannot_read_get_415_or_400(server: RunningServer) -> None:
    queue = codec._envelope("corral.dev/v1alpha1", "Queue", b"\x0a\x03\x0a\x01q")
    status, _, body = await call(server, "POST", "/apis/corral.dev/v1alpha1/queues", queue)
    assert status == 415
    message = json.loads(body)["message"]
    assert "corral.dev/v1alpha1 Queue" in message and "send this object as JSON or YAML" in message
    status, _, body = await call(server, "POST", SECRETS, b"k8s\x00\x0a\xff")
    assert status == 400 and "not a valid Kubernetes protobuf message" in json.loads(body)["message"]
    status, _, _ = await call(server, "GET", f"{SECRETS}/none")
    assert status == 404


async def test_openapi_v2_is_served_as_json_or_as_kubectls_protobuf(server: RunningServer) -> None:
    status, content_type, body = await call(server, "GET", "/openapi/v2", accept="application/json")
    assert status == 200 and content_type == "application/json"
    document = json.loads(body)
    assert document["swagger"] == "2.0"
    pod = document["definitions"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.core.v1.PodSpec"
    status, content_type, body = await call(server, "GET", "/openapi/v2", accept=PROTOBUF_V2)
    assert status == 200 and content_type == "application/octet-stream"
    definitions = next(v for n, _, v in codec.fields(body) if n == 9)
    assert isinstance(definitions, bytes)
    names = {next(v for n, _, v in codec.fields(entry) if n == 1) for _, _, entry in codec.fields(definitions)
             if isinstance(entry, bytes)}
    assert b"io.k8s.api.core.v1.Pod" in names and b"dev.corral.v1alpha1.Queue" in names
    status, _, body = await call(server, "GET", "/openapi/v2", accept="text/html")
    assert status == 406 and "application/json" in json.loads(body)["message"]


async def test_an_object_protobuf_cannot_hold_is_answered_in_json(server: RunningServer) -> None:
    # The API now drops fields Kubernetes lacks (fieldValidation Warn), but a store written
    # before that may still hold one: it is answered in JSON rather than lose the field.
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "odd", "namespace": "default"},
            "data": {"a": "1"}, "extra": {"kept": True}}
    await store_unvalidated(server, body)
    status, content_type, response = await call(server, "GET", "/api/v1/namespaces/default/configmaps/odd")
    assert status == 200 and content_type == "application/json"  # rather than drop "extra"
    assert json.loads(response)["extra"] == {"kept": True}


async def test_typed_kubectl_create_deployment_and_job_and_the_scale_subresource_in_protobuf(
        server: RunningServer) -> None:
    deployments = "/apis/apps/v1/namespaces/default/deployments"
    status, response_type, body = await call(server, "POST", deployments, KUBECTL_DEPLOYMENT)
    assert (status, response_type) == (201, PROTOBUF), body
    created = codec.decode_object(body)
    assert created["spec"]["template"]["spec"]["containers"][0]["command"] == ["python3", "-m", "http.server"]
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted as for a JSON body
    status, response_type, body = await call(server, "POST", "/apis/batch/v1/namespaces/default/jobs", KUBECTL_JOB)
    assert (status, response_type) == (201, PROTOBUF), body
    assert codec.decode_object(body)["spec"]["template"]["spec"]["restartPolicy"] == "Never"

    status, response_type, body = await call(server, "GET", f"{deployments}/web/scale")
    assert (status, response_type) == (200, PROTOBUF), body
    scale = codec.decode_object(body)
    assert (scale["apiVersion"], scale["kind"], scale["spec"]) == ("autoscaling/v1", "Scale", {"replicas": 1})
    assert scale["status"]["selector"] == "app=web"
    scale["spec"]["replicas"] = 4
    status, response_type, body = await call(server, "PUT", f"{deployments}/web/scale", codec.encode_object(scale))
    assert (status, response_type) == (200, PROTOBUF), body
    assert codec.decode_object(body)["spec"] == {"replicas": 4}
    status, _, body = await call(server, "GET", f"{deployments}/web", accept="application/json")
    assert json.loads(body)["spec"]["replicas"] == 4
