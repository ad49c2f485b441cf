"""The inference gateway: a reverse proxy with an activator, on raw asyncio protocols.

The wire level (HTTP/1.1 parsing with httptools, pooled keep-alive upstream
connections, relaying responses as they arrive) is :mod:`corral.gateway.proxy`;
this module decides what happens to each request (``Gateway._handle``):

1. Paths under ``/_corral/`` are the gateway's own (routes, Prometheus metrics,
   the autoscaler feed, health); everything else is proxied.
2. When the headers are complete, the candidate routes for (host, path) come
   from a cache (cleared whenever the table changes), and with them the body
   limit. The body is read up to the route's ``maxBodyBytes`` (413 beyond it,
   saying the limit); only when routing depends on the OpenAI ``model`` field
   is it parsed as JSON — otherwise its bytes are forwarded untouched.
3. The :class:`~corral.gateway.routing.RouteTable` picks the route (404 naming
   host, path and model when none matches) and a revision by traffic share.
4. A replica is chosen by *least outstanding requests* among the revision's
   ready replicas with a free slot (``containerConcurrency``). With none, the
   request waits in the service's bounded queue (503 + ``Retry-After`` when
   ``maxQueuedRequests`` are already waiting). With no ready replica at all
   the request is held by the activator, which asks for a scale-up at once
   (``on_activate``) and forwards as soon as a replica turns ready — the client
   sees a slow first response, not an error.
5. The request is written to a pooled keep-alive connection to the replica; a
   connection that fails before any byte of the response is retried on another
   replica when the request is idempotent (GET/HEAD/OPTIONS/PUT/DELETE, an
   ``Idempotency-Key`` header, or a route that declares its POSTs idempotent) —
   a refused connection is retried for every method, since the replica never
   saw the request.
6. The response streams back piece by piece as the replica writes it (chunked
   and server-sent events pass unbuffered). No answer within ``timeoutSeconds``
   gives 504 (a response already under way is cut off instead).

The route table is rebuilt from informers (or set directly with
:meth:`Gateway.set_objects` in tests) and swapped atomically; waiters are woken
whenever it changes or a slot frees. Per request the gateway does a handful of
dictionary operations and integer increments (:mod:`corral.gateway.metrics`);
no JSON, no framework objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from corral.api.registry import Obj
from corral.api.v1alpha1.inferenceservice import API_VERSION as ISVC_API_VERSION
from corral.api.v1alpha1.inferenceservice import PLURAL as ISVC_PLURAL
from corral.client import ApiClient, InformerFactory
from corral.client.tokenreview import TokenCheck
from corral.gateway.metrics import GatewayMetrics, ServiceStats
from corral.gateway.proxy import (
    HOP_BY_HOP,
    ClientConnection,
    Pool,
    Request,
    Upstream,
    UpstreamError,
    simple_response,
)
from corral.gateway.routing import (
    RESERVED_PREFIX,
    SERVICE_LABEL,
    Backend,
    Route,
    RouteTable,
    build_route_table,
)
from corral.util.clock import Clock, SystemClock

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-host"})
MAX_ATTEMPTS = 3
ACTIVATION_REPEAT = 10.0
DEFAULT_BODY_LIMIT = 1 << 20
ROUTE_CACHE_SIZE = 4096

ActivateFn = Callable[[str], Awaitable[None] | None]


def _status_body(status: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status, "reason": reason,
                       "message": message}).encode()


class _NoReplicaError(Exception):
    def __init__(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers


class _TimeoutError(Exception):
    def __init__(self, responded: bool) -> None:
        super().__init__("timeout")
        self.responded = responded


class Gateway:
    """The proxy, its activator and its metrics; ``start()``/``stop()`` as a corral component."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_activate: ActivateFn | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
        connect_timeout: float = 5.0,
        idle_timeout: float = 4.0,
        token_check: TokenCheck | None = None,
    ) -> None:
        self.host = host
        self.token_check = token_check
        """Who may read ``/_corral/*`` besides ``healthz``; None: nobody (401)."""
        self.port = port
        self.on_activate = on_activate
        self.clock = clock or SystemClock()
        self.metrics = GatewayMetrics(self.clock)
        self.table = RouteTable()
        self.outstanding: dict[str, int] = {}
        """Requests in flight per replica address (fed to the autoscaler per pod)."""
        self._rng = random.Random(seed)
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._pool = Pool(connect_timeout=connect_timeout, idle_timeout=idle_timeout)
        self._connections: set[ClientConnection] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._sources: list[Any] = []
        self._activated: dict[str, float] = {}
        self._waiting = 0
        self._routes_cache: dict[tuple[str, str], tuple[list[Route], int]] = {}
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: dict[_Exchange, float] = {}
        """Fast-path exchanges in flight and when they time out (loop time); one timer for all."""
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._sweep_at = 0.0

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        connections = self._connections
        self._server = await loop.create_server(
            lambda: ClientConnection(self._dispatch, self._headers_complete, connections),
            self.host, self.port, reuse_address=True, backlog=1024)
        if self.port == 0:
            self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("gateway listening on %s", self.url)

    async def stop(self) -> None:
        for source in self._sources:
            with contextlib.suppress(Exception):
                await source.stop()
        for task in list(self._background):
            task.cancel()
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        self._pool.close()
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None

    # ---- routing table ---------------------------------------------------------------------

    def set_table(self, table: RouteTable) -> None:
        for service, problem in table.invalid.items():
            if self.table.invalid.get(service) != problem:  # once per problem, not at every rebuild
                log.warning("gateway: InferenceService %s has no route: %s", service, problem)
        self.table = table
        self._routes_cache = {}
        for service in [s for s in self._activated if (r := table.by_service.get(s)) is None or r.ready_backends]:
            del self._activated[service]
        self._notify()

    def set_objects(self, services: list[Obj], pods: list[Obj]) -> None:
        """Rebuild the table from InferenceService and pod objects."""
        self.set_table(build_route_table(services, pods))

    async def watch_api(self, client: ApiClient, namespace: str | None = None) -> None:
        """Keep the table current from the API (InferenceServices and their pods), list+watch."""
        factory = InformerFactory(client)
        services = factory.informer(ISVC_API_VERSION, ISVC_PLURAL, namespace)
        pods = factory.informer("v1", "pods", namespace, label_selector=SERVICE_LABEL)
        self.watch(services, pods)
        self._sources.append(factory)
        await factory.start()
        await factory.wait_synced(60)
        self.set_objects(services.list(), pods.list())

    def watch(self, services: Any, pods: Any) -> None:
        """Rebuild the table whenever either informer changes (``Informer`` objects)."""

        def rebuild(*_: Any) -> None:
            self.set_objects(services.list(), pods.list())

        for informer in (services, pods):
            informer.add_handler(rebuild, rebuild, rebuild)
        rebuild()

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(wake())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _headers_complete(self, request: Request) -> None:
        """Candidate routes (cached per host and path) and the body limit they allow."""
        key = (request.host, request.path)
        cached = self._routes_cache.get(key)
        if cached is None:
            candidates = self.table.candidates(request.host, request.path)
            limit = max((r.max_body_bytes for r in candidates), default=DEFAULT_BODY_LIMIT)
            if len(self._routes_cache) >= ROUTE_CACHE_SIZE:
                self._routes_cache.clear()
            cached = self._routes_cache[key] = (candidates, limit)
        request.candidates, request.limit = cached

    # ---- admin endpoints -------------------------------------------------------------------

    def feed(self) -> dict[str, Any]:
        """The autoscaler feed: per-service counters plus requests in flight per replica pod."""
        data = self.metrics.feed()
        pods: dict[str, dict[str, int]] = {}
        for route in self.table.routes:
            for target in route.revisions:
                for backend in target.backends:
                    count = self.outstanding.get(backend.address, 0)
                    pods.setdefault(route.service, {})[backend.pod.split("/", 1)[-1]] = count
        for service, outstanding in pods.items():
            entry = data["services"].get(service)
            if entry is not None:
                entry["outstanding"] = outstanding
        return data

    def _admin_checked(self, conn: ClientConnection, request: Request) -> None:
        """``/_corral/*``: ``healthz`` is public (a probe); the rest needs a bearer token the API
        server accepts. Decided on ``request.path``, the very string :meth:`_admin` routes on."""
        if request.path == RESERVED_PREFIX + "healthz":
            conn.finished(self._admin(conn, request))
            return
        raw = request.header(b"authorization")
        header = raw.decode("latin-1") if raw is not None else None
        check = self.token_check
        answer = check.quick(header) if check is not None else False
        if answer is None and check is not None:
            conn.task = self._loop().create_task(self._admin_reviewed(conn, request, check, header))
            return
        conn.finished(self._admin(conn, request) if answer else self._unauthorized(conn, request))

    async def _admin_reviewed(self, conn: ClientConnection, request: Request, check: TokenCheck,
                              header: str | None) -> None:
        keep = False
        try:
            accepted = await check.check(header)
            keep = self._admin(conn, request) if accepted else self._unauthorized(conn, request)
        finally:
            conn.finished(keep)

    def _unauthorized(self, conn: ClientConnection, request: Request) -> bool:
        return self._reply_error(conn, request, 401, "Unauthorized",
                                 f"{request.path} needs a bearer token the API server accepts")

    def _admin(self, conn: ClientConnection, request: Request) -> bool:
        name = request.path[len(RESERVED_PREFIX):]
        if name not in ("healthz", "routes", "metrics", "feed"):
            return self._reply_error(conn, request, 404, "NotFound", f"{request.path} is not a gateway endpoint")
        if request.method not in ("GET", "HEAD"):
            return self._reply_error(conn, request, 405, "MethodNotAllowed", f"{request.path} answers GET only")
        content_type = b"application/json"
        if name == "healthz":
            body, content_type = b"ok", b"text/plain; charset=utf-8"
        elif name == "routes":
            body = json.dumps({"routes": self.table.describe()}).encode()
        elif name == "metrics":
            body, content_type = generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST.encode()
        else:
            body = json.dumps(self.feed()).encode()
        conn.write(simple_response(200, body, content_type=content_type, keep_alive=request.keep_alive,
                                   http11=request.http11))
        return True

    # ---- proxy -----------------------------------------------------------------------------

    def _reply_error(self, conn: ClientConnection, request: Request, status: int, reason: str, message: str, *,
                     headers: dict[str, str] | None = None) -> bool:
        conn.write(simple_response(status, _status_body(status, reason, message), headers=headers,
                                   keep_alive=request.keep_alive, http11=request.http11))
        return True

    @staticmethod
    def _route_for(request: Request, body: bytes, candidates: list[Route]) -> Route | tuple[int, str, str]:
        model: str | None = None
        if candidates and candidates[0].model is not None and body:
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return 400, "BadRequest", "routing by model needs a JSON body with a \"model\" field"
            if isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
                model = parsed["model"]
        for route in candidates:
            if route.model is None or route.model == model:
                return route
        what = f"host {request.host!r}, path {request.path!r}" + (f", model {model!r}" if model else "")
        known = sorted({r.model for r in candidates if r.model})
        hint = f"; models served here: {', '.join(known)}" if known else ""
        return 404, "NotFound", f"no InferenceService route matches {what}{hint}"

    def _pick(self, route: Route, exclude: set[str] | None) -> Backend | None:
        target = route.pick_revision(self._rng)
        if target is None:
            return None
        backends = target.backends
        limit = route.container_concurrency
        outstanding = self.outstanding
        if not exclude and len(backends) == 1 and not limit:  # the common case: one replica
            return backends[0]
        options = [b for b in backends if not exclude or b.address not in exclude]
        if not options:
            # The chosen revision's replicas all failed: any other revision's will do.
            options = [b for t in route.revisions for b in t.backends if not exclude or b.address not in exclude]
            if not options:
                return None
        best: Backend | None = None
        best_load = 0
        count = len(options)
        start = self._rng.randrange(count) if count > 1 else 0
        for i in range(count):
            backend = options[(start + i) % count]
            load = outstanding.get(backend.address, 0)
            if limit and load >= limit:
                continue
            if best is None or load < best_load:
                best, best_load = backend, load
        return best

    async def _acquire(self, route: Route, exclude: set[str], arrived: float) -> Backend:
        """A backend with a free slot; waits (activator/queue) up to the route's limits."""
        route = self.table.by_service.get(route.service, route)  # retries see the latest replicas
        backend = self._pick(route, exclude)
        if backend is not None:
            return backend
        stats = self.metrics.stats(route.service)
        if stats.queued > route.max_queued:
            raise _NoReplicaError(503, "ServiceUnavailable",
                                  f"{route.service}: {route.max_queued} requests are already queued",
                                  headers={"Retry-After": "1"})
        activated = False
        deadline = arrived + (route.activation_timeout if route.ready_backends == 0 else route.timeout)
        self._waiting += 1  # releases wake waiters only while there are some
        try:
            while True:
                current = self.table.by_service.get(route.service)
                if current is None:
                    raise _NoReplicaError(404, "NotFound", f"{route.service} was deleted while the request waited")
                route = current
                backend = self._pick(route, exclude)
                if backend is not None:
                    return backend
                if route.ready_backends == 0 and not activated:
                    activated = True
                    last = self._activated.get(route.service)
                    now = self.clock.monotonic()
                    if last is None or now - last >= ACTIVATION_REPEAT:
                        # One poke per service per burst; the autoscaler also sees the held requests.
                        self._activated[route.service] = now
                        stats.activations += 1
                        await self._activate(route.service)
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    why = "no replica became ready" if route.ready_backends == 0 else "no replica had a free slot"
                    raise _NoReplicaError(503, "ServiceUnavailable", f"{route.service}: {why} in time",
                                          headers={"Retry-After": "5"})
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 1.0))
        finally:
            self._waiting -= 1

    async def _activate(self, service: str) -> None:
        if self.on_activate is None:
            return
        try:
            result = self.on_activate(service)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        except Exception:  # the activator keeps holding the request; the autoscaler also sees the queue
            log.exception("activation of %s failed", service)

    def _release(self, backend: Backend) -> None:
        left = self.outstanding.get(backend.address, 1) - 1
        if left <= 0:
            self.outstanding.pop(backend.address, None)
        else:
            self.outstanding[backend.address] = left
        if self._waiting:
            self._notify()

    @staticmethod
    def _upstream_head(request: Request, route: Route, body_size: int, conn: ClientConnection) -> tuple[bytes, bytes]:
        """The request line, and the header block after ``Host`` (with the body length), as bytes."""
        last = conn.last_line
        if last is not None and last[0] == request.url and last[1] == request.method and last[2] is route:
            line = last[3]
        else:
            path = route.upstream_path(request.raw_path) if route.strip_prefix else request.raw_path
            if route.strip_prefix and not request.raw_path.startswith(route.path_prefix.rstrip("/")):
                path = route.upstream_path(request.path)  # the prefix matched only once percent-decoded
            if request.query:
                path = f"{path}?{request.query}"
            line = b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), path.encode("latin-1"))
            conn.last_line = (request.url, request.method, route, line)
        block = conn.upstream_block  # reset by the connection whenever the client's headers change
        if block is None:
            lines: list[bytes] = []
            prior: bytes | None = None
            for name, value in request.headers:
                low = name.lower()
                if low in HOP_BY_HOP:
                    continue
                if low in FORWARDED:
                    if low == b"x-forwarded-for":
                        prior = value
                    continue
                lines.append(b"%s: %s\r\n" % (name, value))
            forwarded_for = conn.peer.encode("latin-1")
            lines.append(b"X-Forwarded-For: %s\r\n" % (prior + b", " + forwarded_for if prior else forwarded_for))
            lines.append(b"X-Forwarded-Host: %s\r\n" % request.host.encode("latin-1"))
            block = conn.upstream_block = b"".join(lines)
            conn.upstream_rest = block + b"\r\n"
        if body_size or request.method not in IDEMPOTENT_METHODS:
            return line, b"%sContent-Length: %d\r\n\r\n" % (block, body_size)
        return line, conn.upstream_rest

    def _dispatch(self, conn: ClientConnection, request: Request) -> None:
        """Answer one request: synchronously when a replica and a pooled connection are at hand (the
        common case: no task, no future), otherwise on the slow path (:meth:`_attempts`)."""
        arrived = self.clock.monotonic()
        if request.path.startswith(RESERVED_PREFIX):
            self._admin_checked(conn, request)
            return
        if request.discard:
            declared = f"request body of {request.content_length} bytes" if request.content_length is not None \
                else "request body"
            conn.finished(self._reply_error(conn, request, 413, "RequestEntityTooLarge",
                                            f"{declared} exceeds this route's maxBodyBytes ({request.limit})"))
            return
        chunks = request.body
        body = (chunks[0] if len(chunks) == 1 else b"".join(chunks)) if chunks else b""
        found = self._route_for(request, body, request.candidates)
        if isinstance(found, tuple):
            conn.finished(self._reply_error(conn, request, *found))
            return
        route = found
        if len(body) > route.max_body_bytes:
            conn.finished(self._reply_error(conn, request, 413, "RequestEntityTooLarge",
                                            f"request body of {len(body)} bytes exceeds this route's "
                                            f"maxBodyBytes ({route.max_body_bytes})"))
            return
        metrics = self.metrics
        stats = metrics.stats(route.service)
        backend = self._pick(route, None)
        if backend is None and stats.queued >= route.max_queued:
            stats.rejected += 1
            metrics.answer_without_replica(route.service, 503, arrived)
            conn.finished(self._reply_error(conn, request, 503, "ServiceUnavailable",
                                            f"{route.service}: the queue is full ({route.max_queued} requests "
                                            "waiting)", headers={"Retry-After": "1"}))
            return
        line, rest = self._upstream_head(request, route, len(body), conn)
        tail = rest + body if body else rest
        upstream = self._pool.take(backend.address) if backend is not None else None
        if backend is None:  # wait for a replica or a slot
            metrics.arrive(route.service)
            conn.task = self._loop().create_task(self._slow(conn, request, route, arrived, line, tail, None))
            return
        if upstream is None:  # a replica, but no idle connection to it: connect on the slow path
            metrics.arrive_and_dispatch(stats, arrived)
            # Counted now, so that requests arriving together spread out and queue limits hold.
            self.outstanding[backend.address] = self.outstanding.get(backend.address, 0) + 1
            conn.task = self._loop().create_task(self._slow(conn, request, route, arrived, line, tail, backend,
                                                            started=arrived))
            return
        metrics.arrive_and_dispatch(stats, arrived)
        address = backend.address
        outstanding = self.outstanding
        outstanding[address] = outstanding.get(address, 0) + 1
        exchange = _Exchange(self, conn, request, route, stats, backend, upstream, arrived, line, tail)
        conn.exchange = exchange
        upstream.send(conn, request, b"%sHost: %s\r\n%s" % (line, address.encode("latin-1"), tail), exchange)

    def _track(self, exchange: _Exchange, timeout: float) -> None:
        """Watch an exchange's deadline. One timer, always at the earliest deadline, serves all of them
        (cheaper per request than a timer each: with uniform timeouts it is rarely moved)."""
        loop = self._loop()
        deadline = loop.time() + timeout
        self._deadlines[exchange] = deadline
        if self._sweep_handle is None or deadline < self._sweep_at:
            if self._sweep_handle is not None:
                self._sweep_handle.cancel()
            self._sweep_at = deadline
            self._sweep_handle = loop.call_at(deadline, self._sweep)

    def _sweep(self) -> None:
        self._sweep_handle = None
        now = self._loop().time()
        expired = [exchange for exchange, deadline in self._deadlines.items() if deadline <= now]
        for exchange in expired:
            exchange.expire()
        if self._deadlines and self._sweep_handle is None:
            self._sweep_at = min(self._deadlines.values())
            self._sweep_handle = self._loop().call_at(self._sweep_at, self._sweep)

    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = self._event_loop
        if loop is None:
            loop = self._event_loop = asyncio.get_running_loop()
        return loop

    async def _slow(self, conn: ClientConnection, request: Request, route: Route, arrived: float, line: bytes,  # noqa: PLR0917
                    tail: bytes, first: Backend | None, *, tried: set[str] | None = None, last_error: str = "",
                    started: float | None = None) -> None:
        keep = False
        try:
            keep = await self._attempts(conn, request, route, arrived, line, tail, first, tried=tried or set(),
                                        last_error=last_error, started=started)
        finally:
            conn.finished(keep)

    async def _attempts(self, conn: ClientConnection, request: Request, route: Route, arrived: float, line: bytes,  # noqa: PLR0917
                        tail: bytes, first: Backend | None, *, tried: set[str], last_error: str,
                        started: float | None) -> bool:
        """The slow path: wait for a replica (activator, queue), connect, retry; True to keep the connection."""
        metrics = self.metrics
        service = route.service
        dispatched = started is not None
        code = 502
        revision = ""
        idempotent = (request.method in IDEMPOTENT_METHODS or route.idempotent_post
                      or request.header(b"idempotency-key") is not None)
        try:
            for _attempt in range(len(tried), MAX_ATTEMPTS):
                reserved = first is not None  # ``first`` was counted in ``outstanding`` already
                if first is not None:
                    backend, first = first, None
                else:
                    try:
                        backend = await self._acquire(route, tried, arrived)
                    except _NoReplicaError as failure:
                        if dispatched:
                            code = 502
                            return self._reply_error(conn, request, 502, "BadGateway",
                                                     f"{service}: every replica tried failed (last: {last_error}) "
                                                     "and no other is ready")
                        metrics.give_up(service)
                        metrics.answer_without_replica(service, failure.status, arrived)
                        return self._reply_error(conn, request, failure.status, failure.reason, failure.message,
                                                 headers=failure.headers)
                if not dispatched:
                    metrics.dispatch(service)
                    dispatched = True
                    started = self.clock.monotonic()
                address = backend.address
                tried.add(address)
                revision = backend.revision
                if not reserved:
                    self.outstanding[address] = self.outstanding.get(address, 0) + 1
                try:
                    code, keep = await self._forward(conn, request, route, backend,
                                                     b"%sHost: %s\r\n%s" % (line, address.encode("latin-1"), tail))
                    return keep
                except UpstreamError as failure:
                    last_error = failure.reason
                    metrics.attempt_failed(service, revision)
                    if failure.responded:  # part of the answer went out: cut the client off
                        code = 502
                        conn.abort()
                        return False
                    if not (failure.before_send or idempotent):
                        code = 502
                        return self._reply_error(conn, request, 502, "BadGateway",
                                                 f"{service}: replica {backend.pod} failed ({failure.reason}); "
                                                 "the request is not idempotent, so it was not retried")
                except _TimeoutError as timeout:
                    code = 504
                    if timeout.responded:
                        conn.abort()
                        return False
                    return self._reply_error(conn, request, 504, "GatewayTimeout",
                                             f"{service}: replica {backend.pod} did not answer within "
                                             f"{route.timeout:g}s")
                except BaseException:
                    code = 502
                    raise
                finally:
                    self._release(backend)
            code = 502
            return self._reply_error(conn, request, 502, "BadGateway",
                                     f"{service}: every attempt failed (last: {last_error})")
        finally:
            if dispatched:
                assert started is not None
                metrics.finish(service, revision, code, started, arrived)

    async def _forward(self, conn: ClientConnection, request: Request, route: Route, backend: Backend,
                       data: bytes) -> tuple[int, bool]:
        """Send one attempt to ``backend`` and relay its answer: (status, keep the client connection)."""
        upstream = self._pool.take(backend.address)
        if upstream is None:
            upstream = await self._pool.connect(backend.address)
        loop = self._loop()
        waiter = _FutureWaiter(loop.create_future())
        upstream.send(conn, request, data, waiter)
        timer = loop.call_later(route.timeout, self._expire, upstream, waiter)
        try:
            return await waiter.future
        finally:
            timer.cancel()
            if upstream.waiter is waiter:  # cancelled (the client went away): drop the exchange
                upstream.cancel()

    @staticmethod
    def _expire(upstream: Upstream, waiter: _FutureWaiter) -> None:
        if waiter.future.done():
            return
        responded = upstream.started
        upstream.cancel()
        waiter.future.set_exception(_TimeoutError(responded))


