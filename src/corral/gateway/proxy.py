"""The gateway's wire level: HTTP/1.1 on raw asyncio protocols, parsed by httptools.

Why not aiohttp's web server and client here: a reverse proxy does little per
request, so the framework's request/response objects, header multidicts and
middleware dominate its cost. This module keeps only what a proxy needs:

- :class:`ClientConnection` — one per downstream (client) connection. llhttp
  (through httptools) parses requests; the body is buffered up to the route's
  limit (routing by the OpenAI ``model`` field and retries need it) and then
  handed, with the raw header list, to the gateway's ``dispatch`` function,
  which calls :meth:`ClientConnection.finished` once the answer is complete.
  Requests on one connection are answered in order (pipelining is queued),
  HTTP/1.0 keep-alive (``ab -k``) and ``Expect: 100-continue`` are honoured.
- :class:`Upstream` — one pooled keep-alive connection to a replica. It tells a
  :class:`Waiter` (the gateway's exchange, or a future on the slow path) how the
  exchange ended. It writes
  the request in one piece and relays the response *as it is parsed*: the
  header block (hop-by-hop headers replaced by this hop's framing) and every
  body piece are written to the client transport in one write per read, so
  chunked and server-sent-event responses pass through chunk by chunk and
  fixed-length answers are never copied into a Python-level buffer. When the
  client stops reading, the replica's socket stops being read too
  (``pause_writing`` → ``pause_reading``).
- :class:`Pool` — idle upstream connections per ``host:port``, closed after
  ``idle_timeout`` (shorter than common servers' keep-alive timeouts, so a
  replica rarely closes a connection the gateway is about to reuse).

Framing towards the client: the replica's ``Content-Length`` when it sent one;
otherwise chunked (HTTP/1.1 clients) or close-delimited (HTTP/1.0 clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote

import httptools

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection", b"te",
    b"trailers", b"transfer-encoding", b"upgrade", b"host", b"content-length", b"expect",
})
MAX_PIPELINED = 16
METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")}
STATUS_PHRASES = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
                  413: b"Request Entity Too Large", 501: b"Not Implemented", 502: b"Bad Gateway",
                  503: b"Service Unavailable", 504: b"Gateway Timeout"}


class Request:
    """One parsed client request (raw bytes where the proxy only forwards them)."""

    __slots__ = ("body", "body_size", "candidates", "content_length", "discard", "expect_continue", "headers",
                 "host", "http11", "keep_alive", "limit", "method", "path", "query", "raw_path", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.method = ""
        self.raw_path = ""
        self.path = ""
        self.query = ""
        self.host = ""
        self.http11 = True
        self.keep_alive = True
        self.content_length: int | None = None
        self.expect_continue = False
        self.limit = 0
        self.discard = False
        """The body exceeds ``limit``: it is read and dropped, and the answer is 413."""
        self.candidates: Any = None

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


Dispatch = Callable[["ClientConnection", Request], None]
"""Starts answering one request; whoever answers calls ``connection.finished(keep)`` when done."""
HeadersHook = Callable[[Request], None]
"""Called when a request's headers are complete: sets ``request.limit`` (body bytes allowed)."""


class Waiter(Protocol):
    """Told how a relayed exchange ended (by :class:`Upstream`)."""

    def done(self, status: int, keep: bool) -> None: ...

    def fail(self, error: UpstreamError) -> None: ...


def simple_response(status: int, body: bytes, *, content_type: bytes = b"application/json",
                    headers: dict[str, str] | None = None, keep_alive: bool = True, http11: bool = True) -> bytes:
    """A complete response with a fixed-length body."""
    lines = [b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
             % (status, STATUS_PHRASES.get(status, b"Unknown"), content_type, len(body))]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    elif not http11:
        lines.append(b"Connection: keep-alive\r\n")
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)


