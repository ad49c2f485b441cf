"""Resource handlers: Kubernetes verbs and semantics over the store.

Paths: ``/api/v1/...`` and ``/apis/GROUP/VERSION/...``, namespaced
(``namespaces/NS/PLURAL[/NAME[/SUBRESOURCE]]``) and cluster-scoped
(``PLURAL[/NAME[/SUBRESOURCE]]``). Verbs: get, list, watch, create, update, patch,
delete, deletecollection; subresources ``status``, ``pods/binding``, ``pods/log``, ``scale``
(:mod:`corral.apiserver.scale`); ``pods/exec``, ``pods/attach`` and ``pods/portforward`` are
relayed to the node agent (:mod:`.streams`).

Semantics worth knowing
-----------------------
* Each write is checked and applied without yielding to the event loop between reading
  the current object and storing the new one, so ``resourceVersion`` preconditions are
  exact; the answer comes after the SQLite commit. Nothing changes on a rejected request.
* ``update``/``patch`` with a stale ``metadata.resourceVersion`` → 409 ConflictError. An update
  that changes nothing is a no-op (same ``resourceVersion``, no event). ``generation``
  starts at 1 and bumps only when the kind's spec fields change. On kinds with a
  ``status`` subresource the main resource ignores status changes and ``/status``
  changes only status.
* **Deletion.** An object with finalizers gets ``deletionTimestamp`` and stays until the
  last finalizer is removed. **A pod with ``spec.nodeName`` set that has not finished
  (phase not Succeeded/Failed) is deleted gracefully**: the server sets
  ``metadata.deletionTimestamp`` (now + grace) and ``metadata.deletionGracePeriodSeconds``
  (``gracePeriodSeconds`` from the request, else ``spec.terminationGracePeriodSeconds``,
  else 30) and keeps the pod. The node's agent sees that on its watch, stops the
  containers (SIGTERM, then SIGKILL after the grace period), and then deletes the pod
  with ``gracePeriodSeconds=0``, which removes it (or, with finalizers left, waits for
  them). A later delete may shorten the grace period, never lengthen it. Unbound or
  finished pods, and any delete with ``gracePeriodSeconds=0``, go at once.
* A deleted namespace turns ``Terminating``; its objects are deleted (pods gracefully,
  as above) and the namespace disappears once it is empty. Nothing can be created in a
  terminating namespace; ``default`` and ``kube-system`` cannot be deleted.
* ``propagationPolicy`` (body, query, or the deprecated ``orphanDependents``) works as in
  Kubernetes: ``Background`` (the default) removes the object now and leaves its
  dependents to the garbage collector; ``Foreground`` adds the ``foregroundDeletion``
  finalizer, so the object stays (with ``deletionTimestamp``) until the collector has
  deleted its dependents; ``Orphan`` adds the ``orphan`` finalizer, and the collector
  removes the object's ``ownerReferences`` from its dependents before letting it go.
  Without a running collector those two wait, as they do on a cluster without one.
* Lists with ``limit`` page in ``(namespace, name)`` order; every ``continue`` page shows
  the state at the first page's ``resourceVersion`` (rebuilt from the watch history, so a
  token older than the history gets 410 Expired, as in Kubernetes).
* Watches follow :mod:`corral.apiserver.listoptions`: with ``sendInitialEvents=true`` (a
  *watch-list*) the matching objects, then the bookmark annotated
  ``k8s.io/initial-events-end``, then the changes. A list or watch whose path or field
  selector names the object finds it by key (:meth:`Handlers.candidates`).
* Reads wait until every write already applied in memory is durable, so a client never
  reads (or watches) a change that a crash could take back.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import yaml
from aiohttp import web

from corral.api.crds import STORE_KEY as CRD_KEY
from corral.api.ownership import GC_FINALIZERS, GC_IGNORED_PLURALS, PROPAGATION_POLICIES
from corral.api.registry import Obj, Registry, RegistryError, ResourceType
from corral.api.selectors import SelectorError, equality_fields, matcher
from corral.apiserver import errors, patch, protobuf, scale, services, streams, tables
from corral.apiserver.crds import CustomResources, is_custom, scale_of, with_replicas
from corral.apiserver.errors import ApiError, bad_request
from corral.apiserver.listoptions import (
    EXACT,
    INITIAL_EVENTS_END,
    ListOptions,
    parse_list_options,
    parse_optional_bool,
    too_large_resource_version,
)
from corral.apiserver.logs import file_log, log_query, node_log_endpoint, proxy_log
from corral.apiserver.omitempty import omit_empty_metadata
from corral.apiserver.validation import (
    FieldValidation,
    check_delete_options,
    check_generate_name,
    check_name,
    check_strict_body,
    check_type,
    decode_body,
    decode_json,
    grace_period,
    parse_continue,
    parse_field_validation,
    validate,
    validate_update,
    warning_value,
)
from corral.store import AlreadyExistsError, Entry, ExpiredError, Store, UnavailableError, WatchEvent, encode
from corral.util import fastjson
from corral.util.clock import Clock, format_timestamp, parse_timestamp
from corral.util.paths import PathEscapeError
from corral.util.podlogs import pod_log_path

MAX_BODY = 3 * 1024 * 1024
MAX_GRACE_SECONDS = 100 * 365 * 86400
"""A longer grace period (up to 2^63 s is valid) still ends within a century: a datetime cannot go further."""
SYSTEM_NAMESPACES = ("default", "kube-system")
DEFAULT_SCHEDULER = "corral"
JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"


def parse_bool(value: str | None, name: str) -> bool:
    """Go's ``strconv.ParseBool`` (see :func:`corral.apiserver.listoptions.parse_optional_bool`); absent is false."""
    return bool(parse_optional_bool(value, name))


def parse_int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid integer value {value!r} for query parameter {name!r}") from None


def propagation_policy(options: dict[str, Any]) -> str | None:
    """The delete's propagation policy from DeleteOptions (``orphanDependents`` is the old form)."""
    policy = options.get("propagationPolicy")
    orphan = options.get("orphanDependents")
    if orphan is not None:
        if isinstance(orphan, str):
            orphan = parse_bool(orphan, "orphanDependents")
        if not isinstance(orphan, bool):
            raise bad_request("orphanDependents: Invalid value: must be true or false")
        if policy is not None:
            raise bad_request("propagationPolicy: Invalid value: orphanDependents and propagationPolicy "
                              "cannot both be set")
        policy = "Orphan" if orphan else "Background"
    if policy is not None and policy not in PROPAGATION_POLICIES:
        raise bad_request(f"propagationPolicy: Unsupported value: {policy!r}: supported values: "
                          + ", ".join(f'"{p}"' for p in PROPAGATION_POLICIES))
    return None if policy is None else str(policy)


def resource_key(rt: ResourceType) -> str:
    """The store's name for a resource: ``plural`` or ``plural.group``."""
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


@dataclass
class Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclass(frozen=True)
class Accept:
    table: bool = False
    partial: bool = False
    yaml: bool = False
    protobuf: bool = False


@functools.lru_cache(maxsize=256)
def parse_accept(header: str) -> Accept:
    """The response format a request asks for (memoized per distinct header: it is parsed on every request)."""
    return _parse_accept(header)


