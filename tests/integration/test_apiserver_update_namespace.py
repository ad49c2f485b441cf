"""An update whose body has an empty ``metadata.namespace`` takes the URL's, as in Kubernetes (helm 4 sends one)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from corral.testing.apiserver import running_apiserver
from tests.integration.test_apiserver_http import Client

CM = "/api/v1/namespaces/default/configmaps"


async def test_an_empty_namespace_in_an_update_body_means_the_urls(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server, aiohttp.ClientSession() as session:
        client = Client(server, session)
        _, created = await client.call("POST", CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
        body = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"},
                "metadata": {"name": "c", "namespace": "", "resourceVersion": created["metadata"]["resourceVersion"]}}
        status, updated = await client.call("PUT", f"{CM}/c", body)
        assert status == 200 and updated["metadata"]["namespace"] == "default" and updated["data"] == {"a": "1"}
        body["metadata"].update(namespace="elsewhere", resourceVersion=updated["metadata"]["resourceVersion"])
        status, _ = await client.call("PUT", f"{CM}/c", body)
        assert status == 400
