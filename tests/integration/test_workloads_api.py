"""apps/v1 and batch/v1 against a real API server: discovery, defaults, field-named errors, the
scale subresource, and the three controllers running a Deployment and a Job while this test
plays the kubelet (it marks pods Running/Ready or Succeeded through ``/status``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from corral.apiserver.server import RunningServer, start_server
from corral.client import ApiClient, ApiError
from corral.controllers.workloads import workload_manager

Obj = dict[str, Any]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(tmp_path / "api", tls=False, history=2000)
    yield running
    await running.stop()


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[ApiClient]:
    api = ApiClient(server.url, server.token)
    yield api
    await api.close()


def deployment(name: str = "web", replicas: int = 2, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels or {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "python:3.12", "x-unknown": 1}]}}}}


def job(name: str = "pi", **spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "python:3.12"}]}}, **spec}}


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_discovery_lists_the_kinds_with_scale_subresources(client: ApiClient) -> None:
    apps = await client.request("GET", "/apis/apps/v1")
    names = {r["name"]: r for r in apps["resources"]}
    assert names["deployments"]["shortNames"] == ["deploy"]
    assert names["replicasets"]["shortNames"] == ["rs"]
    assert names["deployments/scale"]["kind"] == "Scale"
    assert names["deployments/scale"]["group"] == "autoscaling"
    assert set(names["deployments/scale"]["verbs"]) == {"get", "patch", "update"}
    batch = await client.request("GET", "/apis/batch/v1")
    assert {r["name"] for r in batch["resources"]} == {"jobs", "jobs/status"}


async def test_defaults_unknown_fields_and_field_named_errors(client: ApiClient) -> None:
    created = await client.create(deployment(), "default")
    spec = created["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (10, 600)
    assert spec["template"]["spec"]["containers"][0]["x-unknown"] == 1
    with pytest.raises(ApiError) as error:
        await client.create(deployment("bad", labels={"app": "other"}), "default")
    assert error.value.code == 422
    assert ('spec.template.metadata.labels: Invalid value: {"app":"other"}: selector does not match template labels'
            in error.value.message)
    assert await client.get_or_none("apps/v1", "deployments", "bad", "default") is None
    with pytest.raises(ApiError) as error:
        await client.create(deployment("neg", replicas=-1), "default")
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in error.value.message
    with pytest.raises(ApiError) as error:
        await client.patch("apps/v1", "deployments", "web", {"spec": {"selector": {"matchLabels": {"app": "x"}},
                                                                      "template": {"metadata": {"labels": {"app": "x"}}}}},
                           namespace="default")
    assert "spec.selector: Invalid value" in error.value.message and "field is immutable" in error.value.message


async def test_job_defaults_selector_and_immutable_template(client: ApiClient) -> None:
    created = await client.create(job(), "default")
    uid = created["metadata"]["uid"]
    assert created["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert created["spec"]["template"]["metadata"]["labels"]["job-name"] == "pi"
    with pytest.raises(ApiError) as error:
        await client.patch("batch/v1", "jobs", "pi", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "other"}]}}}}, namespace="default", patch_type="strategic")
    assert "spec.template: Invalid value" in error.value.message and "field is immutable" in error.value.message
    with pytest.raises(ApiError) as error:
        await client.create(job("neg", completions=-2), "default")
    assert "spec.completions: Invalid value: -2: must be greater than or equal to 0" in error.value.message
    with pytest.raises(ApiError) as error:
        await client.create(job("idx", completionMode="Indexed", parallelism=2), "default")
    assert "spec.completions: Required value: when completion mode is Indexed" in error.value.message


async def test_scale_subresource_get_put_patch(client: ApiClient) -> None:
    await client.create(deployment(), "default")
    path = "/apis/apps/v1/namespaces/default/deployments/web/scale"
    scale = await client.request("GET", path)
    assert (scale["kind"], scale["apiVersion"], scale["spec"]["replicas"]) == ("Scale", "autoscaling/v1", 2)
    assert scale["status"]["selector"] == "app=web"
    scale["spec"]["replicas"] = 5
    assert (await client.request("PUT", path, body=scale))["spec"]["replicas"] == 5
    stale = dict(scale, metadata=dict(scale["metadata"]))
    with pytest.raises(ApiError) as error:
        await client.request("PUT", path, body=stale)  # the resourceVersion it carries is gone
    assert error.value.code == 409
    patched = await client.request("PATCH", path, body={"spec": {"replicas": 1}},
                                   content_type="application/merge-patch+json")
    assert patched["spec"]["replicas"] == 1
    assert (await client.get("apps/v1", "deployments", "web", "default"))["spec"]["replicas"] == 1
    with pytest.raises(ApiError) as error:
        await client.request("PATCH", path, body={"spec": {"replicas": -3}}, content_type="application/merge-patch+json")
    assert error.value.code == 422 and "spec.replicas" in error.value.message


async def play_kubelet(client: ApiClient, *, finish: str | None = None) -> None:
    """Mark every pending pod Running and Ready (or finished with ``finish``)."""
    pods = (await client.list("v1", "pods", "default")).get("items") or []
    for pod in pods:
        if pod["status"].get("phase") != "Pending" or pod["metadata"].get("deletionTimestamp"):
            continue
        if finish:
            pod["status"] = {"phase": finish}
        else:
            pod["status"] = {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        try:
            await client.update_status(pod)
        except ApiError:
            continue


async def test_controllers_roll_out_a_deployment_and_run_a_job(client: ApiClient) -> None:
    manager = workload_manager(client, resync_seconds=1.0)
    await manager.start(sync_timeout=5)
    try:
        await client.create(deployment(replicas=3), "default")

        async def rolled_out() -> bool:
            await play_kubelet(client)
            status = (await client.get("apps/v1", "deployments", "web", "default")).get("status") or {}
            return status.get("availableReplicas") == 3 and status.get("updatedReplicas") == 3
        await until(rolled_out)
        await client.patch("apps/v1", "deployments", "web", {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "now"}}}}}, namespace="default", patch_type="strategic")

        async def second_revision() -> bool:
            await play_kubelet(client)
            dep = await client.get("apps/v1", "deployments", "web", "default")
            status = dep.get("status") or {}
            sets = (await client.list("apps/v1", "replicasets", "default"))["items"]
            return (dep["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision") == "2"
                    and status.get("updatedReplicas") == 3 == status.get("availableReplicas") == status.get("replicas")
                    and sorted(rs["spec"]["replicas"] for rs in sets) == [0, 3])
        await until(second_revision)
        pods = (await client.list("v1", "pods", "default"))["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        assert len(live) == 3
        conditions = {c["type"]: c for c in (await client.get("apps/v1", "deployments", "web", "default"))["status"]["conditions"]}
        assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"

        await client.create(job(completions=2, parallelism=2), "default")

        async def complete() -> bool:
            await play_kubelet(client, finish="Succeeded")
            status = (await client.get("batch/v1", "jobs", "pi", "default")).get("status") or {}
            return any(c["type"] == "Complete" and c["status"] == "True" for c in status.get("conditions") or [])
        await until(complete)
        status = (await client.get("batch/v1", "jobs", "pi", "default"))["status"]
        assert status["succeeded"] == 2 and status["completionTime"]
    finally:
        await manager.stop()


async def test_a_replicaset_adopts_a_matching_orphan_when_it_appears(client: ApiClient) -> None:
    manager = workload_manager(client, resync_seconds=300.0)  # no resync: the pod's own event must do it
    await manager.start(sync_timeout=5)
    try:
        rs = await client.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "keep"},
                                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "keep"}},
                                           "template": {"metadata": {"labels": {"app": "keep"}},
                                                        "spec": {"containers": [{"name": "c", "image": "i"}]}}}},
                                 "default")

        async def one_pod() -> bool:
            return len((await client.list("v1", "pods", "default", label_selector="app=keep"))["items"]) == 1
        await until(one_pod)
        await client.patch("apps/v1", "replicasets", "keep", {"spec": {"replicas": 2}}, namespace="default")
        await until(lambda: _count(client, "app=keep", 2))
        # an orphan that matches: adopted, and (replicas 2, three pods) one pod goes
        await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "labels": {"app": "keep"}},
                             "spec": {"containers": [{"name": "c", "image": "i"}]}}, "default")
        await until(lambda: _count(client, "app=keep", 2))
        pods = (await client.list("v1", "pods", "default", label_selector="app=keep"))["items"]
        assert all(p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in pods)
        assert len(pods) == 2
    finally:
        await manager.stop()


async def _count(client: ApiClient, selector: str, wanted: int) -> bool:
    pods = (await client.list("v1", "pods", "default", label_selector=selector))["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return len(live) == wanted and all(p["metadata"].get("ownerReferences") for p in live)
