"""The scheduler's lean binder against the real API server: the same effect and the same
errors as ``ApiClient.bind``, over plain HTTP and TLS, surviving connections the server drops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.apiserver.server import start_server
from corral.client import ApiClient, ApiError
from corral.scheduler.cycle import Binding
from corral.scheduler.fastbind import HttpBinder

pytestmark = pytest.mark.timeout(60)


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}


@pytest.mark.parametrize("tls", [False, True])
async def test_binds_with_devices_and_reports_errors_like_the_client(tmp_path: Path, tls: bool) -> None:
    server = await start_server(tmp_path / "api", tls=tls)
    client = ApiClient(server.url, server.token, ssl_context=server.ssl_context())
    binder = HttpBinder.for_client(client)
    try:
        assert binder.ssl is not None if tls else binder.ssl is None
        created = await client.create(pod("a"))
        await binder.bind(Binding(created, "default/a", "node-1", "0,3"))
        got = await client.get("v1", "pods", "a", "default")
        assert got["spec"]["nodeName"] == "node-1"
        assert got["metadata"]["annotations"]["corral.dev/gpu-devices"] == "0,3"
        # bound already: 409 from the server's Status, as through the client
        with pytest.raises(ApiError) as conflict:
            await binder.bind(Binding(created, "default/a", "node-2", ""))
        assert conflict.value.conflict and "already assigned" in conflict.value.message
        # no such pod: 404
        with pytest.raises(ApiError) as missing:
            await binder.bind(Binding(pod("ghost"), "default/ghost", "node-1", ""))
        assert missing.value.not_found
        # a uid that does not match (the pod was replaced): refused
        await client.create(pod("b"))
        stale = {**pod("b"), "metadata": {**pod("b")["metadata"], "uid": "not-the-uid"}}
        with pytest.raises(ApiError) as mismatch:
            await binder.bind(Binding(stale, "default/b", "node-1", ""))
        assert mismatch.value.conflict
        assert binder.opened == 1  # one kept-alive connection served all of it
        # the server drops the idle connection: the next binding opens a new one and succeeds
        for conn in binder._idle:
            conn.writer.transport.abort()
        await binder.bind(Binding(await client.get("v1", "pods", "b", "default"), "default/b", "node-1", ""))
        assert (await client.get("v1", "pods", "b", "default"))["spec"]["nodeName"] == "node-1"
        assert binder.opened == 2
    finally:
        await binder.close()
        await client.close()
        await server.stop()


async def test_unreachable_server_raises_oserror(tmp_path: Path) -> None:
    binder = HttpBinder("http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(OSError):
        await binder.bind(Binding(pod("a"), "default/a", "n", ""))


def test_rejects_non_http_urls() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HttpBinder("unix:///var/run/api.sock")


def test_built_outside_an_event_loop_with_the_clients_identity() -> None:
    # the service is built before any loop runs in some callers: nothing may need one here
    binder = HttpBinder.for_client(ApiClient("https://127.0.0.1:6443/prefix", "s3cret"))
    assert binder.ssl is not None and binder.port == 6443 and binder.prefix == "/prefix"
    assert "Authorization: Bearer s3cret\r\n" in binder._headers
    request = binder.request_bytes(Binding(pod("a"), "default/a", "n-1", "0:0.5"))
    assert request.startswith(b"POST /prefix/api/v1/namespaces/default/pods/a/binding HTTP/1.1\r\n")
    assert b'"corral.dev/gpu-devices":"0:0.5"' in request and b'"name":"n-1"' in request
