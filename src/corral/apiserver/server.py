"""The embedded API server: an aiohttp application over the store, as one component.

:class:`ApiServer` has ``async start()`` / ``async stop()`` like every component of
``corral up``. It serves discovery (``/api``, ``/apis`` …, trailing slash accepted),
``/version``, ``/healthz`` ``/readyz`` ``/livez`` (no token needed), ``/metrics``
(Prometheus text), OpenAPI v3 (``/openapi/v3``) and v2 (``/openapi/v2``, :mod:`corral.apiserver.openapi_v2`), and the resources (see
:mod:`corral.apiserver.handlers`). Every other request needs ``Authorization: Bearer
TOKEN`` from the tokens file (:mod:`corral.apiserver.auth`); the identity is kept on the
request as ``request[IDENTITY]``. Whether a token is needed and which route answers are both
decided on one string, the canonical path (:func:`corral.apiserver.paths.route_path`, kept as
``request[ROUTE_PATH]``), for requests from either front.

:func:`start_server` starts one on a free port for tests and tools and returns a
:class:`RunningServer` (``url``, ``token``, ``kubeconfig``, ``stop()``).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import json
import logging
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from corral import __version__
from corral.api.kinds import default_registry
from corral.api.registry import Registry
from corral.apiserver import authorization, dashboard, discovery, openapi, openapi_v2
from corral.apiserver.auth import Identity, TokenFile
from corral.apiserver.errors import ApiError
from corral.apiserver.handlers import JSON, MAX_BODY, SYSTEM_NAMESPACES, Handlers, resource_key
from corral.apiserver.health import HealthChecks, health_response
from corral.apiserver.lean import LeanFront, LeanRequest
from corral.apiserver.paths import route_path
from corral.apiserver.services import DEFAULT_SERVICE_CIDR
from corral.apiserver.tls import ensure_self_signed, serving_context
from corral.store import ObjectTooLargeError, Store, UnavailableError, encode
from corral.util.clock import Clock, SystemClock
from corral.util.datadir import API_SERVER_ENTRIES, make_private, private_umask

LOG = logging.getLogger(__name__)
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/livez", "/version"})
IDENTITY = web.RequestKey("identity", Identity)
RESOURCE = web.RequestKey("resource", str)
WATCHING = web.RequestKey("watching", bool)
ROUTE_PATH = web.RequestKey("route_path", str)
"""The canonical path (:func:`~corral.apiserver.paths.route_path`): authentication and routing read only this."""
AUTH_GROUP = "authentication.k8s.io"
REVIEWS = (discovery.review(AUTH_GROUP, "SelfSubjectReview"),
           discovery.review(authorization.GROUP, authorization.ACCESS_REVIEW),
           discovery.review(authorization.GROUP, authorization.RULES_REVIEW))
REVIEW_GROUPS = frozenset(r.group for r in REVIEWS)


@dataclass
class ServerConfig:
    """How to run the API server. ``data_dir=None`` keeps everything in memory (no durability)."""

    data_dir: Path | None
    host: str = "127.0.0.1"
    port: int = 6443
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls: bool = True  # without tls_cert: serve HTTPS with a self-signed certificate kept in data_dir/tls
    history: int = 20_000
    bookmark_interval: float = 60.0
    watch_timeout: float = 1800.0
    synchronous: str = "NORMAL"
    registry: Registry = field(default_factory=default_registry)
    dashboard_staleness: float = 1.0  # seconds the dashboard's summary may lag the store
    keepalive_timeout: float = 75.0  # an idle keep-alive connection is closed after this (aiohttp's default)
    service_cidr: str = DEFAULT_SERVICE_CIDR  # Services' cluster IPs come from this range


LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class RequestMetrics(Collector):
    """``apiserver_request_total`` and ``apiserver_request_duration_seconds``, kept in plain dicts.

    prometheus_client's labelled children cost several microseconds per request; this
    keeps a count per (verb, resource, code) and a bucket array per verb, and builds the
    metric families only when ``/metrics`` is scraped.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, list[float]] = {}  # verb -> bucket counts (+Inf last), then sum

    def observe(self, verb: str, resource: str, code: int, seconds: float | None) -> None:
        key = (verb, resource, code)
        self.counts[key] = self.counts.get(key, 0) + 1
        if seconds is None:
            return
        row = self.latency.get(verb)
        if row is None:
            row = self.latency[verb] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        row[index] += 1
        row[-1] += seconds

    def collect(self) -> list[Metric]:
        requests = CounterMetricFamily("apiserver_request", "API requests by verb, resource and code",
                                       labels=["verb", "resource", "code"])
        for (verb, resource, code), count in sorted(self.counts.items()):
            requests.add_metric([verb, resource, str(code)], count)
        latency = HistogramMetricFamily("apiserver_request_duration_seconds", "API request latency (watches excluded)",
                                        labels=["verb"])
        for verb, row in sorted(self.latency.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            bounds: tuple[float, ...] = (*LATENCY_BUCKETS, float("inf"))
            for bound, observed in zip(bounds, row[:-1], strict=True):
                cumulative += observed
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            latency.add_metric([verb], buckets, row[-1])
        return [requests, latency]


def lean_eligible(method: str, path: str, query: str) -> bool:
    """Whether the lean front serves a request (resource verbs that answer at once), or aiohttp does."""
    if not path.startswith(("/api/", "/apis/")) or path.endswith("/log") or "/watch/" in path:
        return False
    return "watch" not in query and "follow" not in query


def _status_response(error: ApiError) -> web.Response:
    # A newline ends the body, as Go's json.Encoder ends kube-apiserver's: clients print it verbatim.
    return web.Response(body=encode(error.status()) + b"\n", status=error.code, content_type=JSON)


class ApiServer:
    """The API server component: store + HTTP. ``url`` and ``token`` are set once started."""

    def __init__(self, config: ServerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.registry = config.registry
        db = config.data_dir / "store.db" if config.data_dir is not None else None
        self.store = Store(db, history=config.history, synchronous=config.synchronous)
        tokens_path = (config.data_dir or Path(os.devnull).parent / "nonexistent") / "tokens.csv"
        self.tokens = TokenFile(tokens_path)
        self.handlers = Handlers(self.store, self.registry, self.clock, config.data_dir,
                                 bookmark_interval=config.bookmark_interval, default_watch_timeout=config.watch_timeout,
                                 service_cidr=config.service_cidr)
        self.metrics = CollectorRegistry()
        self.dashboard = dashboard.Dashboard(self.store, max_staleness=config.dashboard_staleness)
        self.request_metrics = RequestMetrics()
        self.metrics.register(self.request_metrics)
        Gauge("apiserver_storage_objects", "Objects stored", registry=self.metrics).set_function(self.store.count)
        Gauge("apiserver_resource_version", "Latest resourceVersion", registry=self.metrics).set_function(lambda: self.store.rv)
        Gauge("apiserver_registered_watchers", "Open watches", registry=self.metrics).set_function(
            lambda: self.store.watcher_count)
        Gauge("apiserver_store_commit_batches", "SQLite commits (group commits)", registry=self.metrics).set_function(
            lambda: self.store.batches)
        self._load_seconds = Gauge("apiserver_store_load_seconds", "Time to rebuild the index from SQLite at start",
                                   registry=self.metrics)
        self.health = HealthChecks()  # components' readiness checks (/readyz), see corral up
        self._openapi: dict[str, bytes] = {}
        self._builtin_openapi: dict[str, bytes] = {}
        self._discovery = [*discovery.registry_resources(self.registry), *REVIEWS]
        self._group_versions = discovery.group_versions(self._discovery)
        self._openapi_v2: tuple[bytes, bytes] | None = None
        self.handlers.crds.listeners.append(self._served_changed)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._front: LeanFront | None = None
        self.url = ""
        self.token = ""
        self.ca_file: Path | None = None
        self.ready = False

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        if self.config.data_dir is not None:
            private_umask()  # store.db (SQLite gives -wal/-shm its mode), tokens, TLS key: 0600
            make_private(self.config.data_dir, API_SERVER_ENTRIES)  # a data dir an older corral left 0755/0644, too
            self.token = self.tokens.ensure_admin()
            self.handlers.agent_token = self.token
        started = time.perf_counter()
        await self.store.open()
        self._load_seconds.set(time.perf_counter() - started)
        await self._ensure_system_namespaces()
        self._builtin_openapi = openapi.build_documents(self.registry)
        self._openapi = dict(self._builtin_openapi)
        await self.handlers.crds.start(self.handlers.prepare_new)  # publish corral's CRDs, serve the stored ones
        app = web.Application(client_max_size=MAX_BODY + 1024 * 1024, middlewares=[self._middleware])
        app.router.add_route("*", "/{path:.*}", self._route)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0,
                                   keepalive_timeout=self.config.keepalive_timeout)
        await self._runner.setup()
        ssl_context = None
        cert, key = self.config.tls_cert, self.config.tls_key
        if cert is None and self.config.tls and self.config.data_dir is not None:
            cert, key = ensure_self_signed(self.config.data_dir / "tls", self.config.host)
        if cert is not None:
            ssl_context = serving_context(cert, key)
            self.ca_file = cert
        # Connections start on the lean front (hot requests); it hands the others to aiohttp.
        fallback = self._runner.server
        assert fallback is not None
        self._front = LeanFront(self._lean_dispatch, fallback, lean_eligible,
                                idle_timeout=self.config.keepalive_timeout)
        server = await asyncio.get_running_loop().create_server(
            self._front, self.config.host, self.config.port, ssl=ssl_context, backlog=1024)
        self._server = server
        port = self.config.port
        if port == 0:
            port = server.sockets[0].getsockname()[1]
        scheme = "https" if ssl_context else "http"
        host = self.config.host if self.config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        self.url = f"{scheme}://{host}:{port}"
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.store.close()
        if self._server is not None:
            self._server.close()
        if self._front is not None:
            self._front.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


    def _served_changed(self) -> None:
        """A CRD was created, changed or deleted: discovery and OpenAPI follow the registry."""
        self._discovery = [*discovery.registry_resources(self.registry), *REVIEWS]
        self._group_versions = discovery.group_versions(self._discovery)
        self._openapi = {**self._builtin_openapi, **self.handlers.crds.openapi_documents()}
        self._openapi_v2 = None  # rebuilt on next use

    async def _ensure_system_namespaces(self) -> None:
        key = resource_key(self.handlers.namespace_rt)
        last = None
        for name in SYSTEM_NAMESPACES:
            if self.store.get(key, "", name) is None:
                obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                self.handlers.prepare_new(self.handlers.namespace_rt, obj, None)
                last = self.store.create(key, obj)
        if last is not None:
            await last.wait()

    def write_kubeconfig(self, path: Path, token: str | None = None) -> None:
        """A kubeconfig (mode 0600) that points at this server with the admin token."""
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "corral", "cluster": {"server": self.url, **(
                {"certificate-authority-data": base64.b64encode(self.ca_file.read_bytes()).decode()}
                if self.ca_file is not None else {})}}],
            "users": [{"name": "admin", "user": {"token": token or self.token}}],
            "contexts": [{"name": "corral", "context": {"cluster": "corral", "user": "admin", "namespace": "default"}}],
            "current-context": "corral",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(yaml.safe_dump(config, sort_keys=False))
        os.chmod(path, 0o600)

    # ---- HTTP -----------------------------------------------------------------------

    async def _lean_dispatch(self, lean: LeanRequest) -> web.StreamResponse:
        """A request from the lean front: the same path as aiohttp's (auth, route, errors, metrics)."""
        # LeanRequest has every attribute of web.Request that _route and the handlers use
        request = cast(web.Request, lean)
        try:
            return await self._middleware(request, self._route)
        except Exception as exc:  # aiohttp would answer 500 too
            LOG.exception("error serving %s %s", lean.method, lean.path)
            return _status_response(ApiError(500, "InternalError", f"an error on the server ({exc}) has prevented "
                                             "the request from succeeding"))

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        verb = request.method
        resource = ""
        code = 500
        try:
            path = request[ROUTE_PATH] = route_path(request.raw_path)
            if path not in PUBLIC_PATHS and not dashboard.is_public(path):
                identity = self._authenticate(request)
                if identity is None:
                    raise ApiError(401, "Unauthorized", "Unauthorized: a valid bearer token is required")
                request[IDENTITY] = identity
            response: web.StreamResponse = await handler(request)
            code = response.status
            resource = request.get(RESOURCE, "")
            return response
        except ApiError as error:
            code = error.code
            return _status_response(error)
        except UnavailableError as exc:
            code = 503
            return _status_response(ApiError(503, "ServiceUnavailable", str(exc)))
        except ObjectTooLargeError as exc:  # the decoded object, however small its request body was
            code = 413
            return _status_response(ApiError(413, "RequestEntityTooLarge", str(exc)))
        except web.HTTPException as exc:
            code = exc.status
            return _status_response(ApiError(exc.status, exc.reason.replace(" ", ""), exc.text or exc.reason))
        finally:
            self.request_metrics.observe(verb, resource, code,
                                         None if request.get(WATCHING) else time.perf_counter() - started)

    def _authenticate(self, request: web.Request) -> Identity | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        return self.tokens.identify(header[7:].strip())

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request[ROUTE_PATH]
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz"):
            code, text = health_response(path[1:], request.query, ready=self.ready, checks=self.health,
                                         exclude=request.query.getall("exclude", []),
                                         reasons=self._authenticate(request) is not None)
            return web.Response(text=text, status=code)
        if path == "/version":
            return web.json_response({"major": "1", "minor": "32", "gitVersion": f"v1.32.0+corral-{__version__}",
                                      "platform": "python", "goVersion": "n/a", "compiler": "corral"})
        if path == "/metrics":
            return web.Response(body=generate_latest(self.metrics), content_type="text/plain")
        if parts and parts[0] == "dashboard":
            return await self.dashboard.serve(path)
        if parts[:2] == ["openapi", "v3"]:
            return self._openapi_route(request, "/".join(parts[2:]))
        if parts == ["openapi", "v2"]:
            return self._openapi_v2_route(request)
        if parts and parts[0] == "api":
            if len(parts) == 1:
                return self._aggregated(request, core=True) or web.json_response({
                    "kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})
            if parts[1] != "v1":
                raise ApiError(404, "NotFound", f"the server does not serve API version {parts[1]!r} (only v1)")
            if len(parts) == 2:
                return web.json_response(discovery.api_resource_list(self._discovery, "", "v1"))
            request[RESOURCE] = parts[4] if len(parts) > 4 and parts[2] == "namespaces" else parts[2]
            request[WATCHING] = request.query.get("watch") not in (None, "0", "false", "False", "f", "F", "FALSE")
            return await self.handlers.handle(request, "", "v1", parts[2:])
        if parts and parts[0] == "apis":
            if len(parts) == 1:
                return self._aggregated(request, core=False) or web.json_response(
                    discovery.api_group_list(self._discovery))
            versions = self._group_versions.get(parts[1])
            if versions is None or parts[1] == "":
                raise ApiError(404, "NotFound", f"the server does not serve the API group {parts[1]!r}")
            if len(parts) == 2:
                return web.json_response(discovery.api_group(parts[1], versions))
            if parts[2] not in versions:
                raise ApiError(404, "NotFound", f"the server does not serve version {parts[2]!r} of {parts[1]}")
            if len(parts) == 3:
                return web.json_response(discovery.api_resource_list(self._discovery, parts[1], parts[2]))
            if parts[1] in REVIEW_GROUPS:
                return await self._review(request, parts[1], parts[3:])
            request[RESOURCE] = parts[5] if len(parts) > 5 and parts[3] == "namespaces" else parts[3]
            request[WATCHING] = request.query.get("watch") not in (None, "0", "false", "False", "f", "F", "FALSE")
            return await self.handlers.handle(request, parts[1], parts[2], parts[3:])
        raise ApiError(404, "NotFound", f"the server could not find the requested resource {path!r}")

    def _aggregated(self, request: web.Request, *, core: bool) -> web.Response | None:
        """The aggregated discovery answer when the client asks for it (see :mod:`corral.apiserver.discovery`)."""
        version = discovery.aggregated_version(request.headers.get("Accept", ""))
        if version is None:
            return None
        body = discovery.aggregated(self._discovery, core=core, version=version)
        return web.Response(body=encode(body), headers={"Content-Type": discovery.aggregated_content_type(version),
                                                         "Vary": "Accept"})

    async def _review(self, request: web.Request, group: str, rest: list[str]) -> web.Response:
        """The create-only reviews: ``authentication.k8s.io`` SelfSubjectReview (``kubectl auth whoami``) and
        ``authorization.k8s.io`` SelfSubjectAccessReview/SelfSubjectRulesReview (``kubectl auth can-i``)."""
        plurals = [r.plural for r in REVIEWS if r.group == group]
        if len(rest) != 1 or rest[0] not in plurals:
            raise ApiError(404, "NotFound", f"{group}/v1 serves only {', '.join(plurals)}")
        request[RESOURCE] = rest[0]
        if request.method != "POST":
            raise ApiError(405, "MethodNotAllowed", f"{group}/v1 {rest[0]} only supports create (POST)")
        identity = request[IDENTITY]
        if group == AUTH_GROUP:
            answer: dict[str, Any] = {
                "kind": "SelfSubjectReview", "apiVersion": f"{AUTH_GROUP}/v1", "metadata": {"creationTimestamp": None},
                "status": {"userInfo": {"username": identity.user, "uid": identity.uid, "groups": list(identity.groups)}},
            }
        else:
            body = await self.handlers.read_body(request)
            review = authorization.access_review if rest[0] == "selfsubjectaccessreviews" else authorization.rules_review
            answer = review(body, identity)
        return web.Response(body=encode(answer), status=201, content_type=JSON)

    def _openapi_route(self, request: web.Request, rest: str) -> web.Response:
        if not rest:
            return web.json_response(openapi.root_document(self._openapi))
        body = self._openapi.get(rest)
        if body is None:
            raise ApiError(404, "NotFound", f"no OpenAPI v3 document for {rest!r}")
        return web.Response(body=body, content_type=JSON, headers={"Cache-Control": "public, immutable"})

    def _openapi_v2_route(self, request: web.Request) -> web.Response:
        media = openapi_v2.negotiate(request.headers.get("Accept", ""))
        if media is None:
            raise ApiError(406, "NotAcceptable", "/openapi/v2 is served as application/json or "
                           f"{openapi_v2.PROTOBUF_V2}; the request's Accept header allows neither")
        if self._openapi_v2 is None:  # built on first use: most clients never ask for v2
            document = openapi_v2.build_document(self.registry)
            self._openapi_v2 = (json.dumps(document).encode(), openapi_v2.encode_document(document))
        if media == openapi_v2.PROTOBUF_V2:  # kube-apiserver labels it so: Go's mime parser rejects the "@"
            return web.Response(body=self._openapi_v2[1], content_type="application/octet-stream")
        return web.Response(body=self._openapi_v2[0], content_type=media)


@dataclass
class RunningServer:
    """A started server: where it is, how to authenticate, and how to stop it."""

    server: ApiServer
    url: str
    token: str
    kubeconfig: Path | None
    ca_file: Path | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client SSL context that trusts this server (``None`` for plain HTTP)."""
        if self.ca_file is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file))

    async def stop(self) -> None:
        await self.server.stop()


async def start_server(data_dir: Path, *, port: int = 0, clock: Clock | None = None, **options: Any) -> RunningServer:
    """Start an API server on ``127.0.0.1:port`` (0 = a free port) with its data in ``data_dir``.

    HTTPS with a self-signed certificate unless ``tls=False`` (kubectl needs TLS to send a
    token; plain HTTP suits raw HTTP tests). Writes ``data_dir/kubeconfig``. For tests: ``server = await start_server(tmp_path)``, then
    ``await server.stop()``.
    """
    server = ApiServer(ServerConfig(data_dir=data_dir, port=port, **options), clock=clock)
    await server.start()
    kubeconfig = data_dir / "kubeconfig"
    server.write_kubeconfig(kubeconfig)
    return RunningServer(server, server.url, server.token, kubeconfig, server.ca_file)
