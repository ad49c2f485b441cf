"""Clients that half-close their side: answered over plain TCP, and no asyncio warning over TLS.

``corral up``'s log was flooded with asyncio's "returning true from eof_received() has no
effect when using ssl": the lean front asked to keep every half-closed connection open,
which TLS cannot do. These tests run a real server and real sockets and read the log.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from corral.testing.apiserver import running_apiserver


def request(token: str) -> bytes:
    return (f"GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Accept: application/json\r\n\r\n").encode()


def read_response(read: socket.socket | ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + int(
            data.split(b"Content-Length: ")[1].split(b"\r\n")[0]):
        chunk = read.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def tls_client_half_closes(host: str, port: int, token: str, context: ssl.SSLContext) -> list[bytes]:
    answers = []
    for _ in range(5):
        with socket.create_connection((host, port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(request(token))
            answers.append(read_response(tls))
            tls.unwrap()  # close_notify: the TLS way to say "no more from me"
    return answers


def tcp_client_half_closes(host: str, port: int, token: str) -> bytes:
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(request(token))
        raw.shutdown(socket.SHUT_WR)  # half-close before the answer comes
        return read_response(raw)


async def test_tls_clients_that_half_close_leave_no_asyncio_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    async with running_apiserver(tmp_path) as server:
        context = server.ssl_context()
        assert context is not None
        url = urlsplit(server.url)
        assert url.hostname is not None and url.port is not None
        answers = await asyncio.to_thread(tls_client_half_closes, url.hostname, url.port, server.token, context)
        await asyncio.sleep(0.2)  # let the server see each close_notify
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
    noise = [r.getMessage() for r in caplog.records if "eof_received" in r.getMessage()]
    assert noise == []


async def test_a_tcp_client_that_half_closes_still_gets_its_answer(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server:
        url = urlsplit(server.url)
        assert url.hostname is not None and url.port is not None
        answer = await asyncio.to_thread(tcp_client_half_closes, url.hostname, url.port, server.token)
    assert answer.startswith(b"HTTP/1.1 200") and b'"kind":"PodList"' in answer
