"""The inference gateway: an aiohttp reverse proxy with an activator.

Request path (``Gateway._proxy``):

1. Paths under ``/_corral/`` are the gateway's own (routes, Prometheus metrics,
   the autoscaler feed, health); everything else is proxied.
2. The body is read up to the route's ``maxBodyBytes`` (413 beyond it, saying
   the limit); when routing depends on the OpenAI ``model`` field it is parsed.
3. The :class:`~corral.gateway.routing.RouteTable` picks the route (404 naming
   host, path and model when none matches) and a revision by traffic share.
4. A replica is chosen by *least outstanding requests* among the revision's
   ready replicas with a free slot (``containerConcurrency``). With none, the
   request waits in the service's bounded queue (503 + ``Retry-After`` when
   ``maxQueuedRequests`` are already waiting). With no ready replica at all
   the request is held by the activator, which asks for a scale-up at once
   (``on_activate``) and forwards as soon as a replica turns ready — the client
   sees a slow first response, not an error.
5. The request is forwarded; a connection that fails before any byte of the
   response is retried on another replica when the request is idempotent
   (GET/HEAD/OPTIONS/PUT/DELETE, an ``Idempotency-Key`` header, or a route
   that declares its POSTs idempotent) — a refused connection is retried for
   every method, since the replica never saw the request.
6. The response streams back chunk by chunk as the replica writes it (chunked
   and server-sent events pass unbuffered); small fixed-length answers are
   relayed in one piece. Timeouts give 504.

The route table is rebuilt from informers (or set directly with
:meth:`Gateway.set_objects` in tests) and swapped atomically; waiters are woken
whenever it changes or a slot frees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from corral.api.registry import Obj
from corral.api.v1alpha1.inferenceservice import API_VERSION as ISVC_API_VERSION
from corral.api.v1alpha1.inferenceservice import PLURAL as ISVC_PLURAL
from corral.client import ApiClient, InformerFactory
from corral.gateway.metrics import GatewayMetrics
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

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length",
})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
SMALL_RESPONSE = 256 * 1024
MAX_ATTEMPTS = 3
ACTIVATION_REPEAT = 10.0

ActivateFn = Callable[[str], Awaitable[None] | None]


def _error(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status, "reason": reason,
            "message": message}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


class _NoReplicaError(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


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
    ) -> None:
        self.host = host
        self.port = port
        self.on_activate = on_activate
        self.clock = clock or SystemClock()
        self.metrics = GatewayMetrics(self.clock)
        self.table = RouteTable()
        self.outstanding: dict[str, int] = {}
        self._rng = random.Random(seed)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._connect_timeout = connect_timeout
        self._background: set[asyncio.Task[Any]] = set()
        self._sources: list[Any] = []
        self._activated: dict[str, float] = {}
        self._waiting = 0
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 40)
        app.router.add_get(RESERVED_PREFIX + "healthz", self._healthz)
        app.router.add_get(RESERVED_PREFIX + "routes", self._routes)
        app.router.add_get(RESERVED_PREFIX + "metrics", self._prometheus)
        app.router.add_get(RESERVED_PREFIX + "feed", self._feed)
        app.router.add_route("*", "/{tail:.*}", self._proxy)
        return app

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30, force_close=False)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, skip_auto_headers=(
            "User-Agent", "Accept-Encoding"))
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        if server is not None and self.port == 0:
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
        log.info("gateway listening on %s", self.url)

    async def stop(self) -> None:
        for source in self._sources:
            with contextlib.suppress(Exception):
                await source.stop()
        for task in list(self._background):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- routing table ---------------------------------------------------------------------

    def set_table(self, table: RouteTable) -> None:
        self.table = table
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

    # ---- admin endpoints -------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _routes(self, request: web.Request) -> web.Response:
        return web.json_response({"routes": self.table.describe()})

    async def _prometheus(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

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

    async def _feed(self, request: web.Request) -> web.Response:
        return web.json_response(self.feed())

    # ---- proxy -----------------------------------------------------------------------------

    async def _read_body(self, request: web.Request, limit: int) -> bytes | web.Response:
        declared = request.content_length
        if declared is not None and declared > limit:
            return _error(413, "RequestEntityTooLarge",
                          f"request body of {declared} bytes exceeds this route's maxBodyBytes ({limit})")
        if declared is not None:
            return await request.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                return _error(413, "RequestEntityTooLarge",
                              f"request body exceeds this route's maxBodyBytes ({limit})")
            chunks.append(chunk)
        return b"".join(chunks)

    def _route_for(self, request: web.Request, body: bytes, candidates: list[Route]) -> Route | web.Response:
        host = request.host
        path = request.path
        model: str | None = None
        if candidates and candidates[0].model is not None and body:
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return _error(400, "BadRequest", "routing by model needs a JSON body with a \"model\" field")
            if isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
                model = parsed["model"]
        route = next((r for r in candidates if r.model is None or r.model == model), None)
        if route is None:
            what = f"host {host!r}, path {path!r}" + (f", model {model!r}" if model else "")
            known = sorted({r.model for r in candidates if r.model})
            hint = f"; models served here: {', '.join(known)}" if known else ""
            return _error(404, "NotFound", f"no InferenceService route matches {what}{hint}")
        return route

    def _pick(self, route: Route, exclude: set[str]) -> Backend | None:
        target = route.pick_revision(self._rng)
        if target is None:
            return None
        options = [b for b in target.backends if b.address not in exclude]
        if not options:
            # The chosen revision's replicas all failed: any other revision's will do.
            options = [b for t in route.revisions for b in t.backends if b.address not in exclude]
            if not options:
                return None
        limit = route.container_concurrency
        best: Backend | None = None
        best_load = 0
        start = self._rng.randrange(len(options))
        for i in range(len(options)):
            backend = options[(start + i) % len(options)]
            load = self.outstanding.get(backend.address, 0)
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
            raise _NoReplicaError(_error(503, "ServiceUnavailable",
                                    f"{route.service}: {route.max_queued} requests are already queued",
                                    headers={"Retry-After": "1"}))
        activated = False
        deadline = arrived + (route.activation_timeout if route.ready_backends == 0 else route.timeout)
        self._waiting += 1  # releases wake waiters only while there are some
        try:
            while True:
                current = self.table.by_service.get(route.service)
                if current is None:
                    raise _NoReplicaError(_error(404, "NotFound", f"{route.service} was deleted while the request waited"))
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
                    raise _NoReplicaError(_error(503, "ServiceUnavailable", f"{route.service}: {why} in time",
                                            headers={"Retry-After": "5"}))
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

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        arrived = self.clock.monotonic()
        if request.path.startswith(RESERVED_PREFIX):
            return _error(404, "NotFound", f"{request.path} is not a gateway endpoint")
        # Route on headers first to know the body limit; re-match with the model if needed.
        pre = self.table.candidates(request.host, request.path)
        limit = max((r.max_body_bytes for r in pre), default=1 << 20)
        body = await self._read_body(request, limit)
        if isinstance(body, web.Response):
            return body
        found = self._route_for(request, body, pre)
        if isinstance(found, web.Response):
            return found
        route = found
        if len(body) > route.max_body_bytes:
            return _error(413, "RequestEntityTooLarge",
                          f"request body of {len(body)} bytes exceeds this route's maxBodyBytes ({route.max_body_bytes})")
        stats = self.metrics.stats(route.service)
        if stats.queued >= route.max_queued and self._pick(route, set()) is None:
            stats.rejected += 1
            self.metrics.answer_without_replica(route.service, 503, arrived)
            return _error(503, "ServiceUnavailable",
                          f"{route.service}: the queue is full ({route.max_queued} requests waiting)",
                          headers={"Retry-After": "1"})
        self.metrics.arrive(route.service)
        idempotent = (request.method in IDEMPOTENT_METHODS or "Idempotency-Key" in request.headers
                      or route.idempotent_post)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        peer = request.remote or ""
        prior = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
        headers["X-Forwarded-Host"] = request.host
        path = route.upstream_path(request.path_qs if not route.strip_prefix else request.path)
        if route.strip_prefix and request.query_string:
            path = f"{path}?{request.query_string}"
        tried: set[str] = set()
        dispatched = False
        code = 502
        revision = ""
        started = arrived
        last_error = ""
        try:
            for _attempt in range(MAX_ATTEMPTS):
                try:
                    backend = await self._acquire(route, tried, arrived)
                except _NoReplicaError as failure:
                    if dispatched:
                        code = 502
                        return _error(502, "BadGateway", f"{route.service}: every replica tried failed "
                                      f"(last: {last_error}) and no other is ready")
                    self.metrics.give_up(route.service)
                    self.metrics.answer_without_replica(route.service, failure.response.status, arrived)
                    return failure.response
                if not dispatched:
                    self.metrics.dispatch(route.service)
                    dispatched = True
                    started = self.clock.monotonic()
                tried.add(backend.address)
                revision = backend.revision
                self.outstanding[backend.address] = self.outstanding.get(backend.address, 0) + 1
                try:
                    response, code = await self._forward(request, route, backend, path=path, headers=headers, body=body)
                    return response
                except _RetryError as retry:
                    last_error = retry.reason
                    self.metrics.attempt_failed(route.service, backend.revision)
                    if not (retry.before_send or idempotent):
                        code = 502
                        return _error(502, "BadGateway",
                                      f"{route.service}: replica {backend.pod} failed ({retry.reason}); "
                                      "the request is not idempotent, so it was not retried")
                except BaseException:
                    code = 502
                    raise
                finally:
                    self._release(backend)
            code = 502
            return _error(502, "BadGateway", f"{route.service}: every attempt failed (last: {last_error})")
        finally:
            if dispatched:
                self.metrics.finish(route.service, revision, code, started, arrived)

    async def _forward(self, request: web.Request, route: Route, backend: Backend, *, path: str,
                       headers: dict[str, str], body: bytes) -> tuple[web.StreamResponse, int]:
        assert self._session is not None
        url = f"http://{backend.address}{path}"
        timeout = self._timeouts.get(route.timeout)
        if timeout is None:
            timeout = self._timeouts[route.timeout] = aiohttp.ClientTimeout(total=route.timeout,
                                                                            sock_connect=self._connect_timeout)
        try:
            try:
                upstream = await self._session.request(request.method, url, headers=headers, data=body or None,
                                                       timeout=timeout, allow_redirects=False)
            except aiohttp.ClientConnectorError as error:
                raise _RetryError(f"connect: {error.os_error or error}", before_send=True) from error
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as error:
                raise _RetryError(f"connection lost: {error}", before_send=False) from error
            try:
                out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                length = upstream.content_length
                streaming = (length is None or length > SMALL_RESPONSE
                             or upstream.headers.get("Content-Type", "").startswith("text/event-stream"))
                if not streaming:
                    try:
                        data = await upstream.read()
                    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                            aiohttp.ClientPayloadError) as error:
                        raise _RetryError(f"connection lost: {error}", before_send=False) from error
                    return web.Response(status=upstream.status, body=data, headers=out_headers), upstream.status
                response = web.StreamResponse(status=upstream.status, headers=out_headers)
                if length is not None:
                    response.content_length = length
                else:
                    response.enable_chunked_encoding()
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response, upstream.status
            finally:
                upstream.release()
        except TimeoutError:
            return _error(504, "GatewayTimeout",
                          f"{route.service}: replica {backend.pod} did not answer within {route.timeout:g}s"), 504


class _RetryError(Exception):
    def __init__(self, reason: str, *, before_send: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.before_send = before_send