class ClientConnection(asyncio.Protocol):
    """A downstream connection: parses requests and runs the handler for each, in order."""

    def __init__(self, dispatch: Dispatch, on_headers: HeadersHook, connections: set[ClientConnection]) -> None:
        self._dispatch = dispatch
        self._on_headers = on_headers
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._request: Request | None = None
        self._pending: deque[Request] = deque()
        self._busy = False
        self._current: Request | None = None
        self.task: asyncio.Task[None] | None = None
        """The coroutine answering the current request (slow path), cancelled if the client goes."""
        self.exchange: Any = None
        """The exchange relaying the current answer (fast path); its ``cancel()`` runs if the client goes."""
        self._reading_paused = False
        self._final: bytes | None = None
        """An error answer owed after the requests in progress (the connection then closes)."""
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.closed = False
        self.write_paused = False
        self.feeding: Upstream | None = None
        """The upstream connection whose response is being relayed here (for flow control)."""
        self._last_headers: list[tuple[bytes, bytes]] | None = None
        self._last_meta: tuple[str, int | None, bool] = ("", None, False)
        self._last_url = b""
        self._last_url_parts = ("", "", "")
        self._header_list: list[tuple[bytes, bytes]] = []
        self.upstream_block: bytes | None = None
        """The forwarded header block built for ``_last_headers`` (the gateway's cache, reset with it)."""
        self.upstream_rest = b""
        """``upstream_block`` ending the head (no body)."""
        self.last_line: tuple[bytes, str, Any, bytes] | None = None
        """The gateway's cache of the last upstream request line: (url, method, route, line)."""

    # ---- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else ""
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._connections.discard(self)
        if self.task is not None:
            # Soon, not now: the task's first step (already scheduled) runs before, so its own
            # bookkeeping (slots, metrics) is always undone by its finally clauses.
            asyncio.get_running_loop().call_soon(self.task.cancel)
        if self.exchange is not None:
            self.exchange.cancel()

    def data_received(self, data: bytes) -> None:
        if self._final is not None:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(501, "Upgrade (websockets) is not supported by the gateway")
        except httptools.HttpParserError as error:
            self._fail(400, f"malformed HTTP request: {error}")

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.feeding is not None and self.feeding.transport is not None:
            self.feeding.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.feeding is not None and self.feeding.transport is not None:
            self.feeding.transport.resume_reading()

    # ---- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._request = request = Request()
        self._header_list = request.headers

    def on_url(self, url: bytes) -> None:
        assert self._request is not None
        self._request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name, value))

    def on_headers_complete(self) -> None:
        request = self._request
        assert request is not None
        parser = self._parser
        method = parser.get_method()
        request.method = METHODS.get(method) or method.decode("ascii", "replace")
        request.http11 = parser.get_http_version() == "1.1"
        request.keep_alive = parser.should_keep_alive()
        headers = request.headers
        if headers == self._last_headers:  # a keep-alive client tends to send the same headers again
            request.host, request.content_length, request.expect_continue = self._last_meta
        else:
            for name, value in headers:
                low = name.lower()
                if low == b"host":
                    request.host = value.decode("latin-1")
                elif low == b"content-length":
                    with contextlib.suppress(ValueError):
                        request.content_length = int(value)
                elif low == b"expect" and value.lower() == b"100-continue":
                    request.expect_continue = True
            self._last_headers = headers
            self._last_meta = (request.host, request.content_length, request.expect_continue)
            self.upstream_block = None
        url = request.url
        if url == self._last_url:
            request.raw_path, request.path, request.query = self._last_url_parts
        else:
            path, sep, query = url.decode("latin-1").partition("?")
            request.raw_path = path
            request.path = unquote(path) if "%" in path else path
            request.query = query if sep else ""
            self._last_url = url
            self._last_url_parts = (request.raw_path, request.path, request.query)
        self._on_headers(request)
        if request.content_length is not None and request.content_length > request.limit:
            request.discard = True
            if request.expect_continue:  # refuse before the client sends the body
                self._fail(413, f"request body of {request.content_length} bytes exceeds this route's "
                                f"maxBodyBytes ({request.limit})")
                return
        elif request.expect_continue and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        request = self._request
        assert request is not None
        request.body_size += len(body)
        if request.discard:
            return
        if request.body_size > request.limit:
            request.discard = True
            request.body.clear()
            return
        request.body.append(body)

    def on_message_complete(self) -> None:
        request = self._request
        self._request = None
        if request is None or self.closed or self._final is not None:
            return
        if self._busy:
            self._pending.append(request)
            if len(self._pending) >= MAX_PIPELINED and self.transport is not None:
                self._reading_paused = True
                self.transport.pause_reading()
        else:
            self._busy = True
            self._current = request
            self._dispatch(self, request)

    # ---- answering --------------------------------------------------------------------------

    def finished(self, keep: bool) -> None:
        """The answer to the current request is complete: go on with the next one, or close."""
        self.task = None
        self.exchange = None
        current = self._current
        if not keep or current is None or not current.keep_alive or self.closed:
            self._busy = False
            self._current = None
            self.close()
            return
        if self._pending:
            request = self._pending.popleft()
            if self._reading_paused and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            self._current = request
            self._dispatch(self, request)
            return
        self._busy = False
        self._current = None
        if self._final is not None:
            self.write(self._final)
            self.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, status: int, message: str) -> None:
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status,
                           "reason": "BadRequest" if status == 400 else "RequestEntityTooLarge" if status == 413
                           else "NotImplemented", "message": message}).encode()
        self._request = None
        answer = simple_response(status, body, keep_alive=False)
        if not self._busy:
            self.write(answer)
            self.close()
        else:  # answer after the requests already in progress, then close
            self._final = answer
            if self.transport is not None:
                self.transport.pause_reading()