def _parse_accept(header: str) -> Accept:
    for part in header.split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        media = part.split(";")[0].strip()
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return Accept(table=True)
        if params.get("as") in ("PartialObjectMetadata", "PartialObjectMetadataList") and params.get("g") == "meta.k8s.io":
            return Accept(partial=True)
        if media in ("application/json", "*/*", "application/*"):
            return Accept()
        if media == "application/yaml":
            return Accept(yaml=True)
        if media == PROTOBUF:
            return Accept(protobuf=True)
    return Accept()


def protobuf_response(obj: Obj, status: int = 200, headers: dict[str, str] | None = None) -> web.Response | None:
    """``obj`` as a protobuf response, or None when it has no protobuf form (the caller answers JSON)."""
    try:
        body = protobuf.encode_object(obj)
    except protobuf.NotRepresentableError:
        return None
    return web.Response(body=body, status=status, content_type=PROTOBUF, headers=headers)


def read_protobuf(data: bytes, what: str) -> Obj:
    """The JSON object a protobuf request body stands for; 400 when malformed, 415 for kinds it has no form for."""
    try:
        return protobuf.decode_object(data)
    except protobuf.NotRepresentableError as exc:
        raise ApiError(415, "UnsupportedMediaType",
                       f"{exc}: corral reads protobuf bodies only for the built-in kinds (Namespace, Node, Pod, Event, "
                       "ConfigMap, Secret, Service, Lease, PriorityClass, Deployment, ReplicaSet, Job, Scale, "
                       "DeleteOptions); send this object as JSON "
                       "or YAML") from None
    except (protobuf.ProtobufError, UnicodeDecodeError) as exc:
        raise bad_request(f"the {what} is not a valid Kubernetes protobuf message: {exc}") from None


WATCH_HIGH_WATER = 1024 * 1024
"""Bytes a watch connection may have unsent before its events wait in the history instead."""


def push_deliver(transport: asyncio.BaseTransport, resource: str, namespace: str | None,
                 name: str | None) -> Callable[[list[WatchEvent], dict[Any, bytes]], bool]:
    """The push callback of a plain JSON watch (no selector, no Table): see :class:`corral.store.Watcher`.

    Each commit's matching events are joined into one HTTP chunk, built once per distinct
    ``(resource, namespace, name)`` filter and shared by every watcher with that filter, and
    written straight to the socket (after aiohttp sent the headers; aiohttp writes the
    final ``0\\r\\n\\r\\n``). A full socket buffer (a slow reader) makes it decline, and the
    watch's task then catches up from the history with backpressure.
    """
    transport = cast(asyncio.WriteTransport, transport)  # not isinstance: uvloop's transports are not subclasses
    shared_key = (resource, namespace, name)

    def deliver(events: list[WatchEvent], shared: dict[Any, bytes]) -> bool:
        if transport.is_closing() or transport.get_write_buffer_size() > WATCH_HIGH_WATER:
            return False
        chunk = shared.get(shared_key)
        if chunk is None:
            data = b"".join(event.line for event in events
                            if event.entry.resource == resource
                            and (namespace is None or event.entry.namespace == namespace)
                            and (name is None or event.entry.name == name))
            chunk = shared[shared_key] = b"%x\r\n%b\r\n" % (len(data), data) if data else b""
        if chunk:
            transport.write(chunk)
        return True

    return deliver


