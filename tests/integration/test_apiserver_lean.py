"""The lean HTTP/1.1 front over raw sockets: pipelining, keep-alive, and handing connections to aiohttp.

Real server in-process on a free port, real SQLite; the client is a raw TCP stream so
that the tests control exactly which bytes arrive when.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from corral.apiserver.server import RunningServer, lean_eligible
from corral.testing.apiserver import running_apiserver

POD = "/api/v1/namespaces/default/pods"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_apiserver(tmp_path, tls=False) as running:
        yield running


def pod_body(name: str) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": "main", "image": "busybox"}]}}).encode()


class Raw:
    """One raw HTTP/1.1 connection."""

    def __init__(self, server: RunningServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer

    def request(self, method: str, path: str, body: bytes = b"", *, version: str = "HTTP/1.1",
                headers: dict[str, str] | None = None) -> bytes:
        lines = [f"{method} {path} {version}", "Host: test", f"Authorization: Bearer {self.server.token}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body and "Transfer-Encoding" not in (headers or {}):
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if headers.get("transfer-encoding") == "chunked":
            return status, headers, b""  # a stream: the caller reads it
        body = await asyncio.wait_for(self.reader.readexactly(int(headers.get("content-length", "0"))), 10)
        return status, headers, body

    async def chunk(self) -> bytes:
        size = int((await asyncio.wait_for(self.reader.readuntil(b"\r\n"), 10)).strip(), 16)
        data = await asyncio.wait_for(self.reader.readexactly(size + 2), 10)
        return data[:-2]

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def connect(server: RunningServer) -> Raw:
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    return Raw(server, reader, writer)


async def test_pipelined_creates_are_answered_in_order(server: RunningServer) -> None:
    raw = await connect(server)
    raw.writer.write(b"".join(raw.request("POST", POD, pod_body(f"p-{i}")) for i in range(20)))
    raw.writer.write(raw.request("POST", POD, pod_body("p-3")))  # a duplicate: 409, in its place
    for i in range(20):
        status, headers, body = await raw.response()
        assert status == 201, body
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body)["metadata"]["name"] == f"p-{i}"
    status, _, body = await raw.response()
    assert status == 409 and json.loads(body)["reason"] == "AlreadyExists"
    await raw.close()


async def test_bytes_split_anywhere_still_make_one_request(server: RunningServer) -> None:
    raw = await connect(server)
    data = raw.request("POST", POD, pod_body("split")) + raw.request("GET", POD + "/split")
    for i in range(len(data)):
        raw.writer.write(data[i:i + 1])
        if i % 50 == 0:
            await raw.writer.drain()
            await asyncio.sleep(0)
    status, _, _ = await raw.response()
    assert status == 201
    status, _, body = await raw.response()
    assert status == 200 and json.loads(body)["metadata"]["name"] == "split"
    await raw.close()


async def test_bad_input_and_auth_keep_their_status_on_the_lean_path(server: RunningServer) -> None:
    raw = await connect(server)
    raw.writer.write(raw.request("POST", POD, b"{not json"))
    status, _, body = await raw.response()
    assert status == 400 and "not valid JSON" in json.loads(body)["message"]
    raw.writer.write(raw.request("POST", POD, json.dumps({"kind": "Pod", "metadata": {"name": "Bad_Name"}}).encode()))
    status, _, body = await raw.response()
    assert status == 422 and "metadata.name" in json.loads(body)["message"]
    raw.writer.write(b"GET " + POD.encode() + b" HTTP/1.1\r\nHost: test\r\n\r\n")  # no token
    status, _, body = await raw.response()
    assert status == 401 and json.loads(body)["kind"] == "Status"
    await raw.close()


async def test_watch_after_a_create_hands_the_connection_to_aiohttp(server: RunningServer) -> None:
    raw = await connect(server)
    # a create, then (pipelined in the same write) a watch from before it: aiohttp serves the watch
    raw.writer.write(raw.request("POST", POD, pod_body("w-1")) + raw.request("GET", POD + "?watch=true&resourceVersion=1"))
    status, _, body = await raw.response()
    assert status == 201, body
    status, headers, _ = await raw.response()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    seen: list[Any] = []
    while not any(e["object"]["metadata"]["name"] == "w-1" for e in seen):
        seen += [json.loads(line) for line in (await raw.chunk()).splitlines()]
    await raw.close()


async def test_unusual_requests_are_served_by_aiohttp(server: RunningServer) -> None:
    raw = await connect(server)
    # chunked request body
    body = pod_body("chunked")
    raw.writer.write(raw.request("POST", POD, headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
                     + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    status, _, reply = await raw.response()
    assert status == 201 and json.loads(reply)["metadata"]["name"] == "chunked"
    await raw.close()
    raw = await connect(server)
    raw.writer.write(raw.request("GET", POD + "/chunked", version="HTTP/1.0"))
    status, _, reply = await raw.response()
    assert status == 200 and json.loads(reply)["metadata"]["name"] == "chunked"
    await raw.close()


def test_which_requests_the_lean_front_serves() -> None:
    assert lean_eligible("POST", POD, "")
    assert lean_eligible("GET", POD + "/x", "")
    assert lean_eligible("PATCH", "/apis/corral.dev/v1alpha1/namespaces/a/podgroups/g", "fieldManager=x")
    assert not lean_eligible("GET", POD, "watch=true")
    assert not lean_eligible("GET", POD + "/x/log", "")
    assert not lean_eligible("GET", "/api/v1/watch/pods", "")
    assert not lean_eligible("GET", "/metrics", "")
    assert not lean_eligible("GET", "/openapi/v3", "")


async def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False, keepalive_timeout=0.4) as running:
        idle = await connect(running)
        idle.writer.write(idle.request("GET", POD))
        assert (await idle.response())[0] == 200
        active = await connect(running)
        for _ in range(8):  # keeps talking for ~0.8 s, twice the timeout: never idle that long
            active.writer.write(active.request("GET", POD))
            assert (await active.response())[0] == 200
            await asyncio.sleep(0.1)
        assert await asyncio.wait_for(idle.reader.read(), 2) == b"", "the idle connection was closed"
        active.writer.write(active.request("GET", POD))
        assert (await active.response())[0] == 200
        await active.close()
        await idle.close()
