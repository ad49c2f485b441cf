"""The official ``kubernetes`` Python client against the in-process server (HTTPS, bearer token)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from corral.apiserver.server import RunningServer
from corral.testing.apiserver import running_apiserver

T = TypeVar("T")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_apiserver(tmp_path, tls=False) as running:  # the client sends tokens over HTTP; over TLS its in-process sockets trip ResourceWarnings
        yield running


def core(server: RunningServer) -> client.CoreV1Api:
    api_client = config.new_client_from_config(config_file=str(server.kubeconfig))
    return client.CoreV1Api(api_client)


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The kubernetes client blocks; run it in a thread so the in-process server keeps serving."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def new_pod(name: str) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, labels={"app": "k8s"}),
                        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox")]))


async def test_create_list_patch_replace_stale_delete(server: RunningServer) -> None:
    api = core(server)
    try:
        created = await blocking(api.create_namespaced_pod, "default", new_pod("a"))
        assert created.spec.scheduler_name == "corral"
        listed = await blocking(api.list_namespaced_pod, "default", label_selector="app=k8s")
        assert [p.metadata.name for p in listed.items] == ["a"]
        patched = await blocking(api.patch_namespaced_pod, "a", "default", {"metadata": {"labels": {"extra": "1"}}})
        assert patched.metadata.labels == {"app": "k8s", "extra": "1"}
        stale = created
        stale.metadata.labels = {"stale": "yes"}
        with pytest.raises(ApiException) as error:
            await blocking(api.replace_namespaced_pod, "a", "default", stale)
        assert error.value.status == 409
        fresh = await blocking(api.read_namespaced_pod, "a", "default")
        fresh.metadata.labels["replaced"] = "yes"
        replaced = await blocking(api.replace_namespaced_pod, "a", "default", fresh)
        assert replaced.metadata.labels["replaced"] == "yes"
        await blocking(api.delete_namespaced_pod, "a", "default")
        with pytest.raises(ApiException) as error:
            await blocking(api.read_namespaced_pod, "a", "default")
        assert error.value.status == 404
    finally:
        api.api_client.close()


async def test_watch_from_resource_version(server: RunningServer) -> None:
    api = core(server)
    try:
        first = await blocking(api.create_namespaced_pod, "default", new_pod("w0"))
        await blocking(api.create_namespaced_pod, "default", new_pod("w1"))
        await blocking(api.delete_namespaced_pod, "w0", "default")
        seen: list[tuple[str, str]] = []
        done = threading.Event()

        def run() -> None:
            stream = watch.Watch()
            for event in stream.stream(api.list_namespaced_pod, "default", resource_version=first.metadata.resource_version,
                                       timeout_seconds=10):
                seen.append((event["type"], event["object"].metadata.name))
                if len(seen) == 3:
                    stream.stop()
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        await blocking(api.create_namespaced_pod, "default", new_pod("w2"))
        await blocking(done.wait, 15)
        await blocking(thread.join, 5)
        assert seen == [("ADDED", "w1"), ("DELETED", "w0"), ("ADDED", "w2")]
    finally:
        api.api_client.close()


async def test_error_bodies_are_kube_apiservers_bytes(server: RunningServer) -> None:
    """The client prints Status bodies verbatim (``FailToCreateError``), and its own e2e suite
    compares them as text: keys in Go's field order (``details`` before ``code``; ``name``,
    ``group``, ``kind``) and a closing newline, as kube-apiserver's json.Encoder writes them."""
    api_client = config.new_client_from_config(config_file=str(server.kubeconfig))
    apps = client.AppsV1Api(api_client)
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "twice"},
                  "spec": {"selector": {"matchLabels": {"app": "twice"}},
                           "template": {"metadata": {"labels": {"app": "twice"}},
                                        "spec": {"containers": [{"name": "main", "image": "busybox"}]}}}}
    await blocking(apps.create_namespaced_deployment, "default", deployment)
    with pytest.raises(ApiException) as error:
        await blocking(apps.create_namespaced_deployment, "default", deployment)
    assert error.value.body == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"deployments.apps \\"twice\\" already exists","reason":"AlreadyExists",'
        '"details":{"name":"twice","group":"apps","kind":"deployments"},"code":409}\n')
    with pytest.raises(ApiException) as error:
        await blocking(core(server).read_namespaced_service, "absent", "default")
    assert error.value.body == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"services \\"absent\\" not found","reason":"NotFound",'
        '"details":{"name":"absent","kind":"services"},"code":404}\n')