class UpstreamError(Exception):
    """The replica connection failed; ``before_send``: the replica cannot have seen the request."""

    def __init__(self, reason: str, *, before_send: bool, responded: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.before_send = before_send
        self.responded = responded
        """Part of the response already reached the client (nothing more can be sent)."""


class Upstream(asyncio.Protocol):
    """One keep-alive connection to a replica; relays one response at a time to a client."""

    def __init__(self, pool: Pool, address: str) -> None:
        self.pool = pool
        self.address = address
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.client: ClientConnection | None = None
        self.waiter: Waiter | None = None
        self.idle_since = 0.0
        self.reusable = True
        self._head = False
        self._client_keep = True
        self._client_http11 = True
        self.started = False
        self.status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._out: list[bytes] = []
        self._chunked = False
        self._until_close = False
        self._done = False
        self._last_headers: list[tuple[bytes, bytes]] | None = None
        self._last_mode: tuple[int, bytes, bool, bool, bool] | None = None
        self._last_head = b""
        self._last_framing = (False, False, True)

    # ---- use ------------------------------------------------------------------------------

    def send(self, client: ClientConnection, request: Request, data: bytes, waiter: Waiter) -> None:
        """Write one request; ``waiter`` is told when the whole response was relayed (or failed)."""
        self.client = client
        self.waiter = waiter
        self._head = request.method == "HEAD"
        self._client_keep = request.keep_alive
        self._client_http11 = request.http11
        self.started = False
        self._done = False
        self._chunked = False
        self._until_close = False
        self._headers = []
        self._out = []
        assert self.transport is not None
        self.transport.write(data)

    # ---- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing asked: a replica talking out of turn
            self.reusable = False
            if self.transport is not None:
                self.transport.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._flush()
            self._fail(UpstreamError(f"malformed response from the replica: {error}", before_send=False,
                                     responded=self.started))
            return
        self._flush()
        if self._done:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self.pool.forget(self)
        if self.waiter is None:
            return
        if self.started and self._until_close:  # the end of a close-delimited response
            if self._chunked:
                self._out.append(b"0\r\n\r\n")
            self._flush()
            self._finish()
            return
        self._flush()
        self._fail(UpstreamError(f"connection lost: {exc or 'closed by the replica'}", before_send=False,
                                 responded=self.started))

    def pause_writing(self) -> None:  # the replica reads slowly; the request is small — nothing to do
        pass

    def resume_writing(self) -> None:
        pass

    # ---- httptools callbacks ----------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        self._reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 1xx interim answers are not relayed
            self._headers = []
            return
        self.status = status
        client = self.client
        assert client is not None
        headers = self._headers
        mode = (status, self._reason, self._head, self._client_http11, self._client_keep)
        if headers == self._last_headers and mode == self._last_mode:
            # Replicas tend to answer with the same headers again (until the Date changes): the
            # head built last time, with its framing, serves as it is.
            self._out = [self._last_head]
            self._chunked, self._until_close, self._client_keep = self._last_framing
        else:
            self._out = [self._build_head(status, headers)]
            self._last_headers = headers
            self._last_mode = mode
            self._last_framing = (self._chunked, self._until_close, self._client_keep)
            self._last_head = self._out[0]
        self.started = True
        client.feeding = self
        if client.write_paused and self.transport is not None:
            self.transport.pause_reading()
        if self._head:  # no body follows, whatever the headers say; do not reuse the connection
            self.reusable = False
            self._done = True

    def _build_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The response head for the client: the replica's headers less hop-by-hop ones, plus framing."""
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, self._reason)]
        length: bytes | None = None
        upstream_chunked = False
        for name, value in headers:
            low = name.lower()
            if low in HOP_BY_HOP:
                if low == b"content-length":
                    length = value
                elif low == b"transfer-encoding":
                    upstream_chunked = True
                continue
            lines.append(b"%s: %s\r\n" % (name, value))
        no_body = self._head or status in (204, 304)
        if length is not None and status != 204:
            lines.append(b"Content-Length: %s\r\n" % length)
        elif not no_body:
            self._until_close = not upstream_chunked
            if self._client_http11:
                self._chunked = True
                lines.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self._client_keep = False  # close-delimited towards an HTTP/1.0 client
        if not self._client_keep:
            lines.append(b"Connection: close\r\n")
        elif not self._client_http11:
            lines.append(b"Connection: keep-alive\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def on_body(self, body: bytes) -> None:
        if self._head:
            return
        if self._chunked:
            self._out.append(b"%x\r\n" % len(body))
            self._out.append(body)
            self._out.append(b"\r\n")
        else:
            self._out.append(body)

    def on_message_complete(self) -> None:
        if not self.started:  # the end of a 1xx answer
            return
        if self._chunked:
            self._out.append(b"0\r\n\r\n")
        if not self._parser.should_keep_alive():  # read now: llhttp resets it for the next message
            self.reusable = False
        self._done = True

    # ---- internals -------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._out:
            out = self._out
            self._out = []
            client = self.client
            if client is not None:
                client.write(out[0] if len(out) == 1 else b"".join(out))

    def _detach(self) -> Waiter | None:
        """Let go of the exchange's client and waiter; returns the waiter to tell."""
        waiter = self.waiter
        client = self.client
        self.waiter = None
        self.client = None
        if client is not None and client.feeding is self:
            client.feeding = None
        return waiter

    def _finish(self) -> None:
        waiter = self._detach()
        if self.reusable and self._done:
            self.pool.put(self)
        else:
            self.close()
        if waiter is not None:
            waiter.done(self.status, self._client_keep)

    def _fail(self, error: UpstreamError) -> None:
        waiter = self._detach()
        self.close()
        if waiter is not None:
            waiter.fail(error)

    def cancel(self) -> None:
        """Give up the exchange in progress (timeout, client gone): the connection is not reusable."""
        self.waiter = None
        client = self.client
        self.client = None
        if client is not None and client.feeding is self:
            client.feeding = None
        self.close()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle keep-alive connections to replicas, per ``host:port``."""

    def __init__(self, *, connect_timeout: float = 5.0, idle_timeout: float = 4.0, max_idle: int = 256) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: dict[str, list[Upstream]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def take(self, address: str) -> Upstream | None:
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()
            if connection.transport is not None and not connection.transport.is_closing():
                return connection
        return None

    async def connect(self, address: str) -> Upstream:
        host, _, port = address.rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: Upstream(self, address), host, int(port)), self.connect_timeout)
        except (OSError, TimeoutError) as error:
            raise UpstreamError(f"connect: {error}", before_send=True) from error
        return protocol

    def put(self, connection: Upstream) -> None:
        idle = self._idle.setdefault(connection.address, [])
        if len(idle) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)
        if self._sweeper is None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(self.idle_timeout, self._sweep)

    def forget(self, connection: Upstream) -> None:
        idle = self._idle.get(connection.address)
        if idle and connection in idle:
            idle.remove(connection)

    def _sweep(self) -> None:
        self._sweeper = None
        cutoff = time.monotonic() - self.idle_timeout
        left = False
        for address, idle in list(self._idle.items()):
            keep = []
            for connection in idle:
                if connection.idle_since <= cutoff:
                    connection.close()
                else:
                    keep.append(connection)
            if keep:
                self._idle[address] = keep
                left = True
            else:
                del self._idle[address]
        if left:
            self._sweeper = asyncio.get_running_loop().call_later(self.idle_timeout / 2, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
