"""Bindings over lean persistent HTTP/1.1 connections (the scheduler's hot write path).

Every pod the scheduler places costs one ``POST pods/binding``. Through the general
client (aiohttp) each request costs a few hundred microseconds of the scheduler's CPU
(request and response objects, header multidicts, timeouts, tracing hooks); at thousands
of pods per second that is a large share of the scheduler process. :class:`HttpBinder`
writes the same request — same path, same ``Binding`` body with ``corral.dev/gpu-devices``,
same bearer token and TLS context as the client — as bytes on a pool of keep-alive
connections it owns, and reads back only the status line, the headers it needs and the
body. One request is in flight per connection (the API server commits writes in groups, so
bindings gain from running side by side on separate connections rather than pipelined on
one); connections are reused LIFO and opened on demand up to the concurrency the caller
allows (``bindConcurrency``).

Failures look as they do through the client: a non-2xx answer raises
:class:`~corral.client.ApiError` from the server's ``Status``; a connection that breaks
raises ``OSError`` (the service retries bindings that fail that way, reservation kept).
The service falls back to the client's ``bind`` when the server URL is neither ``http``
nor ``https``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import quote, urlsplit

from corral.client import ApiClient, ApiError
from corral.scheduler.cycle import Binding
from corral.scheduler.pods import GPU_DEVICES_ANNOTATION, meta
from corral.util import fastjson

MAX_BODY = 16 << 20


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    async def roundtrip(self, request: bytes) -> tuple[int, bytes, bool]:
        """``(status, body, keep_alive)`` for one request."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise OSError(f"bad HTTP status line {lines[0]!r}")
        code = int(parts[1])
        length = -1
        chunked = False
        keep_alive = parts[0] == "HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection":
                keep_alive = value.strip().lower() == "keep-alive" or (keep_alive and value.strip().lower() != "close")
        if chunked:
            body = await self._read_chunked()
        elif length >= 0:
            if length > MAX_BODY:
                raise OSError(f"response body of {length} bytes")
            body = await self.reader.readexactly(length) if length else b""
        else:  # no framing: the body runs to the end of the connection
            body = await self.reader.read(MAX_BODY)
            keep_alive = False
        return code, body, keep_alive

    async def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # trailers end with an empty line
                while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(out)
            out += await self.reader.readexactly(size)
            await self.reader.readexactly(2)
            if len(out) > MAX_BODY:
                raise OSError("chunked response body too large")


class HttpBinder:
    """The Bind extension point on connections of its own (see the module docstring)."""

    def __init__(self, server: str, token: str | None = None, *, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 30.0) -> None:
        url = urlsplit(server)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{server}: not an http(s) URL")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if url.scheme == "https":
            self.ssl = ssl_context or ssl.create_default_context()
        self.prefix = url.path.rstrip("/")
        host_header = url.netloc.rpartition("@")[2]
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self._headers = (f"Host: {host_header}\r\nUser-Agent: corral-scheduler\r\nAccept: application/json\r\n"
                         f"Content-Type: application/json\r\n{auth}")
        self.timeout = timeout
        self._idle: list[_Conn] = []
        self.opened = 0

    @classmethod
    def for_client(cls, client: ApiClient) -> HttpBinder:
        """Same server, token and TLS context as ``client``."""
        # the client keeps its identity private and opens its session lazily (inside a running
        # loop); read the same token and TLS context without opening one
        token = getattr(client, "_token", None)
        context = getattr(client, "_ssl", None)
        return cls(client.server, token if isinstance(token, str) else None,
                   ssl_context=context if isinstance(context, ssl.SSLContext) else None)

    def request_bytes(self, binding: Binding) -> bytes:
        metadata: dict[str, object] = {"name": binding.name, "namespace": binding.namespace}
        if binding.devices:
            metadata["annotations"] = {GPU_DEVICES_ANNOTATION: binding.devices}
        uid = meta(binding.pod).get("uid")
        if uid:
            metadata["uid"] = uid
        body = fastjson.dumps({"apiVersion": "v1", "kind": "Binding", "metadata": metadata,
                               "target": {"apiVersion": "v1", "kind": "Node", "name": binding.node}})
        path = (f"{self.prefix}/api/v1/namespaces/{quote(binding.namespace, safe='')}/pods/"
                f"{quote(binding.name, safe='')}/binding")
        return (f"POST {path} HTTP/1.1\r\n{self._headers}Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def _open(self) -> _Conn:
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=MAX_BODY)
        self.opened += 1
        return _Conn(reader, writer)

    async def bind(self, binding: Binding) -> None:
        request = self.request_bytes(binding)
        conn = self._idle.pop() if self._idle else None
        fresh = conn is None
        for attempt in range(2):
            if conn is None:
                conn = await self._open()
            try:
                async with asyncio.timeout(self.timeout):
                    code, body, keep_alive = await conn.roundtrip(request)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
                conn.close()
                conn = None
                if fresh or attempt:
                    raise OSError(f"binding {binding.key}: {error}") from None
                # a kept-alive connection the server had closed: retry once on a new one
                fresh = True
                continue
            except BaseException:
                conn.close()
                raise
            if keep_alive:
                self._idle.append(conn)
            else:
                conn.close()
            if code >= 300:
                try:
                    decoded: object = fastjson.loads(body) if body else None
                except ValueError:
                    decoded = body.decode(errors="replace")
                raise ApiError.from_status(code, decoded)
            return

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()
