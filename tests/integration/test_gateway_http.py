"""The gateway's HTTP/1.1 handling on the wire: raw sockets against a real gateway and replica process."""

from __future__ import annotations

import asyncio
import json

from corral.gateway.server import Gateway
from tests.integration.inference_support import backends, pod, service

STRIP = {"pathPrefix": "/v1/models/svc", "stripPrefix": True}


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(p[:-2] for p in parts)
    elif status in (100, 204, 304):
        body = b""
    else:
        body = await asyncio.wait_for(reader.read(), 10)  # close-delimited
    return status, headers, body


async def started(backend_port: int, **gateway: object) -> Gateway:
    gw = Gateway(seed=1)
    await gw.start()
    gw.set_objects([service("svc", route=STRIP, gateway=gateway or None)], [pod("p", "svc", "r1", backend_port)])
    return gw


async def test_keep_alive_http10_pipelining_head_and_pooled_upstream_connections() -> None:
    with backends() as group:
        replica = await group.start("a")
        gw = await started(replica.port)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            # HTTP/1.0 keep-alive, as `ab -k` speaks it: two answers on one connection.
            for _ in range(2):
                writer.write(b"GET /v1/models/svc/x HTTP/1.0\r\nHost: gw\r\nConnection: Keep-Alive\r\n\r\n")
                status, headers, body = await read_response(reader)
                assert status == 200 and headers["connection"].lower() == "keep-alive"
                assert json.loads(body)["path"] == "/x"
            # Pipelined HTTP/1.1 requests are answered in order.
            writer.write(b"GET /v1/models/svc/one HTTP/1.1\r\nHost: gw\r\n\r\n"
                         b"POST /v1/models/svc/two HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc"
                         b"HEAD /v1/models/svc/three HTTP/1.1\r\nHost: gw\r\n\r\n"
                         b"GET /v1/models/svc/four?q=1 HTTP/1.1\r\nHost: gw\r\n\r\n")
            first = await read_response(reader)
            second = await read_response(reader)
            assert json.loads(first[2])["path"] == "/one"
            assert json.loads(second[2]) == {"replica": "a", "method": "POST", "path": "/two", "model": None,
                                             "bytes": 3}
            # HEAD: the replica's headers (its length included), no body; the connection goes on.
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200") and b"Content-Length" in head
            fourth = await read_response(reader)
            assert json.loads(fourth[2])["path"] == "/four?q=1"
            writer.close()
            await writer.wait_closed()
            # Sequential requests reuse one pooled connection to the replica.
            assert len(gw._pool._idle.get(replica.address, [])) == 1
            assert gw.outstanding == {}
        finally:
            await gw.stop()


