"""The routing table: a pure structure built from InferenceService and pod objects.

:func:`build_route_table` turns the services (``spec.route``, ``status.traffic``)
and their replica pods (labels ``corral.dev/inference-service`` and
``corral.dev/revision``, ``status.podIP``, the Ready condition) into an immutable
:class:`RouteTable`. The gateway swaps in a new table whenever its informers
see a change; requests only ever read a table, so routing needs no locks and
the unit tests build tables from plain dicts.

Matching: a route matches when its ``host`` (if any) equals the request's host
(port ignored), the path starts with its ``pathPrefix`` at a boundary (end,
``/``, ``:`` or ``?``), and its ``model`` (if any) equals the ``model`` field of
an OpenAI-style JSON body. The most specific match wins: host before no host,
longer prefix before shorter, a model route before a model-less one.

Traffic: ``status.traffic`` (written by the InferenceService controller) lists
revisions and percentages; without it, the service's latest revision (or all
its pods) takes everything. A revision without ready replicas gives its share
to the others, so a canary that never becomes ready costs no request.

Objects the table cannot be built from (an InferenceService or pod with a malformed
field, e.g. stored by an older version past validation) are left out: such a service
gets no route and is listed in :attr:`RouteTable.invalid` with the problem (the gateway
logs it once and shows it in ``/_corral/routes``), such a pod is no backend; every other
service keeps its route.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from corral.api.registry import Obj

SERVICE_LABEL = "corral.dev/inference-service"
REVISION_LABEL = "corral.dev/revision"
RESERVED_PREFIX = "/_corral/"

DEFAULT_TIMEOUT = 300.0
DEFAULT_MAX_QUEUED = 1000
DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_ACTIVATION_TIMEOUT = 300.0


@dataclass(frozen=True)
class Backend:
    """One ready replica: the pod's key and ``host:port``."""

    pod: str
    address: str
    revision: str


@dataclass(frozen=True)
class RevisionTarget:
    name: str
    percent: float
    backends: tuple[Backend, ...]


@dataclass(frozen=True)
class Route:
    service: str
    """``namespace/name`` of the InferenceService."""
    path_prefix: str
    host: str | None = None
    model: str | None = None
    strip_prefix: bool = False
    revisions: tuple[RevisionTarget, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    max_queued: int = DEFAULT_MAX_QUEUED
    max_body_bytes: int = DEFAULT_MAX_BODY
    container_concurrency: int = 0
    """Requests one replica takes at once (0 = unlimited)."""
    activation_timeout: float = DEFAULT_ACTIVATION_TIMEOUT
    idempotent_post: bool = False

    @property
    def ready_backends(self) -> int:
        return sum(len(r.backends) for r in self.revisions)

    def pick_revision(self, rng: random.Random) -> RevisionTarget | None:
        """A revision by traffic share among those with ready replicas (None if none has any)."""
        revisions = self.revisions
        if len(revisions) == 1:  # the common case: no canary
            only = revisions[0]
            return only if only.backends else None
        live = [r for r in self.revisions if r.backends and r.percent > 0]
        if not live:
            live = [r for r in self.revisions if r.backends]
            if not live:
                return None
            return live[0]
        total = sum(r.percent for r in live)
        point = rng.random() * total
        for target in live:
            point -= target.percent
            if point < 0:
                return target
        return live[-1]

    def upstream_path(self, path: str) -> str:
        if not self.strip_prefix:
            return path
        rest = path[len(self.path_prefix.rstrip("/")) :]
        return rest if rest.startswith("/") else "/" + rest


def _boundary_match(path: str, prefix: str) -> bool:
    if prefix in ("", "/"):
        return True
    stripped = prefix.rstrip("/")
    if not path.startswith(stripped):
        return False
    rest = path[len(stripped) :]
    return rest == "" or rest[0] in "/:?"


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...] = ()
    by_service: dict[str, Route] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    """Services left out because they cannot be read: ``namespace/name`` -> the problem."""

    def candidates(self, host: str | None, path: str) -> list[Route]:
        bare_host = (host or "").split(":")[0].lower()
        found = [
            r for r in self.routes
            if (r.host is None or r.host == bare_host) and _boundary_match(path, r.path_prefix)
        ]
        found.sort(key=lambda r: (r.host is not None, len(r.path_prefix.rstrip("/")), r.model is not None),
                   reverse=True)
        return found

    def needs_model(self, host: str | None, path: str) -> bool:
        """Whether routing this request depends on the ``model`` field of its body."""
        found = self.candidates(host, path)
        # The most specific route decides: a model-less one wins regardless of the body.
        return bool(found) and found[0].model is not None

    def match(self, host: str | None, path: str, model: str | None = None) -> Route | None:
        for route in self.candidates(host, path):
            if route.model is None or route.model == model:
                return route
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"service": r.service, "host": r.host, "pathPrefix": r.path_prefix, "model": r.model,
             "revisions": [{"name": t.name, "percent": t.percent, "ready": [b.address for b in t.backends]}
                           for t in r.revisions]}
            for r in self.routes
        ]


