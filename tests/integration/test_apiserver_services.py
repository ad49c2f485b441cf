"""Service cluster IPs and defaults, Secret stringData on update, and no empty metadata maps, over real HTTP."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.apiserver.services import used_cluster_ips
from corral.testing.apiserver import running_apiserver
from tests.integration.test_apiserver_http import Client

SVC = "/api/v1/namespaces/default/services"
CM = "/api/v1/namespaces/default/configmaps"


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}


async def test_services_get_unique_cluster_ips_from_the_range_that_survive_a_restart(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False, service_cidr="10.96.0.0/28") as server, \
            aiohttp.ClientSession() as session:
        client = Client(server, session)
        ips = []
        for i in range(7):
            status, body = await client.call("POST", SVC, service(f"s{i}"))
            assert status == 201, body
            spec = body["spec"]
            assert spec["clusterIPs"] == [spec["clusterIP"]] and spec["type"] == "ClusterIP"
            assert ipaddress.ip_address(spec["clusterIP"]) in ipaddress.ip_network("10.96.0.0/28")
            assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
            assert spec["ipFamilies"] == ["IPv4"] and spec["sessionAffinity"] == "None"
            assert body["status"] == {"loadBalancer": {}}
            ips.append(spec["clusterIP"])
        assert len(set(ips)) == 7
        status, headless = await client.call("POST", SVC, service("headless", clusterIP="None"))
        assert status == 201 and headless["spec"]["clusterIPs"] == ["None"]
        status, external = await client.call("POST", SVC, service("ext", type="ExternalName", externalName="a.example"))
        assert status == 201 and "clusterIP" not in external["spec"]
        await client.call("DELETE", f"{SVC}/s0")
        status, reused = await client.call("POST", SVC, service("again", clusterIP=ips[0]))
        assert status == 201 and reused["spec"]["clusterIP"] == ips[0]  # a deleted Service frees its address
    async with running_apiserver(tmp_path, tls=False, service_cidr="10.96.0.0/28") as server, \
            aiohttp.ClientSession() as session:
        client = Client(server, session)
        status, body = await client.call("POST", SVC, service("dup", clusterIP=ips[1]))
        assert status == 422 and body["reason"] == "Invalid"
        assert "spec.clusterIPs" in body["message"] and "provided IP is already allocated" in body["message"]
        status, body = await client.call("POST", SVC, service("outside", clusterIP="192.168.0.1"))
        assert status == 422 and "not in the valid range" in body["message"]
        for i in range(7, 12):  # the 14 usable addresses of a /28 minus the 7 held: every new one is free
            status, body = await client.call("POST", SVC, service(f"s{i}"))
            assert status == 201, body
        _, listed = await client.call("GET", SVC)
        held = [ip for item in listed["items"] for ip in item["spec"].get("clusterIPs", []) if ip != "None"]
        assert len(held) == len(set(held)) == 12
        _, names = await client.call("GET", f"{SVC}/dup")
        assert names["code"] == 404  # nothing was stored for the rejected one


async def test_updates_keep_the_cluster_ip(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server, aiohttp.ClientSession() as session:
        client = Client(server, session)
        _, created = await client.call("POST", SVC, service("a"))
        ip = created["spec"]["clusterIP"]
        replacement = service("a")
        replacement["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
        status, replaced = await client.call("PUT", f"{SVC}/a", replacement)
        assert status == 200 and replaced["spec"]["clusterIP"] == ip and replaced["status"] == {"loadBalancer": {}}
        status, body = await client.call("PATCH", f"{SVC}/a", {"spec": {"clusterIP": "10.96.9.9"}},
                                         content_type="application/merge-patch+json")
        assert status == 422 and "immutable" in body["message"]


async def test_no_empty_metadata_maps_after_removing_the_last_annotation(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server, aiohttp.ClientSession() as session:
        client = Client(server, session)
        _, created = await client.call("POST", CM, {"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": "c", "labels": {}, "generateName": ""}})
        assert "labels" not in created["metadata"] and "generateName" not in created["metadata"]
        await client.call("PATCH", f"{CM}/c", {"metadata": {"annotations": {"a": "1"}}},
                          content_type="application/merge-patch+json")
        for dry_run in ("?dryRun=All", ""):
            status, patched = await client.call("PATCH", f"{CM}/c{dry_run}", {"metadata": {"annotations": {"a": None}}},
                                                content_type="application/strategic-merge-patch+json")
            assert status == 200 and "annotations" not in patched["metadata"], patched


async def test_secret_string_data_is_folded_into_data_on_update(tmp_path: Path) -> None:
    secrets = "/api/v1/namespaces/default/secrets"
    async with running_apiserver(tmp_path, tls=False) as server, aiohttp.ClientSession() as session:
        client = Client(server, session)
        await client.call("POST", secrets, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                            "stringData": {"k": "v"}})
        status, patched = await client.call("PATCH", f"{secrets}/s?dryRun=All", {"stringData": {"k": "v"}},
                                            content_type="application/merge-patch+json")
        assert status == 200 and "stringData" not in patched and patched["data"] == {"k": "dg=="}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([f"10.96.0.{i}" for i in range(8)] + ["None", "", None]), max_size=6))
def test_used_cluster_ips_are_the_real_addresses_held(ips: list[str | None]) -> None:
    services = [{"spec": {"clusterIP": ip, "clusterIPs": [ip] if ip else None}} for ip in ips]
    assert used_cluster_ips(services) == {ip for ip in ips if ip and ip != "None"}