async def test_expect_continue_chunked_request_bodies_and_limits() -> None:
    with backends() as group:
        replica = await group.start("a")
        gw = await started(replica.port, maxBodyBytes=1000)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"POST /v1/models/svc/p HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n"
                         b"Expect: 100-continue\r\n\r\n")
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert interim.startswith(b"HTTP/1.1 100")
            writer.write(b"0123456789")
            status, _, body = await read_response(reader)
            assert status == 200 and json.loads(body)["bytes"] == 10
            # A chunked request body is forwarded with its length.
            writer.write(b"POST /v1/models/svc/p HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            status, _, body = await read_response(reader)
            assert status == 200 and json.loads(body)["bytes"] == 11
            # Too large with Expect: refused before the body is sent.
            writer.write(b"POST /v1/models/svc/p HTTP/1.1\r\nHost: gw\r\nContent-Length: 5000\r\n"
                         b"Expect: 100-continue\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert status == 413 and "maxBodyBytes (1000)" in json.loads(body)["message"]
            assert headers["connection"] == "close"
            writer.close()
            await writer.wait_closed()
            # Garbage is a 400, and the connection closes.
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            status, _, body = await read_response(reader)
            assert status == 400 and "malformed" in json.loads(body)["message"]
            writer.close()
            await writer.wait_closed()
        finally:
            await gw.stop()


async def test_chunked_answers_to_http10_clients_are_close_delimited_and_routes_changes_apply_at_once() -> None:
    with backends() as group:
        replica = await group.start("a")
        gw = Gateway(seed=1)
        await gw.start()
        try:
            gw.set_objects([], [])
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"GET /v1/models/svc/stream?n=3&interval=0.01 HTTP/1.1\r\nHost: gw\r\n\r\n")
            status, _, _ = await read_response(reader)
            assert status == 404  # no route yet (and the cached lookup must not outlive the table)
            gw.set_objects([service("svc", route=STRIP)], [pod("p", "svc", "r1", replica.port)])
            writer.write(b"GET /v1/models/svc/stream?n=3&interval=0.01 HTTP/1.1\r\nHost: gw\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert status == 200 and headers["transfer-encoding"] == "chunked"
            assert body == b"chunk 0\nchunk 1\nchunk 2\n"
            writer.close()
            await writer.wait_closed()
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"GET /v1/models/svc/stream?n=3&interval=0.01 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert status == 200 and "transfer-encoding" not in headers and headers["connection"] == "close"
            assert body == b"chunk 0\nchunk 1\nchunk 2\n"
            writer.close()
            await writer.wait_closed()
        finally:
            await gw.stop()


async def test_timeouts_on_pooled_connections_give_504_and_the_connection_is_not_reused() -> None:
    with backends() as group:
        replica = await group.start("a")
        gw = await started(replica.port, timeoutSeconds=0.3)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"GET /v1/models/svc/warm HTTP/1.1\r\nHost: gw\r\n\r\n")
            assert (await read_response(reader))[0] == 200  # now a pooled connection to the replica exists
            for _ in range(2):
                started_at = asyncio.get_running_loop().time()
                writer.write(b"GET /v1/models/svc/sleep?s=2 HTTP/1.1\r\nHost: gw\r\n\r\n")
                status, _, body = await read_response(reader)
                assert status == 504 and "within 0.3s" in json.loads(body)["message"]
                assert asyncio.get_running_loop().time() - started_at < 1.5
            writer.write(b"GET /v1/models/svc/after HTTP/1.1\r\nHost: gw\r\n\r\n")
            status, _, body = await read_response(reader)
            assert status == 200 and json.loads(body)["path"] == "/after"  # not the late answer of a timed-out one
            writer.close()
            await writer.wait_closed()
            feed = gw.metrics.feed()["services"]["default/svc"]
            assert feed["inFlight"] == 0 and feed["completions"] == 4
            assert gw.outstanding == {} and gw._deadlines == {}
        finally:
            await gw.stop()


async def test_large_answers_arrive_whole_and_a_client_leaving_mid_stream_frees_its_slot() -> None:
    with backends() as group:
        big = await group.start("big", "--body-bytes", str(3 * 1024 * 1024))
        gw = await started(big.port)
        try:
            for _ in range(2):  # a new upstream connection, then a pooled one
                reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
                writer.write(b"GET /v1/models/svc/big HTTP/1.1\r\nHost: gw\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                await asyncio.sleep(0.3)  # the client reads late: the gateway must hold back, not lose bytes
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                body = await asyncio.wait_for(reader.readexactly(length), 20)
                assert json.loads(body)["pad"] == "x" * (3 * 1024 * 1024)
                writer.close()
                await writer.wait_closed()
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            writer.write(b"GET /v1/models/svc/sse?n=100&interval=0.05 HTTP/1.1\r\nHost: gw\r\n\r\n")
            await asyncio.wait_for(reader.readuntil(b"data:"), 10)
            assert gw.metrics.feed()["services"]["default/svc"]["inFlight"] == 1
            writer.close()  # mid-stream
            await writer.wait_closed()
            for _ in range(100):
                if gw.metrics.feed()["services"]["default/svc"]["inFlight"] == 0 and not gw.outstanding:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError(f"the request of a client gone stayed in flight: {gw.metrics.feed()}")
        finally:
            await gw.stop()