class _FutureWaiter:
    """The slow path's view of an exchange: a future with (status, keep-alive)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[tuple[int, bool]]) -> None:
        self.future = future

    def done(self, status: int, keep: bool) -> None:
        if not self.future.done():
            self.future.set_result((status, keep))

    def fail(self, error: UpstreamError) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class _Exchange:
    """The fast path's state for one request relayed on a pooled connection; the upstream calls back."""

    __slots__ = ("arrived", "backend", "conn", "gateway", "line", "request", "route", "stats", "tail", "upstream")

    def __init__(self, gateway: Gateway, conn: ClientConnection, request: Request, route: Route,  # noqa: PLR0917
                 stats: ServiceStats, backend: Backend, upstream: Upstream, arrived: float, line: bytes,
                 tail: bytes) -> None:
        self.gateway = gateway
        self.conn = conn
        self.request = request
        self.route = route
        self.stats = stats
        self.backend = backend
        self.upstream = upstream
        self.arrived = arrived
        self.line = line
        self.tail = tail
        gateway._track(self, route.timeout)

    def _end(self, code: int) -> None:
        gateway = self.gateway
        gateway._deadlines.pop(self, None)
        gateway._release(self.backend)
        gateway.metrics.complete(self.stats, self.backend.revision, code, self.arrived, self.arrived,
                                 gateway.clock.monotonic())

    def done(self, status: int, keep: bool) -> None:
        self._end(status)
        self.conn.finished(keep)

    def fail(self, error: UpstreamError) -> None:
        gateway = self.gateway
        gateway._deadlines.pop(self, None)
        backend = self.backend
        gateway._release(backend)
        gateway.metrics.attempt_failed(self.route.service, backend.revision)
        conn = self.conn
        request = self.request
        route = self.route
        idempotent = (request.method in IDEMPOTENT_METHODS or route.idempotent_post
                      or request.header(b"idempotency-key") is not None)
        if error.responded or not (error.before_send or idempotent):
            gateway.metrics.complete(self.stats, backend.revision, 502, self.arrived, self.arrived,
                                     gateway.clock.monotonic())
            if error.responded:  # part of the answer went out: cut the client off
                conn.abort()
                conn.finished(False)
                return
            conn.finished(gateway._reply_error(
                conn, request, 502, "BadGateway", f"{route.service}: replica {backend.pod} failed ({error.reason}); "
                "the request is not idempotent, so it was not retried"))
            return
        # Try another replica, on the slow path (it may have to connect or wait).
        conn.exchange = None
        conn.task = gateway._loop().create_task(gateway._slow(
            conn, request, route, self.arrived, self.line, self.tail, None, tried={backend.address},
            last_error=error.reason, started=self.arrived))

    def expire(self) -> None:
        upstream = self.upstream
        responded = upstream.started
        upstream.cancel()
        self._end(504)
        conn = self.conn
        if responded:
            conn.abort()
            conn.finished(False)
            return
        conn.finished(self.gateway._reply_error(
            conn, self.request, 504, "GatewayTimeout",
            f"{self.route.service}: replica {self.backend.pod} did not answer within {self.route.timeout:g}s"))

    def cancel(self) -> None:
        """The client went away mid-answer."""
        self.upstream.cancel()
        self._end(502)
