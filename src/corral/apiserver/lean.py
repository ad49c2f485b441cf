"""A lean HTTP/1.1 front for the API server's hot requests, with aiohttp behind it for the rest.

Why: aiohttp's request machinery (protocol, parser task, application, router,
middleware, ``Response.prepare``) costs more CPU per request than a pod create's own
work (checks, defaults, validation, store). On a 2-core machine that caps the server
far below what the store can do. This front accepts every connection itself and serves
the plain requests the control plane makes in bulk — get, list, create, update, patch,
delete and the subresources on ``/api/…`` and ``/apis/…`` — with a few lines of parsing
and one socket write per response, running the very same handlers (they see a
:class:`LeanRequest`, which has the few attributes of ``aiohttp.web.Request`` they use).

Everything else is **handed over to aiohttp** on the same connection, with the bytes
received so far: watches and ``pods/log`` (streams), discovery, OpenAPI, ``/metrics``,
the dashboard, HTTP/1.0, chunked or large (> 64 KiB) bodies, ``Expect``, ``Upgrade``.
From then on aiohttp owns that connection. A client (kubectl, the official client)
therefore gets exactly aiohttp's behaviour for anything unusual, and the lean code
only has to be right for the simple shape it accepts.

Requests on one connection are answered in order, one at a time, as HTTP/1.1 requires;
pipelined requests wait in the buffer (reading pauses past :data:`MAX_BUFFER`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Literal, cast
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict

from corral.apiserver.errors import ApiError
from corral.apiserver.paths import route_path

MAX_LEAN_BODY = 64 * 1024
"""Bodies larger than this (and every chunked body) go to aiohttp, which enforces the 3 MiB limit."""
MAX_BUFFER = 4 * 1024 * 1024
"""Unprocessed bytes per connection before reading pauses."""
MAX_HEAD = 64 * 1024
LEAN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
HANDED_OVER_HEADERS = ("transfer-encoding", "expect", "upgrade")
REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict", 410: "Gone",
           413: "Request Entity Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Entity",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class LeanRequest:
    """The part of ``aiohttp.web.Request`` the handlers use, for a request read by :class:`LeanProtocol`."""

    __slots__ = ("_body", "_query", "_state", "headers", "method", "path", "query_string", "raw_path", "transport")

    def __init__(self, method: str, path: str, query_string: str, headers: CIMultiDict[str], body: bytes,  # noqa: PLR0917
                 transport: asyncio.BaseTransport | None, raw_path: str | None = None) -> None:
        self.method = method
        self.path = path
        self.raw_path = path if raw_path is None else raw_path  # as received: what the server's checks start from
        self.query_string = query_string
        self.headers = headers
        self._body = body
        self._query: dict[str, str] | None = None
        self._state: dict[Any, Any] = {}
        self.transport = transport

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (the first value of a repeated one, as ``MultiDict.get`` gives)."""
        if self._query is None:
            query: dict[str, str] = {}
            if not self.query_string:
                self._query = query
                return query
            for key, value in parse_qsl(self.query_string, keep_blank_values=True):
                query.setdefault(key, value)
            self._query = query
        return self._query

    @property
    def host(self) -> str:
        return str(self.headers.get("host", ""))

    @property
    def content_type(self) -> str:
        raw = self.headers.get("content-type")
        if not raw:
            return "application/octet-stream"
        return str(raw).split(";", 1)[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        return len(self._body) if self._body or "content-length" in self.headers else None

    @property
    def body_exists(self) -> bool:
        return bool(self._body)

    async def read(self) -> bytes:
        return self._body

    def __getitem__(self, key: Any) -> Any:
        return self._state[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._state[key] = value

    def get(self, key: Any, default: Any = None) -> Any:
        return self._state.get(key, default)


Dispatch = Callable[[LeanRequest], Awaitable[web.StreamResponse]]


def serialize(response: web.StreamResponse, keep_alive: bool) -> bytes:
    """The bytes of a complete (non-streaming) aiohttp ``Response``."""
    if not isinstance(response, web.Response):
        raise TypeError(f"the lean front cannot send a streaming response ({type(response).__name__})")
    body = response.body
    if body is None:
        data = b""
    elif isinstance(body, (bytes, bytearray)):
        data = bytes(body)
    else:
        raise TypeError(f"the lean front cannot send a body of type {type(body).__name__}")
    status = response.status
    lines = [f"HTTP/1.1 {status} {REASONS.get(status) or response.reason}"]
    for name, value in response.headers.items():
        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
            lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(data)}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


class LeanFront:
    """Accepts connections; serves lean requests through ``dispatch``; hands the rest to ``fallback``.

    ``fallback`` is aiohttp's protocol factory (``web.Server``), so a handed-over connection
    is an ordinary aiohttp connection.
    """

    def __init__(self, dispatch: Dispatch, fallback: Callable[[], asyncio.Protocol],
                 eligible: Callable[[str, str, str], bool], idle_timeout: float = 75.0) -> None:
        self.dispatch = dispatch
        self.fallback = fallback
        self.eligible = eligible
        self.idle_timeout = idle_timeout  # aiohttp's keep-alive timeout, for the same clients
        self.connections: set[LeanProtocol] = set()
        self.requests = 0
        self.handed_over = 0
        self.idle_closed = 0
        self._sweeper: asyncio.TimerHandle | None = None

    def __call__(self) -> LeanProtocol:
        return LeanProtocol(self)

    def watch_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make sure a sweep is scheduled (one timer for every connection, not one per request)."""
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.idle_timeout / 4, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeper = None
        deadline = loop.time() - self.idle_timeout
        for connection in list(self.connections):
            if not connection.busy and connection.last_io < deadline:
                self.idle_closed += 1
                connection.close()
        if self.connections:
            self.watch_idle(loop)

    def close_all(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self.connections):
            connection.close()


class LeanProtocol(asyncio.Protocol):
    """One connection: parse, serve in order, or hand over to aiohttp."""

    def __init__(self, front: LeanFront) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.task: asyncio.Task[None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.eof = False
        self.done = False  # closed or handed over
        self.busy = False  # a request is being served: never idle, however long it takes
        self.last_io = 0.0
        self.loop: asyncio.AbstractEventLoop | None = None

    # ---- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.front.connections.add(self)
        self.loop = loop = asyncio.get_running_loop()
        self.last_io = loop.time()
        self.front.watch_idle(loop)
        self.task = loop.create_task(self.serve())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.loop is not None:
            self.last_io = self.loop.time()
        if len(self.buffer) > MAX_BUFFER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        """The client half-closed. Over plain TCP keep our side open (``True``) until the responses in
        progress are written. TLS cannot be half-closed: asyncio's SSL transport closes after a
        close_notify whatever this returns (and logs a warning for each ``True``), so say so: ``False``."""
        self.eof = True
        self._wake()
        return self.transport is None or self.transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        self.eof = True
        if not self.done and self.task is not None and not self.task.done():
            self.task.cancel()
        self.done = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        if self.transport is not None and not self.done:
            self.done = True
            self.transport.close()

    # ---- serving ---------------------------------------------------------------------

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self.done:
                parsed = self._next_request()
                if parsed is None:  # need more bytes
                    if self.eof:
                        self.close()
                        return
                    if self.paused and self.transport is not None:
                        self.paused = False
                        self.transport.resume_reading()
                    self.waiter = loop.create_future()
                    await self.waiter
                    self.waiter = None
                    continue
                if parsed is False:
                    self._hand_over()
                    return
                request, keep_alive = parsed
                self.front.requests += 1
                self.busy = True
                try:
                    response = await self.front.dispatch(request)
                finally:
                    self.busy = False
                if self.done or self.transport is None:
                    return
                self.transport.write(serialize(response, keep_alive))
                self.last_io = loop.time()
                if not keep_alive:
                    self.close()
                    return
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug here must not leave the client hanging
            self.close()
            raise

    def _next_request(self) -> tuple[LeanRequest, bool] | Literal[False] | None:
        """The next complete lean request; ``None`` if incomplete; ``False`` to hand over."""
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return False if len(buffer) > MAX_HEAD else None
        head = buffer[:end].decode("latin-1")
        request_line, _, header_text = head.partition("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or parts[2] != "HTTP/1.1" or parts[0] not in LEAN_METHODS:
            return False
        method, target = parts[0], parts[1]
        raw_path, _, query_string = target.partition("?")
        try:
            path = route_path(raw_path)  # the same canonical path aiohttp's middleware decides on
        except ApiError:
            return False  # aiohttp answers it (400) through the same middleware
        if not self.front.eligible(method, path, query_string):
            return False
        pairs = []
        for line in header_text.split("\r\n") if header_text else ():
            name, sep, value = line.partition(":")
            if not sep or not name or name[-1] in " \t":
                return False
            pairs.append((name, value.strip()))
        headers = CIMultiDict(pairs)
        if any(name in headers for name in HANDED_OVER_HEADERS):
            return False
        length_text = headers.get("content-length")
        length = 0
        if length_text is not None:
            if not length_text.isdigit():
                return False
            length = int(length_text)
            if length > MAX_LEAN_BODY:
                return False
        start = end + 4
        if len(buffer) < start + length:
            return None
        body = bytes(buffer[start:start + length])
        del buffer[:start + length]
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection
        return LeanRequest(method, path, query_string, headers, body, self.transport, raw_path), keep_alive

    def _hand_over(self) -> None:
        """Give this connection, and every byte not yet served, to aiohttp."""
        transport = self.transport
        self.done = True
        self.front.connections.discard(self)
        if transport is None or transport.is_closing():
            return
        self.front.handed_over += 1
        protocol = self.front.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        data = bytes(self.buffer)
        self.buffer.clear()
        if data:
            protocol.data_received(data)
        if self.eof:
            with contextlib.suppress(Exception):
                protocol.eof_received()
        if self.paused:
            transport.resume_reading()