class Handlers:
    """Every resource verb. One instance per server; it holds the store and the registry."""

    def __init__(self, store: Store, registry: Registry, clock: Clock, data_dir: Path | None, *,
                 bookmark_interval: float = 60.0, default_watch_timeout: float = 1800.0,
                 service_cidr: str = services.DEFAULT_SERVICE_CIDR) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.data_dir = data_dir
        self.agent_token = ""  # presented to node agents when proxying pods/log; the server sets its own
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self._patch_meta: dict[str, patch.PatchMeta] = {}
        # uids need uniqueness, not secrecy: one urandom seed instead of a syscall per object
        self._random = random.Random(os.urandom(32))
        self._pending_namespace_checks: set[str] = set()
        self._now_key: datetime | None = None
        self._now_text = ""
        self.namespace_rt = registry.by_kind("v1", "Namespace")
        self.node_rt = registry.by_kind("v1", "Node")
        self.pod_rt = registry.by_kind("v1", "Pod")
        self.secret_rt = registry.by_kind("v1", "Secret")
        self.service_rt = registry.by_kind("v1", "Service")
        self.service_cidr = str(ipaddress.ip_network(service_cidr))
        self.crds = CustomResources(store, registry, self.now)

    # ---- helpers --------------------------------------------------------------------

    def now(self) -> str:
        moment = self.clock.now().replace(microsecond=0)
        if moment != self._now_key:  # strftime once per second, not once per write
            self._now_key, self._now_text = moment, format_timestamp(moment)
        return self._now_text

    def new_uid(self) -> str:
        """A random (version 4) UUID, formatted without building a ``uuid.UUID``."""
        value = self._random.getrandbits(128)
        value = (value & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
        text = f"{value:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def meta_for(self, rt: ResourceType) -> patch.PatchMeta:
        key = resource_key(rt)
        if key not in self._patch_meta:
            self._patch_meta[key] = patch.patch_meta(rt.model)
        return self._patch_meta[key]

    def resolve(self, group: str, version: str, segments: list[str]) -> Target:
        """Map the path after ``/api/v1`` or ``/apis/G/V`` to a resource, namespace, name and subresource."""
        namespace: str | None = None
        if len(segments) >= 3 and segments[0] == "namespaces" and segments[2] not in ("status", "finalize"):
            namespace, segments = segments[1], segments[2:]
        if not segments or len(segments) > 3 or any(s == "" for s in segments):
            raise errors.not_found("", "/".join(segments))
        plural = segments[0]
        if group == "" and plural == "bindings" and namespace is not None and len(segments) == 1:
            return Target(self.pod_rt, namespace, None, "bindings")
        try:
            rt = self.registry.by_resource(group, version, plural)
        except RegistryError as exc:
            raise ApiError(404, "NotFound", str(exc.args[0])) from None
        name = segments[1] if len(segments) > 1 else None
        subresource = segments[2] if len(segments) > 2 else None
        if namespace is not None and not rt.namespaced:
            raise ApiError(404, "NotFound", f"{rt.plural} is cluster-scoped; it has no namespace {namespace!r}")
        if subresource is not None and subresource not in rt.subresources:
            raise ApiError(404, "NotFound", f"{rt.plural} has no subresource {subresource!r} (it has: "
                           f"{', '.join(sorted(rt.subresources)) or 'none'})")
        return Target(rt, namespace, name, subresource)

    async def read_body(self, request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge",
                           f"the request body is {request.content_length} bytes; the limit is {MAX_BODY} bytes (3 MiB)")
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "RequestEntityTooLarge", f"the request body is larger than the limit of {MAX_BODY} bytes (3 MiB)") from None
        if len(data) > MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge", f"the request body is {len(data)} bytes; the limit is {MAX_BODY} bytes (3 MiB)")
        if not data.strip():
            raise bad_request("the request body is empty; expected a JSON or YAML object")
        content_type = request.content_type
        if content_type == PROTOBUF:
            return read_protobuf(data, "request body")
        if "cbor" in content_type:
            raise ApiError(415, "UnsupportedMediaType", "corral accepts JSON and YAML bodies, not CBOR")
        return decode_body(data, content_type)

    async def read_object(self, request: web.Request, rt: ResourceType) -> Obj:
        body = await self.read_body(request)
        if not isinstance(body, dict):
            raise bad_request(f"the request body must be a {rt.kind} object, not {type(body).__name__}")
        check_type(rt, body)
        metadata = body.get("metadata")
        if metadata is None:
            body["metadata"] = {}
        elif not isinstance(metadata, dict):
            raise bad_request("metadata must be an object")
        return body

    def field_validation(self, request: web.Request, rt: ResourceType, subresource: str | None = None) -> FieldValidation:
        """Kubernetes' default is Warn (custom resources: unknown fields pruned with a Warning header);
        corral's own kinds stay Strict on their main resource (docs/apiserver.md)."""
        default: FieldValidation = "Strict" if rt.strict and subresource is None and not is_custom(rt) else "Warn"
        return parse_field_validation(request.query.get("fieldValidation"), default)

    def respond(self, request: web.Request, rt: ResourceType, entry_or_obj: Entry | Obj, status: int = 200,
                warnings: list[str] | None = None) -> web.Response:
        accept = parse_accept(request.headers.get("Accept", ""))
        obj = entry_or_obj.obj if isinstance(entry_or_obj, Entry) else entry_or_obj
        if is_custom(rt):
            entry_or_obj = obj = self.crds.read_as(rt, obj)
        headers = {"Warning": ", ".join(warning_value(w) for w in warnings)} if warnings else None
        if accept.table:
            body = tables.table(rt, [obj], self.clock.now(), request.query.get("includeObject", "Metadata"),
                                {"resourceVersion": str(obj.get("metadata", {}).get("resourceVersion", ""))})
            return web.Response(body=encode(body), status=status, content_type=JSON, headers=headers)
        if accept.partial:
            return web.Response(body=encode(tables.partial_metadata(obj)), status=status, content_type=JSON, headers=headers)
        if accept.yaml:
            return web.Response(text=yaml.safe_dump(obj), status=status, content_type="application/yaml", headers=headers)
        if accept.protobuf and (response := protobuf_response(obj, status, headers)) is not None:
            return response
        raw = entry_or_obj.raw if isinstance(entry_or_obj, Entry) else encode(obj)
        return web.Response(body=raw, status=status, content_type=JSON, headers=headers)

    @staticmethod
    def respond_scale(request: web.Request, obj: Obj, headers: dict[str, str] | None = None) -> web.Response:
        """An ``autoscaling/v1`` Scale in protobuf when the client prefers it (as kubectl does), else JSON."""
        if parse_accept(request.headers.get("Accept", "")).protobuf and (
                response := protobuf_response(obj, headers=headers)) is not None:
            return response
        return web.Response(body=encode(obj), content_type=JSON, headers=headers)

    def get_entry(self, rt: ResourceType, namespace: str | None, name: str) -> Entry:
        entry = self.store.get(resource_key(rt), namespace or "", name)
        if entry is None:
            raise errors.not_found(rt.plural, name, rt.group)
        return entry

    async def commit(self, write: Any) -> Entry:
        try:
            entry: Entry = await write.wait()
        except UnavailableError as exc:
            raise ApiError(503, "ServiceUnavailable", str(exc)) from None
        if entry.resource == CRD_KEY:  # a CRD's resources are served (or gone) before the answer
            await self.crds.sync()
        return entry

    # ---- dispatch -------------------------------------------------------------------

    async def handle(self, request: web.Request, group: str, version: str, segments: list[str]) -> web.StreamResponse:
        target = self.resolve(group, version, segments)
        method = request.method
        rt, sub = target.rt, target.subresource
        if rt.namespaced and target.namespace is None and (target.name is not None or method == "POST"):
            raise ApiError(404, "NotFound", f"{rt.plural} is namespaced: use /namespaces/NAMESPACE/{rt.plural}")
        if sub == "bindings":
            if method != "POST":
                raise errors.method_not_allowed("bindings only support POST")
            return await self.bind(request, target, None)
        if target.name is None:
            if method == "GET":
                options = parse_list_options(request.query)
                if options.watch:
                    return await self.watch(request, target, options)
                return await self.list_objects(request, target, options)
            if method == "POST":
                return await self.create(request, target)
            if method == "DELETE":
                return await self.delete_collection(request, target)
            raise errors.method_not_allowed(f"{method} is not supported on the collection {rt.plural}")
        if sub == "binding":
            if method != "POST":
                raise errors.method_not_allowed("pods/binding only supports POST")
            return await self.bind(request, target, target.name)
        if sub == "scale":  # a custom resource's replicas live where its CRD says; built-in kinds' in spec.replicas
            return await (self.custom_scale(request, target) if is_custom(rt) else self.scale(request, target))
        if sub == "log":
            if method != "GET":
                raise errors.method_not_allowed("pods/log only supports GET")
            return await self.log(request, target)
        if sub in streams.KINDS:
            return await self.stream_session(request, target, sub)
        if method == "GET":
            await self.store.barrier()
            return self.respond(request, rt, self.get_entry(rt, target.namespace, target.name))
        if method == "PUT":
            return await self.update(request, target)
        if method == "PATCH":
            return await self.patch(request, target)
        if method == "DELETE":
            if sub is not None:
                raise errors.method_not_allowed(f"DELETE is not supported on {rt.plural}/{sub}")
            return await self.delete(request, target)
        raise errors.method_not_allowed(f"{method} is not supported on {rt.plural}")

    # ---- list -----------------------------------------------------------------------

    def selector(self, request: web.Request) -> Callable[[Obj], bool] | None:
        try:
            return matcher(request.query.get("labelSelector"), request.query.get("fieldSelector"))
        except SelectorError as exc:
            raise bad_request(str(exc)) from None

    def candidates(self, request: web.Request, target: Target) -> list[Entry]:
        """The stored objects a list or watch of ``target`` may show, in order: every one, or — when the
        path or the field selector names the object (``metadata.name``, ``metadata.namespace``) — only
        those, found by key without decoding the rest. The selectors are applied after this."""
        key = resource_key(target.rt)
        try:
            fields = equality_fields(request.query.get("fieldSelector"))
        except SelectorError as exc:
            raise bad_request(str(exc)) from None
        name = target.name or fields.get("metadata.name")
        namespace = target.namespace
        if namespace is None and target.rt.namespaced:
            namespace = fields.get("metadata.namespace")
        if name is not None and (namespace is not None or not target.rt.namespaced):
            entry = self.store.get(key, namespace or "", name)
            return [] if entry is None else [entry]
        entries = self.store.entries(key, namespace)
        return entries if name is None else [e for e in entries if e.name == name]

    async def list_objects(self, request: web.Request, target: Target, options: ListOptions) -> web.StreamResponse:
        rt = target.rt
        select = self.selector(request)
        limit = parse_int(request.query.get("limit"), "limit")
        token = request.query.get("continue")
        await self.store.barrier()
        rv = self.store.rv
        minimum = options.minimum_rv() if options.resource_version_match else None
        if minimum is not None and minimum > rv:
            raise too_large_resource_version(minimum, rv)
        if options.resource_version_match == EXACT and minimum is not None and not token:
            try:  # the state at exactly that version, rebuilt from the watch history
                entries = self.store.entries_at(resource_key(rt), target.namespace, minimum)
            except ExpiredError:
                raise errors.gone(f"too old resource version: {minimum} ({self.store.oldest_watchable_rv})") from None
            rv = minimum
        elif token:
            start, rv = parse_continue(token)
            try:  # every page shows the state of the first page's resourceVersion, as Kubernetes does
                entries = self.store.entries_at(resource_key(rt), target.namespace, rv)
            except ExpiredError:
                raise errors.gone("The provided continue parameter is too old to display a consistent list "
                                  "result. You can start a new list without the continue parameter.") from None
            entries = [e for e in entries if (e.namespace, e.name) > (start[0], start[1])]
        else:
            entries = self.candidates(request, target)
        if select is not None:
            entries = [e for e in entries if select(e.obj)]
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit is not None and limit > 0 and len(entries) > limit:
            last = entries[limit - 1]
            metadata["continue"] = base64.urlsafe_b64encode(
                json.dumps({"rv": rv, "start": [last.namespace, last.name]}).encode()).decode()
            metadata["remainingItemCount"] = len(entries) - limit
            entries = entries[:limit]
        accept = parse_accept(request.headers.get("Accept", ""))
        if accept.table:
            body = tables.table(rt, [e.obj for e in entries], self.clock.now(),
                                request.query.get("includeObject", "Metadata"), metadata)
            return web.Response(body=encode(body), content_type=JSON)
        if accept.partial:
            body = {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
                    "items": [tables.partial_metadata(e.obj) for e in entries]}
            return web.Response(body=encode(body), content_type=JSON)
        if accept.protobuf and (response := protobuf_response(
                {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": metadata,
                 "items": [e.obj for e in entries]})) is not None:
            return response
        head = encode({"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": metadata})
        items = [encode(self.crds.read_as(rt, e.obj)) for e in entries] if is_custom(rt) else [e.raw for e in entries]
        raw = head[:-1] + b',"items":[' + b",".join(items) + b"]}"
        if accept.yaml:
            return web.Response(text=yaml.safe_dump(fastjson.loads(raw)), content_type="application/yaml")
        return web.Response(body=raw, content_type=JSON)

    # ---- watch ----------------------------------------------------------------------

    async def watch(self, request: web.Request, target: Target, options: ListOptions) -> web.StreamResponse:
        """A watch; with ``sendInitialEvents`` a watch-list (see :mod:`corral.apiserver.listoptions`)."""
        rt = target.rt
        select = self.selector(request)
        bookmarks = options.allow_bookmarks
        timeout = parse_int(request.query.get("timeoutSeconds"), "timeoutSeconds")
        accept = parse_accept(request.headers.get("Accept", ""))
        include = request.query.get("includeObject", "Metadata")
        key = resource_key(rt)
        namespace = target.namespace
        minimum = options.minimum_rv()
        initial: list[Entry] = []
        if options.initial_events:
            await self.store.barrier()
            start_rv = self.store.rv
            if minimum is not None and minimum > start_rv:
                raise too_large_resource_version(minimum, start_rv)
            initial = self.candidates(request, target)
            if select is not None:
                initial = [e for e in initial if select(e.obj)]
        elif minimum is not None:
            start_rv = minimum
        else:  # sendInitialEvents=false from "now"
            await self.store.barrier()
            start_rv = self.store.rv
        response = web.StreamResponse(headers={"Content-Type": JSON, "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        deliver = None
        transport = request.transport
        custom = is_custom(rt)  # shown in the watched version, with schema defaults: no shared raw lines
        if select is None and not accept.table and not accept.partial and not custom and transport is not None:
            deliver = push_deliver(transport, key, namespace, target.name)
        try:
            watcher = self.store.watcher(start_rv, deliver)
        except ExpiredError as exc:
            await response.write(self._error_line(exc))
            return response
        headers_sent = False

        def table_line(kind: str, obj: Obj) -> bytes:
            nonlocal headers_sent
            body = tables.table(rt, [obj], self.clock.now(), include,
                                {"resourceVersion": obj["metadata"].get("resourceVersion", "")}, headers=not headers_sent)
            headers_sent = True
            return encode({"type": kind, "object": body}) + b"\n"

        def line(kind: str, entry: Entry, raw_line: bytes | None = None) -> bytes:
            if accept.table:
                return table_line(kind, entry.obj)
            if accept.partial:
                return encode({"type": kind, "object": tables.partial_metadata(entry.obj)}) + b"\n"
            if custom:
                return encode({"type": kind, "object": self.crds.read_as(rt, entry.obj)}) + b"\n"
            if raw_line is not None:
                return raw_line
            return b'{"type":"' + kind.encode() + b'","object":' + entry.raw + b"}\n"

        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout if timeout is not None and timeout > 0 else self.default_watch_timeout)
        next_bookmark = loop.time() + self.bookmark_interval
        try:
            opening = [line("ADDED", e) for e in initial]
            if options.initial_events_end_bookmark:
                opening.append(self._bookmark(rt, start_rv, accept, initial_events_end=True))
            if opening:  # one write: a push delivery may follow at once and must come after it
                await response.write(b"".join(opening))
            while True:
                now = loop.time()
                if now >= deadline:
                    break
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(0.0, next_bookmark - now))
                woke = await watcher.wait(wait)
                if watcher.closed:
                    break
                if not woke:
                    if bookmarks and loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + self.bookmark_interval
                        await response.write(self._bookmark(rt, watcher.cursor, accept))
                    continue
                try:
                    events = watcher.take()
                except ExpiredError as exc:
                    await response.write(self._error_line(exc))
                    break
                chunks = []
                for event in events:
                    entry = event.entry
                    if entry.resource != key or (namespace is not None and entry.namespace != namespace):
                        continue
                    if target.name is not None and entry.name != target.name:
                        continue
                    if select is None:
                        chunks.append(line(event.type, entry, event.line))
                        continue
                    now_match = select(entry.obj)
                    was_match = event.previous is not None and select(event.previous.obj)
                    if event.type == "DELETED":
                        if was_match:
                            chunks.append(line("DELETED", entry, event.line))
                    elif now_match and (was_match or event.type == "ADDED"):
                        chunks.append(line(event.type, entry, event.line))
                    elif now_match:
                        chunks.append(line("ADDED", entry))
                    elif was_match:
                        chunks.append(line("DELETED", entry))
                if bookmarks and loop.time() >= next_bookmark:  # busy streams of other objects still get bookmarks
                    next_bookmark = loop.time() + self.bookmark_interval
                    chunks.append(self._bookmark(rt, watcher.cursor, accept))
                if chunks:
                    await response.write(b"".join(chunks))
        except (ConnectionResetError, asyncio.CancelledError):
            watcher.close()
            raise
        finally:
            watcher.close()
        return response

    @staticmethod
    def _bookmark(rt: ResourceType, rv: int, accept: Accept, *, initial_events_end: bool = False) -> bytes:
        """A ``BOOKMARK`` event: an empty object of the watched kind (or its Table/metadata form) at ``rv``."""
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if accept.table:
            body: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
                         "columnDefinitions": [], "rows": []}
        else:
            if initial_events_end:
                metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
            kind, api_version = ("PartialObjectMetadata", "meta.k8s.io/v1") if accept.partial else (rt.kind, rt.api_version)
            body = {"kind": kind, "apiVersion": api_version, "metadata": metadata}
        return encode({"type": "BOOKMARK", "object": body}) + b"\n"

    @staticmethod
    def _error_line(exc: Exception) -> bytes:
        status = errors.gone(f"too old resource version: {exc}").status()
        return encode({"type": "ERROR", "object": status}) + b"\n"

    # ---- create ---------------------------------------------------------------------

    def check_namespace(self, rt: ResourceType, namespace: str | None) -> None:
        if not rt.namespaced or namespace is None:
            return
        entry = self.store.get(resource_key(self.namespace_rt), "", namespace)
        if entry is None:
            raise errors.not_found("namespaces", namespace)
        if entry.obj["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(f'{rt.plural} "…" is forbidden: unable to create new content in namespace '
                                   f"{namespace} because it is being terminated")

    def prepare_new(self, rt: ResourceType, obj: Obj, namespace: str | None) -> None:
        """System fields and defaults of a new object."""
        metadata = obj["metadata"]
        if rt.namespaced:
            body_ns = metadata.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise bad_request(f"the namespace of the provided object ({body_ns}) does not match the namespace "
                                  f"sent on the request ({namespace})")
            metadata["namespace"] = namespace or body_ns or "default"
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name"):
            generate = metadata.get("generateName")
            if not generate:
                raise errors.invalid(rt.kind, "", [("metadata.name", "Required value: name or generateName is required")], rt.group)
            check_generate_name(rt, generate)
            metadata["name"] = f"{generate}{self._random.getrandbits(40):010x}"[: len(generate) + 5]
        if not isinstance(metadata["name"], str):
            raise errors.invalid(rt.kind, str(metadata["name"]), [("metadata.name", "Invalid value: must be a string")], rt.group)
        check_name(rt, metadata["name"])
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            metadata.pop(field, None)
        metadata["uid"] = self.new_uid()
        metadata["creationTimestamp"] = self.now()
        metadata["generation"] = 1
        self.default(rt, obj)
        omit_empty_metadata(obj)

    def default(self, rt: ResourceType, obj: Obj) -> None:
        if rt is self.pod_rt:
            spec = obj.get("spec")
            if isinstance(spec, dict):
                if not spec.get("schedulerName"):
                    spec["schedulerName"] = DEFAULT_SCHEDULER
                spec.setdefault("restartPolicy", "Always")
                spec.setdefault("terminationGracePeriodSeconds", 30)
                self._default_priority(spec)
            status = obj.get("status")
            if not isinstance(status, dict) or not status.get("phase"):
                obj["status"] = {**(status if isinstance(status, dict) else {}), "phase": "Pending"}
        elif rt is self.namespace_rt:
            obj["status"] = {"phase": "Active"}
        elif rt is self.secret_rt:
            string_data = obj.pop("stringData", None)
            if isinstance(string_data, dict):
                data = obj.setdefault("data", {}) or {}
                for k, v in string_data.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
                obj["data"] = data
            if not obj.get("type"):
                obj["type"] = "Opaque"
        elif rt is self.crds.crd_rt or is_custom(rt):
            self.crds.default(rt, obj, creating=True)
        elif rt is self.service_rt:
            used = services.used_cluster_ips(e.obj for e in self.store.iter_all(resource_key(rt)))
            services.default_new_service(obj, self.service_cidr, used, self._random)
        elif rt.default is not None:
            rt.default(obj)

    def _default_priority(self, spec: Obj) -> None:
        """Resolve ``priorityClassName`` (or the global default class) into ``spec.priority``."""
        if spec.get("priority") is not None:
            return
        pc_key = "priorityclasses.scheduling.k8s.io"
        name = spec.get("priorityClassName")
        if name:
            entry = self.store.get(pc_key, "", str(name))
            if entry is not None:
                spec["priority"] = entry.obj.get("value", 0)
            return
        for entry in self.store.iter_all(pc_key):
            if entry.obj.get("globalDefault"):
                spec["priority"] = entry.obj.get("value", 0)
                spec["priorityClassName"] = entry.name
                return

    async def create(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        obj = await self.read_object(request, rt)
        mode = self.field_validation(request, rt)
        check_strict_body(await request.read(), request.content_type, mode)
        dry_run = bool(request.query.get("dryRun"))
        self.prepare_new(rt, obj, target.namespace)
        warnings = validate(rt, obj, mode)
        scale.check_semantics(rt, obj, None)
        manager = request.query.get("fieldManager")
        if manager:
            obj["metadata"]["managedFields"] = [{"manager": manager, "operation": "Update", "apiVersion": rt.api_version,
                                                  "time": self.now(), "fieldsType": "FieldsV1", "fieldsV1": {}}]
        if dry_run:
            return self.respond(request, rt, obj, 201, warnings)
        self.check_namespace(rt, obj["metadata"].get("namespace"))
        try:
            write = self.store.create(resource_key(rt), obj)
        except AlreadyExistsError:
            raise errors.already_exists(rt.plural, obj["metadata"]["name"], rt.group) from None
        return self.respond(request, rt, await self.commit(write), 201, warnings)

    # ---- update / patch -------------------------------------------------------------

    def _generation_changed(self, rt: ResourceType, old: Obj, new: Obj) -> bool:
        return any(old.get(field) != new.get(field) for field in rt.generation_fields)

    def finish_update(self, rt: ResourceType, current: Entry, new: Obj, sub: str | None, *, mode: FieldValidation,
                      expected_rv: str | None, dry_run: bool = False) -> tuple[Entry | Obj, list[str], Any]:
        """Merge system fields, validate, and write ``new`` over ``current``. Returns (result, warnings, write)."""
        old = current.obj
        name = current.name
        if expected_rv not in (None, "") and expected_rv != str(current.rv):
            raise errors.conflict(rt.plural, name, "the object has been modified; please apply your changes to the "
                                  "latest version and try again", rt.group)
        new_meta = new.setdefault("metadata", {})
        if not isinstance(new_meta, dict):
            raise bad_request("metadata must be an object")
        if new_meta.get("name") not in (None, name):
            raise bad_request(f"the name of the object ({new_meta.get('name')}) does not match the name on the URL ({name})")
        if rt.namespaced and new_meta.get("namespace") not in (None, "", current.namespace):
            raise bad_request(f"the namespace of the object ({new_meta.get('namespace')}) does not match the namespace "
                              f"on the URL ({current.namespace})")
        old_meta = old["metadata"]
        if sub == "status":
            status = new.get("status")
            new = {k: v for k, v in old.items() if k != "status"}
            new["metadata"] = dict(old_meta)
            if status is not None:
                new["status"] = status
        else:
            if "status" in rt.subresources:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            new_meta["name"] = name
            if rt.namespaced:
                new_meta["namespace"] = current.namespace
            for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
                if field in old_meta:
                    new_meta[field] = old_meta[field]
                else:
                    new_meta.pop(field, None)
            new_meta["generation"] = old_meta.get("generation", 1)
            if self._generation_changed(rt, old, new):
                new_meta["generation"] = int(new_meta["generation"] or 0) + 1
            if ((rt is self.pod_rt or rt.default is not None) and isinstance(new.get("spec"), dict)) \
                    or rt is self.secret_rt:
                self.default(rt, new)  # a Secret's stringData goes into data on every write, as in Kubernetes
            elif rt is self.service_rt:
                services.keep_cluster_ips(old, new)
            elif rt is self.crds.crd_rt or is_custom(rt):
                self.crds.default(rt, new, creating=False)
        omit_empty_metadata(new)
        new.setdefault("apiVersion", rt.api_version)
        new.setdefault("kind", rt.kind)
        new["metadata"]["resourceVersion"] = old_meta.get("resourceVersion")
        warnings = validate_update(rt, new, old, mode)  # a stored object's old problems do not block edits
        if sub is None:
            scale.check_semantics(rt, new, old)
        if rt is self.pod_rt and sub is None:
            self._check_pod_update(old, new)
        if new == old:
            return current, warnings, None
        if dry_run:
            return new, warnings, None
        key = resource_key(rt)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and meta.get("deletionGracePeriodSeconds", 0) == 0:
            write = self.store.delete(key, current.namespace, name)
            self._after_delete(rt, current.namespace)
            return write.entry, warnings, write
        write = self.store.update(key, new, current.rv)
        return write.entry, warnings, write

    def _check_pod_update(self, old: Obj, new: Obj) -> None:
        old_node = (old.get("spec") or {}).get("nodeName")
        new_node = (new.get("spec") or {}).get("nodeName")
        if old_node and new_node != old_node:
            raise errors.invalid("Pod", old["metadata"]["name"], [
                ("spec.nodeName", f"Forbidden: pod is already bound to node {old_node!r}; spec.nodeName cannot change")])

    async def update(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        assert target.name is not None
        obj = await self.read_object(request, rt)
        mode = self.field_validation(request, rt, target.subresource)
        check_strict_body(await request.read(), request.content_type, mode)
        dry_run = bool(request.query.get("dryRun"))
        key = resource_key(rt)
        current = self.store.get(key, target.namespace or "", target.name)
        if current is None:
            if rt.kind in ("Lease", "Event") and target.subresource is None:
                obj.setdefault("metadata", {})["name"] = obj["metadata"].get("name") or target.name
                if obj["metadata"]["name"] != target.name:
                    raise bad_request(f"the name of the object ({obj['metadata']['name']}) does not match the name on the URL ({target.name})")
                self.prepare_new(rt, obj, target.namespace)
                warnings = validate(rt, obj, mode)
                self.check_namespace(rt, obj["metadata"].get("namespace"))
                return self.respond(request, rt, await self.commit(self.store.create(key, obj)), 201, warnings)
            raise errors.not_found(rt.plural, target.name, rt.group)
        expected = (obj.get("metadata") or {}).get("resourceVersion")
        result, warnings, write = self.finish_update(rt, current, obj, target.subresource, mode=mode,
                                                     expected_rv=str(expected) if expected is not None else None, dry_run=dry_run)
        if write is not None:
            result = await self.commit(write)
        return self.respond(request, rt, result, 200, warnings)

    async def patch(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        assert target.name is not None
        content_type = request.content_type
        body = await self.read_body(request)
        mode = self.field_validation(request, rt, target.subresource)
        check_strict_body(await request.read(), content_type, mode)
        dry_run = bool(request.query.get("dryRun"))
        key = resource_key(rt)
        current = self.store.get(key, target.namespace or "", target.name)
        if content_type == "application/apply-patch+yaml":
            return await self.apply(request, target, body, current, mode=mode, dry_run=dry_run)
        if current is None:
            raise errors.not_found(rt.plural, target.name, rt.group)
        self.crds.check_patch(rt, content_type)
        original = self.crds.read_as(rt, current.copy())
        try:
            if content_type == "application/json-patch+json":
                patched = patch.json_patch(original, body)
            elif content_type == "application/merge-patch+json":
                if not isinstance(body, dict):
                    raise patch.PatchError("a merge patch must be a JSON object")
                patched = patch.merge_patch(original, body)
            elif content_type == "application/strategic-merge-patch+json":
                patched = patch.strategic_merge(original, body, self.meta_for(rt))
            else:
                raise ApiError(415, "UnsupportedMediaType",
                               f"the patch content type {content_type!r} is not supported; use application/json-patch+json, "
                               "application/merge-patch+json, application/strategic-merge-patch+json or application/apply-patch+yaml")
        except patch.PatchError as exc:
            raise ApiError(422 if content_type == "application/json-patch+json" else 400,
                           "Invalid" if content_type == "application/json-patch+json" else "BadRequest", str(exc)) from None
        if not isinstance(patched, dict):
            raise bad_request("the patched object is not a JSON object")
        if patched.get("apiVersion") != rt.api_version or patched.get("kind") != rt.kind:
            check_type(rt, patched)
        expected = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) and isinstance(body.get("metadata"), dict) else None
        if expected is None and isinstance(body, list):
            expected = None
        result, warnings, write = self.finish_update(rt, current, patched, target.subresource, mode=mode,
                                                     expected_rv=str(expected) if expected is not None else None, dry_run=dry_run)
        if write is not None:
            result = await self.commit(write)
        return self.respond(request, rt, result, 200, warnings)

    async def scale(self, request: web.Request, target: Target) -> web.StreamResponse:
        """``GET``/``PUT``/``PATCH`` of the ``autoscaling/v1`` Scale: only ``spec.replicas`` is written."""
        rt, name = target.rt, target.name
        assert name is not None
        await self.store.barrier()
        current = self.get_entry(rt, target.namespace, name)
        if request.method == "GET":
            return self.respond_scale(request, scale.scale_of(current.obj))
        if request.method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed(f"{request.method} is not supported on {rt.plural}/scale")
        body = await self.read_body(request)
        wanted: Any = body
        if request.method == "PATCH":
            try:
                if request.content_type == "application/json-patch+json":
                    wanted = patch.json_patch(scale.scale_of(current.obj), body)
                elif isinstance(body, dict):
                    wanted = patch.merge_patch(scale.scale_of(current.obj), body)
                else:
                    raise patch.PatchError("a patch of a Scale must be a JSON object")
            except patch.PatchError as exc:
                raise bad_request(str(exc)) from None
        replicas = scale.replicas_of_scale(rt, name, wanted)
        expected = ((wanted.get("metadata") or {}) if isinstance(wanted, dict) else {}).get("resourceVersion")
        if request.method == "PATCH" and not (isinstance(body, dict) and (body.get("metadata") or {}).get("resourceVersion")):
            expected = None  # a patch without its own precondition applies to whatever is stored
        updated = current.copy()
        updated.setdefault("spec", {})["replicas"] = replicas
        result, _warnings, write = self.finish_update(rt, current, updated, None, mode="Ignore",
                                                      expected_rv=str(expected) if expected is not None else None,
                                                      dry_run=bool(request.query.get("dryRun")))
        if write is not None:
            result = await self.commit(write)
        obj = result.obj if isinstance(result, Entry) else result
        return self.respond_scale(request, scale.scale_of(obj))

    async def apply(self, request: web.Request, target: Target, body: Any, current: Entry | None, *,
                    mode: FieldValidation, dry_run: bool) -> web.StreamResponse:
        rt = target.rt
        assert target.name is not None
        manager = request.query.get("fieldManager")
        if not manager:
            raise bad_request("PATCH with application/apply-patch+yaml requires the fieldManager query parameter")
        force = parse_bool(request.query.get("force"), "force")
        if not isinstance(body, dict):
            raise bad_request(f"the applied configuration must be a {rt.kind} object")
        check_type(rt, body)
        metadata = body.setdefault("metadata", {})
        if metadata.get("name") not in (None, target.name):
            raise bad_request(f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({target.name})")
        metadata["name"] = target.name
        meta = self.meta_for(rt)
        if current is None:
            if target.subresource is not None:
                raise errors.not_found(rt.plural, target.name, rt.group)
            obj, _ = patch.server_side_apply({"metadata": {}}, body, manager, force=force, meta=meta, now=self.now())
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            self.prepare_new(rt, obj, target.namespace)
            warnings = validate(rt, obj, mode)
            scale.check_semantics(rt, obj, None)
            if dry_run:
                return self.respond(request, rt, obj, 201, warnings)
            self.check_namespace(rt, obj["metadata"].get("namespace"))
            return self.respond(request, rt, await self.commit(self.store.create(resource_key(rt), obj)), 201, warnings)
        live = current.copy()
        merged, conflicts = patch.server_side_apply(live, body, manager, force=force, meta=meta, now=self.now())
        if conflicts:
            raise ApiError(409, "Conflict", f"Apply failed with {len(conflicts)} conflict(s): "
                           + "; ".join(c.describe() for c in conflicts))
        expected = metadata.get("resourceVersion")
        result, warnings, write = self.finish_update(rt, current, merged, target.subresource, mode=mode,
                                                     expected_rv=str(expected) if expected is not None else None, dry_run=dry_run)
        if write is not None:
            result = await self.commit(write)
        return self.respond(request, rt, result, 200, warnings)

    # ---- delete ---------------------------------------------------------------------

    async def delete_options(self, request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if request.body_exists and request.content_length != 0:
            data = await request.read()
            if request.content_type == PROTOBUF:
                options.update(check_delete_options(read_protobuf(data, "DeleteOptions body")))
            elif data.strip():
                options.update(check_delete_options(decode_json(data)))
        grace = parse_int(request.query.get("gracePeriodSeconds"), "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace_period(grace)
        for name in ("propagationPolicy", "orphanDependents"):
            if request.query.get(name) is not None:
                options[name] = request.query[name]
        options["propagationPolicy"] = propagation_policy(options)
        if request.query.get("dryRun"):
            options["dryRun"] = ["All"]
        return options

    def delete_one(self, rt: ResourceType, entry: Entry, options: dict[str, Any]) -> tuple[Entry | Obj, Any]:
        """Delete (or start deleting) one object; returns the result and the write to await (or None)."""
        key = resource_key(rt)
        obj = entry.obj
        meta = obj["metadata"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
            raise errors.conflict(rt.plural, entry.name, f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                                  f"UID in object meta: {meta.get('uid')}", rt.group)
        if preconditions.get("resourceVersion") and str(preconditions["resourceVersion"]) != str(entry.rv):
            raise errors.conflict(rt.plural, entry.name, "Precondition failed: the object has been modified", rt.group)
        self.crds.check_delete(rt, entry)
        if rt is self.namespace_rt and entry.name in SYSTEM_NAMESPACES:
            raise errors.forbidden(f'namespaces "{entry.name}" is forbidden: this namespace may not be deleted')
        grace = options.get("gracePeriodSeconds")
        graceful = 0
        if rt is self.pod_rt:
            spec, status = obj.get("spec") or {}, obj.get("status") or {}
            if spec.get("nodeName") and status.get("phase") not in ("Succeeded", "Failed"):
                graceful = int(grace if grace is not None else spec.get("terminationGracePeriodSeconds") or 30)
                graceful = max(graceful, 0)
            existing = meta.get("deletionGracePeriodSeconds")
            if existing is not None and meta.get("deletionTimestamp"):
                graceful = min(graceful, int(existing))
        if rt is self.namespace_rt:
            return self._delete_namespace(entry)
        finalizers = list(meta.get("finalizers") or [])
        gc_finalizer = GC_FINALIZERS.get(options.get("propagationPolicy") or "Background")
        if gc_finalizer is not None and rt.plural not in GC_IGNORED_PLURALS and gc_finalizer not in finalizers:
            finalizers.append(gc_finalizer)
        if options.get("dryRun"):
            return obj, None
        if graceful == 0 and not finalizers:
            write = self.store.delete(key, entry.namespace, entry.name)
            self._after_delete(rt, entry.namespace)
            return write.entry, write
        new = entry.copy()
        new_meta = new["metadata"]
        if finalizers != (meta.get("finalizers") or []):
            new_meta["finalizers"] = finalizers
        now = self.clock.now()
        if graceful > 0:
            deadline = format_timestamp(now + timedelta(seconds=min(graceful, MAX_GRACE_SECONDS)))
            current_deadline = new_meta.get("deletionTimestamp")
            if not current_deadline or parse_timestamp(current_deadline) > parse_timestamp(deadline):
                new_meta["deletionTimestamp"] = deadline
            new_meta["deletionGracePeriodSeconds"] = graceful
        else:
            new_meta.setdefault("deletionTimestamp", format_timestamp(now))
            new_meta["deletionGracePeriodSeconds"] = 0
        if new == obj:
            return entry, None
        write = self.store.update(key, new, entry.rv)
        return write.entry, write

    def _delete_namespace(self, entry: Entry) -> tuple[Entry | Obj, Any]:
        namespace = entry.name
        last_write = None
        for rt in self.registry.all():
            if not rt.namespaced:
                continue
            for item in list(self.store.entries(resource_key(rt), namespace)):
                try:
                    _, write = self.delete_one(rt, item, {})
                except ApiError:
                    continue
                last_write = write or last_write
        current = self.store.get(resource_key(self.namespace_rt), "", namespace)
        if current is None:
            return entry.obj, last_write
        if self.store.namespace_is_empty(namespace) and not current.obj["metadata"].get("finalizers"):
            write = self.store.delete(resource_key(self.namespace_rt), "", namespace)
            return write.entry, write
        if current.obj["metadata"].get("deletionTimestamp"):
            return current, last_write
        new = current.copy()
        new["metadata"]["deletionTimestamp"] = self.now()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new["status"] = {**(new.get("status") or {}), "phase": "Terminating"}
        write = self.store.update(resource_key(self.namespace_rt), new, current.rv)
        return write.entry, write

    def _after_delete(self, rt: ResourceType, namespace: str) -> None:
        """Remove a terminating namespace once its last object is gone."""
        if not rt.namespaced or not namespace:
            return
        ns_key = resource_key(self.namespace_rt)
        entry = self.store.get(ns_key, "", namespace)
        if entry is None or not entry.obj["metadata"].get("deletionTimestamp"):
            return
        if self.store.namespace_is_empty(namespace) and not entry.obj["metadata"].get("finalizers"):
            self.store.delete(ns_key, "", namespace)

    async def delete(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        assert target.name is not None
        options = await self.delete_options(request)
        entry = self.get_entry(rt, target.namespace, target.name)
        result, write = self.delete_one(rt, entry, options)
        if write is not None:
            await self.commit(write)
        return self.respond(request, rt, result, 200)

    async def delete_collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        select = self.selector(request)
        options = await self.delete_options(request)
        entries = self.store.entries(resource_key(rt), target.namespace)
        if select is not None:
            entries = [e for e in entries if select(e.obj)]
        deleted = []
        last = None
        for entry in entries:
            current = self.store.get(resource_key(rt), entry.namespace, entry.name)
            if current is None:
                continue
            try:
                result, write = self.delete_one(rt, current, options)
            except ApiError:
                continue
            last = write or last
            deleted.append(result.obj if isinstance(result, Entry) else result)
        if last is not None:
            await self.commit(last)
        body = {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)}, "items": deleted}
        return web.Response(body=encode(body), content_type=JSON)

    # ---- the scale subresource of custom resources ----------------------------------

    async def custom_scale(self, request: web.Request, target: Target) -> web.StreamResponse:
        """``GET``/``PUT``/``PATCH`` of ``.../scale``: the object's replicas as an ``autoscaling/v1`` Scale."""
        rt = target.rt
        assert target.name is not None
        if request.method not in ("GET", "PUT", "PATCH"):
            raise errors.method_not_allowed(f"{request.method} is not supported on {rt.plural}/scale")
        if request.method == "GET":
            await self.store.barrier()
        current = self.get_entry(rt, target.namespace, target.name)
        scale = scale_of(rt, current.obj)
        if request.method == "GET":
            return self.respond_scale(request, scale)
        body = await self.read_body(request)
        try:
            if request.content_type == "application/json-patch+json":
                body = patch.json_patch(scale, body)
            elif request.content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                body = patch.merge_patch(scale, body) if isinstance(body, dict) else body
        except patch.PatchError as exc:
            raise bad_request(str(exc)) from None
        expected = ((body.get("metadata") or {}) if isinstance(body, dict) else {}).get("resourceVersion")
        new = with_replicas(rt, self.crds.read_as(rt, current.obj), body)
        result, warnings, write = self.finish_update(rt, current, new, None, mode="Strict",
                                                     expected_rv=str(expected) if expected else None,
                                                     dry_run=bool(request.query.get("dryRun")))
        if write is not None:
            result = await self.commit(write)
        shown = result.obj if isinstance(result, Entry) else result
        headers = {"Warning": ", ".join(warning_value(w) for w in warnings)} if warnings else None
        return self.respond_scale(request, scale_of(rt, shown), headers)

    # ---- pods/binding and pods/log --------------------------------------------------

    async def bind(self, request: web.Request, target: Target, name: str | None) -> web.StreamResponse:
        body = await self.read_body(request)
        if not isinstance(body, dict) or body.get("kind", "Binding") != "Binding":
            raise bad_request("the request body must be a v1 Binding object")
        metadata = body.get("metadata") or {}
        pod_name = name or metadata.get("name")
        if not pod_name:
            raise errors.invalid("Binding", "", [("metadata.name", "Required value: the pod to bind")])
        if name is not None and metadata.get("name") not in (None, name):
            raise bad_request(f"the Binding's name ({metadata.get('name')}) does not match the pod on the URL ({name})")
        node = ((body.get("target") or {}) if isinstance(body.get("target"), dict) else {}).get("name")
        if not node:
            raise errors.invalid("Binding", pod_name, [("target.name", "Required value: the node to bind to")])
        entry = self.get_entry(self.pod_rt, target.namespace, pod_name)
        pod = entry.copy()
        spec = pod.setdefault("spec", {})
        if spec.get("nodeName"):
            raise errors.conflict("pods", pod_name, f"pod {pod_name} is already assigned to node {spec['nodeName']!r}")
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods", pod_name, "pod is being deleted, cannot be assigned to a node")
        if metadata.get("uid") and metadata["uid"] != pod["metadata"].get("uid"):
            raise errors.conflict("pods", pod_name, "Precondition failed: UID mismatch")
        spec["nodeName"] = str(node)
        annotations = metadata.get("annotations") or {}
        if annotations:
            pod["metadata"]["annotations"] = {**(pod["metadata"].get("annotations") or {}), **annotations}
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": self.now()})
        status["conditions"] = conditions
        validate(self.pod_rt, pod, "Ignore")
        await self.commit(self.store.update(resource_key(self.pod_rt), pod, entry.rv))
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        return web.Response(body=encode(body), status=201, content_type=JSON)

    async def stream_session(self, request: web.Request, target: Target, kind: str) -> web.StreamResponse:
        """``pods/exec``, ``pods/attach``, ``pods/portforward``: relayed to the pod's agent (:mod:`.streams`)."""
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed(f"pods/{kind} only supports GET and POST")
        assert target.name is not None and target.namespace is not None
        pod = self.get_entry(self.pod_rt, target.namespace, target.name).obj
        container = None if kind == "portforward" else streams.choose_container(pod, request.query.get("container"))
        streams.check_running(pod, container)
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.store.get(resource_key(self.node_rt), "", node_name) if node_name else None
        endpoint = node_log_endpoint(node.obj if node else None)
        if endpoint is None:
            raise bad_request(f"pod {target.name} runs on node {node_name!r}, which publishes no agent endpoint for {kind}")
        return await streams.relay(request, kind, pod, container, endpoint=endpoint, token=self.agent_token)

    async def log(self, request: web.Request, target: Target) -> web.StreamResponse:
        assert target.name is not None and target.namespace is not None
        entry = self.get_entry(self.pod_rt, target.namespace, target.name)
        pod = entry.obj
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        containers += [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
        container = request.query.get("container")
        if not container:
            if len(containers) != 1:
                raise bad_request(f"a container name must be specified for pod {target.name}, choose one of: "
                                  f"[{' '.join(str(c) for c in containers)}]")
            container = str(containers[0])
        elif container not in containers:
            raise bad_request(f"container {container} is not valid for pod {target.name}")
        follow = parse_bool(request.query.get("follow"), "follow")
        tail = parse_int(request.query.get("tailLines"), "tailLines")
        limit = parse_int(request.query.get("limitBytes"), "limitBytes")
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.store.get(resource_key(self.node_rt), "", node_name) if node_name else None
        endpoint = node_log_endpoint(node.obj if node else None)
        namespace, pod_name, pod_uid = target.namespace, target.name, pod["metadata"].get("uid")

        def running() -> bool:
            current = self.store.get(resource_key(self.pod_rt), namespace, pod_name)
            return (current is not None and current.obj["metadata"].get("uid") == pod_uid
                    and (current.obj.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))

        if endpoint is not None:
            source = proxy_log(endpoint, namespace, pod_name, container, log_query(request.query),
                               token=self.agent_token)
        else:
            if self.data_dir is None:
                raise bad_request(f"no log is available for container {container} in pod {pod_name}")
            try:
                path = pod_log_path(self.data_dir, namespace, pod_name, container)
            except PathEscapeError as error:
                raise bad_request(f"container {container}: {error}") from None
            if not path.exists() and not follow:
                raise bad_request(f'container "{container}" in pod "{pod_name}" has no log yet (it is waiting to start)')
            source = file_log(path, follow=follow, tail_lines=tail, limit_bytes=limit, still_running=running, clock=self.clock)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        started = False
        try:
            async for chunk in source:
                if not started:
                    await response.prepare(request)
                    started = True
                await response.write(chunk)
        except RuntimeError as exc:
            if not started:
                raise ApiError(502, "BadGateway", str(exc)) from None
        if not started:
            await response.prepare(request)
        return response