def default_path_prefix(name: str) -> str:
    return f"/v1/models/{name}"


def service_key(obj: Obj) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace') or 'default'}/{metadata.get('name')}"


def pod_ready(pod: Obj) -> bool:
    metadata = pod.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def serving_port(template: dict[str, Any]) -> int | None:
    """The one serving port of a pod template (the first declared container port)."""
    for container in (template.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("containerPort"):
                return int(port["containerPort"])
    return None


def pod_port(pod: Obj) -> int | None:
    return serving_port({"spec": pod.get("spec") or {}})


def build_route(service: Obj, pods: Iterable[Obj]) -> Route | None:
    """The route of one InferenceService given the pods labelled with its name."""
    metadata = service.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return None
    spec = service.get("spec") or {}
    status = service.get("status") or {}
    route_spec = spec.get("route") or {}
    gateway = spec.get("gateway") or {}
    key = service_key(service)
    ready_by_revision: dict[str, list[Backend]] = {}
    for pod in pods:
        try:
            backend = _backend(pod)
        except (TypeError, AttributeError, ValueError, KeyError):
            continue  # a pod that cannot be read is no backend (the agent reports what is wrong with it)
        if backend is not None:
            ready_by_revision.setdefault(backend.revision, []).append(backend)
    targets: list[RevisionTarget] = []
    traffic = status.get("traffic") or []
    if traffic:
        for entry in traffic:
            name = str(entry.get("revision") or "")
            percent = float(entry.get("percent") or 0)
            targets.append(RevisionTarget(name, percent, tuple(sorted(ready_by_revision.get(name, []),
                                                                       key=lambda b: b.pod))))
    else:
        latest = status.get("latestRevision")
        names = [latest] if latest else sorted(ready_by_revision)
        for name in names:
            targets.append(RevisionTarget(name, 100.0 / max(1, len(names)),
                                          tuple(sorted(ready_by_revision.get(name, []), key=lambda b: b.pod))))
    name = str(metadata.get("name"))
    return Route(
        service=key,
        path_prefix=str(route_spec.get("pathPrefix") or default_path_prefix(name)),
        host=(str(route_spec["host"]).lower() if route_spec.get("host") else None),
        model=route_spec.get("model"),
        strip_prefix=bool(route_spec.get("stripPrefix", False)),
        revisions=tuple(targets),
        timeout=float(gateway.get("timeoutSeconds") or DEFAULT_TIMEOUT),
        max_queued=int(gateway.get("maxQueuedRequests") or DEFAULT_MAX_QUEUED),
        max_body_bytes=int(gateway.get("maxBodyBytes") or DEFAULT_MAX_BODY),
        container_concurrency=int(gateway.get("containerConcurrency") or 0),
        activation_timeout=float(gateway.get("activationTimeoutSeconds") or DEFAULT_ACTIVATION_TIMEOUT),
        idempotent_post=bool(gateway.get("idempotentPost", False)),
    )


def _backend(pod: Obj) -> Backend | None:
    """The backend a ready replica pod serves on (None when it is not ready or has no port)."""
    if not pod_ready(pod):
        return None
    pod_meta = pod.get("metadata") or {}
    port = pod_port(pod)
    if port is None:
        return None
    return Backend(
        pod=f"{pod_meta.get('namespace') or 'default'}/{pod_meta.get('name')}",
        address=f"{pod['status']['podIP']}:{port}",
        revision=str((pod_meta.get("labels") or {}).get(REVISION_LABEL, "")),
    )


def build_route_table(services: Iterable[Obj], pods: Iterable[Obj]) -> RouteTable:
    """The whole table: one route per InferenceService, pods grouped by their service label."""
    pods_by_service: dict[str, list[Obj]] = {}
    for pod in pods:
        metadata = pod.get("metadata") or {}
        labels = metadata.get("labels") or {}
        name = labels.get(SERVICE_LABEL) if isinstance(labels, dict) else None
        if name:
            pods_by_service.setdefault(f"{metadata.get('namespace') or 'default'}/{name}", []).append(pod)
    routes = []
    invalid: dict[str, str] = {}
    for service in services:
        key = service_key(service)
        try:
            route = build_route(service, pods_by_service.get(key, []))
        except (TypeError, AttributeError, ValueError, KeyError, OverflowError) as error:
            invalid[key] = f"{type(error).__name__}: {error}"
            continue
        if route is not None:
            routes.append(route)
    return RouteTable(routes=tuple(routes), by_service={r.service: r for r in routes}, invalid=invalid)
