"""Aggregated discovery and the authorization reviews, over real HTTP and with the official Python client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from corral.apiserver.server import RunningServer
from corral.testing.apiserver import running_apiserver

V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
KUBECTL_ACCEPT = f"{V2},{V2BETA1},application/json"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_apiserver(tmp_path, tls=False) as running:
        yield running


async def get(server: RunningServer, path: str, accept: str) -> tuple[int, str, Any]:
    headers = {"Authorization": f"Bearer {server.token}", "Accept": accept}
    async with aiohttp.ClientSession() as session, session.get(server.url + path, headers=headers) as response:
        return response.status, response.headers["Content-Type"], await response.json(content_type=None)


def resources(body: dict[str, Any], group: str) -> dict[str, dict[str, Any]]:
    (item,) = [i for i in body["items"] if i["metadata"]["name"] == group]
    return {r["resource"]: r for r in item["versions"][0]["resources"]}


async def test_aggregated_discovery_of_the_core_group(server: RunningServer) -> None:
    status, content_type, body = await get(server, "/api", KUBECTL_ACCEPT)
    assert status == 200 and content_type.replace(" ", "") == V2
    assert body["kind"] == "APIGroupDiscoveryList" and body["apiVersion"] == "apidiscovery.k8s.io/v2"
    assert [i["metadata"]["name"] for i in body["items"]] == [""]
    pods = resources(body, "")["pods"]
    assert pods["scope"] == "Namespaced" and pods["singularResource"] == "pod"
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert {"get", "list", "watch", "create", "delete"} <= set(pods["verbs"])
    assert "po" in pods["shortNames"] and "all" in pods.get("categories", [])
    subresources = {s["subresource"]: s for s in pods["subresources"]}
    assert subresources["status"]["verbs"] == ["get", "patch", "update"]
    assert subresources["binding"]["responseKind"]["kind"] == "Binding"
    assert resources(body, "")["nodes"]["scope"] == "Cluster"


async def test_aggregated_discovery_of_the_groups(server: RunningServer) -> None:
    status, content_type, body = await get(server, "/apis", V2BETA1)
    assert status == 200 and content_type.replace(" ", "") == V2BETA1
    assert body["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    groups = [i["metadata"]["name"] for i in body["items"]]
    assert "" not in groups and "corral.dev" in groups
    reviews = resources(body, "authorization.k8s.io")
    assert set(reviews) == {"selfsubjectaccessreviews", "selfsubjectrulesreviews"}
    assert reviews["selfsubjectaccessreviews"]["verbs"] == ["create"]
    assert resources(body, "corral.dev")["queues"]["scope"] == "Cluster"


@pytest.mark.parametrize("accept", ["application/json", "", "application/json," + V2,
                                    "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"])
async def test_clients_that_do_not_ask_get_the_legacy_format(server: RunningServer, accept: str) -> None:
    _, content_type, body = await get(server, "/apis", accept)
    assert body["kind"] == "APIGroupList" and content_type.startswith("application/json")
    assert "authorization.k8s.io" in [g["name"] for g in body["groups"]]
    _, _, core = await get(server, "/api", accept)
    assert core["kind"] == "APIVersions"
    _, _, listed = await get(server, "/apis/authorization.k8s.io/v1", accept)
    assert {r["name"] for r in listed["resources"]} == {"selfsubjectaccessreviews", "selfsubjectrulesreviews"}


def api_client(server: RunningServer) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(server.kubeconfig))


def fetch(api: client.ApiClient, path: str, accept: str, model: str) -> Any:
    """A GET through the client's own machinery, deserialized into its generated model (which checks required fields)."""
    request = api.param_serialize("GET", path, header_params={"Accept": accept}, auth_settings=["BearerToken"])
    response = api.call_api(*request)
    response.read()
    return api.response_deserialize(response, {"200": model}).data


async def test_official_client_reads_aggregated_discovery_into_its_models(server: RunningServer) -> None:
    api = api_client(server)
    try:
        for path, accept, model in (("/api", V2, "V2APIGroupDiscoveryList"), ("/apis", V2, "V2APIGroupDiscoveryList"),
                                    ("/apis", V2BETA1, "V2beta1APIGroupDiscoveryList")):
            answer = await asyncio.to_thread(fetch, api, path, accept, model)
            assert answer.items and all(v.resources for item in answer.items for v in item.versions)
    finally:
        api.close()


async def test_self_subject_access_and_rules_reviews(server: RunningServer) -> None:
    api = client.AuthorizationV1Api(api_client(server))
    try:
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb="create", resource="pods", namespace="default")))
        answer = await asyncio.to_thread(api.create_self_subject_access_review, review)
        assert answer.status.allowed is True and answer.spec.resource_attributes.resource == "pods"
        rules = await asyncio.to_thread(api.create_self_subject_rules_review, client.V1SelfSubjectRulesReview(
            spec=client.V1SelfSubjectRulesReviewSpec(namespace="default")))
        assert rules.status.incomplete is False
        assert rules.status.resource_rules[0].verbs == ["*"] and rules.status.resource_rules[0].resources == ["*"]
        with pytest.raises(ApiException) as error:
            await asyncio.to_thread(api.create_self_subject_access_review,
                                    client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec()))
        assert error.value.status == 422 and "resourceAttributes" in str(error.value.body)
    finally:
        api.api_client.close()


async def test_reviews_are_create_only(server: RunningServer) -> None:
    status, _, body = await get(server, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "application/json")
    assert status == 405 and body["kind"] == "Status"
