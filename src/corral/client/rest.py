"""The async REST client every corral component uses to talk to the API.

Objects are addressed as Kubernetes addresses them — ``(apiVersion, plural, name,
namespace)`` — and travel as plain JSON dicts. ``create``/``update`` take the object
itself and find its plural through discovery (cached per group/version), so callers
write ``await client.create(pod)`` as they would with kubectl.

Watches are parsed from the newline-delimited stream by hand rather than with
``StreamReader.readline`` so that objects of any size (up to the server's 3 MiB
limit) pass through. A watch ``ERROR`` event carrying a ``Status`` (410 Gone above
all) is raised as :class:`ApiError`, so informers can re-list.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from corral.api.registry import Obj
from corral.client.errors import ApiError
from corral.client.kubeconfig import Connection, in_cluster_connection, load_kubeconfig
from corral.util import fastjson

PatchType = Literal["merge", "json", "strategic", "apply"]

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True)
class WatchEvent:
    """One event of a watch: ``ADDED``, ``MODIFIED``, ``DELETED`` or ``BOOKMARK``."""

    type: str
    object: Obj


def api_prefix(api_version: str) -> str:
    """``/api/v1`` for the core group, ``/apis/<group>/<version>`` otherwise."""
    return f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The URL path of a collection, an object or an object's subresource."""
    path = api_prefix(api_version)
    if namespace:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    if name:
        path += f"/{quote(name, safe='')}"
        if subresource:
            path += f"/{subresource}"
    return path


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` for namespaced objects, ``name`` for cluster-scoped ones."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))


def split_key(key: str) -> tuple[str | None, str]:
    """Inverse of :func:`object_key`: ``(namespace or None, name)``."""
    namespace, _, name = key.rpartition("/")
    return (namespace or None), name


class ApiClient:
    """An aiohttp session bound to one API server and one identity."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        ssl_context: Any = None,
        namespace: str = "default",
        max_connections: int = 64,
        user_agent: str = "corral",
    ) -> None:
        self.server = server.rstrip("/")
        self.namespace = namespace
        self._token = token
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._plurals: dict[tuple[str, str], tuple[str, bool]] = {}

    @classmethod
    def from_connection(cls, connection: Connection, **kwargs: Any) -> ApiClient:
        return cls(connection.server, connection.token, ssl_context=connection.ssl_context,
                   namespace=connection.namespace, **kwargs)

    @classmethod
    def from_kubeconfig(cls, path: str | Path | None = None, context: str | None = None, **kwargs: Any) -> ApiClient:
        """From a kubeconfig file (``$KUBECONFIG`` or ``~/.kube/config`` by default), or in-cluster."""
        if path is None and context is None:
            in_cluster = in_cluster_connection()
            if in_cluster is not None:
                return cls.from_connection(in_cluster, **kwargs)
        return cls.from_connection(load_kubeconfig(path, context), **kwargs)

    @property
    def token(self) -> str | None:
        """The bearer token this client presents (None without one)."""
        return self._token

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl if self._ssl else False)
            self._session = aiohttp.ClientSession(
                base_url=self.server, headers=headers, connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- raw requests -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = 60,
    ) -> Any:
        """One request; returns the decoded JSON body or raises :class:`ApiError`."""
        data = None
        headers = {}
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else fastjson.dumps(body)
            headers["Content-Type"] = content_type
        async with self.session.request(
            method, path, params=_clean_params(params), data=data, headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            raw = await response.read()
            try:
                decoded = fastjson.loads(raw) if raw else None
            except ValueError:
                decoded = raw.decode(errors="replace")
            if response.status >= 300:
                raise ApiError.from_status(response.status, decoded)
            return decoded

    # -- discovery ---------------------------------------------------------------------------

    async def resource_for_kind(self, api_version: str, kind: str) -> tuple[str, bool]:
        """``(plural, namespaced)`` of a kind, from the server's discovery (cached)."""
        cached = self._plurals.get((api_version, kind))
        if cached is None:
            listing = await self.request("GET", api_prefix(api_version))
            for resource in listing.get("resources", []):
                if "/" not in resource["name"]:
                    self._plurals[(api_version, resource["kind"])] = (resource["name"], bool(resource["namespaced"]))
            cached = self._plurals.get((api_version, kind))
            if cached is None:
                raise ApiError(404, "NotFound", f"the server doesn't have a resource type for {kind} in {api_version}")
        return cached

    async def _address(self, obj: Obj, namespace: str | None = None) -> tuple[str, str, str | None]:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not api_version or not kind:
            raise ValueError("object needs apiVersion and kind")
        plural, namespaced = await self.resource_for_kind(api_version, kind)
        ns = (obj.get("metadata") or {}).get("namespace") or namespace or self.namespace
        return api_version, plural, (ns if namespaced else None)

    # -- verbs -------------------------------------------------------------------------------

    async def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> Obj:
        result: Obj = await self.request("GET", resource_path(api_version, plural, namespace, name))
        return result

    async def get_or_none(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return await self.get(api_version, plural, name, namespace)
        except ApiError as error:
            if error.not_found:
                return None
            raise

    async def list(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """One page of a list (``items`` and ``metadata.resourceVersion``/``continue``)."""
        params = {"labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit,
                  "continue": continue_, "resourceVersion": resource_version}
        result: Obj = await self.request("GET", resource_path(api_version, plural, namespace), params=params)
        return result

    async def list_all(self, api_version: str, plural: str, namespace: str | None = None, *,
                       label_selector: str | None = None, field_selector: str | None = None,
                       page_size: int = 1000) -> tuple[builtins.list[Obj], str]:
        """Every item, paging with ``limit``/``continue``; returns ``(items, resourceVersion)``."""
        items: builtins.list[Obj] = []
        continue_: str | None = None
        resource_version = ""
        while True:
            try:
                page = await self.list(api_version, plural, namespace, label_selector=label_selector,
                                       field_selector=field_selector, limit=page_size, continue_=continue_)
            except ApiError as error:
                if error.code != 410 or continue_ is None:
                    raise
                # The snapshot behind the token left the server's history (client-go's pager does
                # the same): one full list, which is consistent by itself.
                page = await self.list(api_version, plural, namespace, label_selector=label_selector,
                                       field_selector=field_selector)
                return page.get("items") or [], str((page.get("metadata") or {}).get("resourceVersion") or "")
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            resource_version = resource_version or str(metadata.get("resourceVersion") or "")
            continue_ = metadata.get("continue")
            if not continue_:
                return items, resource_version

    async def watch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> AsyncIterator[WatchEvent]:
        """Stream events until the server ends the watch; ``ERROR`` events raise :class:`ApiError`."""
        params = {"watch": "true", "resourceVersion": resource_version, "labelSelector": label_selector,
                  "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds,
                  "allowWatchBookmarks": "true" if allow_bookmarks else None}
        path = resource_path(api_version, plural, namespace)
        async with self.session.get(path, params=_clean_params(params),
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
            await _raise_for_status(response)
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while True:
                    newline = buffer.find(b"\n")
                    if newline < 0:
                        break
                    line, buffer = buffer[:newline], buffer[newline + 1:]
                    if line.strip():
                        yield _decode_event(line)
            if buffer.strip():
                yield _decode_event(buffer)

    async def create(self, obj: Obj, namespace: str | None = None, *, field_manager: str | None = None) -> Obj:
        api_version, plural, ns = await self._address(obj, namespace)
        result: Obj = await self.request("POST", resource_path(api_version, plural, ns), body=obj,
                                         params={"fieldManager": field_manager})
        return result

    async def update(self, obj: Obj, *, subresource: str | None = None) -> Obj:
        """PUT the object (``metadata.resourceVersion`` makes it a compare-and-swap)."""
        api_version, plural, ns = await self._address(obj)
        name = obj["metadata"]["name"]
        result: Obj = await self.request("PUT", resource_path(api_version, plural, ns, name, subresource), body=obj)
        return result

    async def update_status(self, obj: Obj) -> Obj:
        return await self.update(obj, subresource="status")

    async def patch(
        self,
        api_version: str,
        plural: str,
        name: str,
        body: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> Obj:
        params = {"fieldManager": field_manager, "force": None if force is None else str(force).lower()}
        result: Obj = await self.request(
            "PATCH", resource_path(api_version, plural, namespace, name, subresource), body=body,
            params=params, content_type=_PATCH_CONTENT_TYPES[patch_type],
        )
        return result

    async def delete(
        self,
        api_version: str,
        plural: str,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        resource_version: str | None = None,
        uid: str | None = None,
    ) -> Obj:
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        preconditions = {k: v for k, v in (("resourceVersion", resource_version), ("uid", uid)) if v}
        if preconditions:
            options["preconditions"] = preconditions
        result: Obj = await self.request("DELETE", resource_path(api_version, plural, namespace, name), body=options)
        return result

    async def delete_if_exists(self, api_version: str, plural: str, name: str, namespace: str | None = None,
                               **kwargs: Any) -> bool:
        try:
            await self.delete(api_version, plural, name, namespace, **kwargs)
        except ApiError as error:
            if error.not_found:
                return False
            raise
        return True

    async def bind(self, namespace: str, pod: str, node: str, annotations: Mapping[str, str] | None = None,
                   uid: str | None = None) -> None:
        """POST ``pods/binding``: place the pod on ``node`` with the scheduler's annotations."""
        metadata: Obj = {"name": pod, "namespace": namespace}
        if annotations:
            metadata["annotations"] = dict(annotations)
        if uid:
            metadata["uid"] = uid
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": metadata,
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        await self.request("POST", resource_path("v1", "pods", namespace, pod, "binding"), body=binding)

    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None = None,
        follow: bool = False,
        tail_lines: int | None = None,
        previous: bool = False,
        timestamps: bool = False,
    ) -> AsyncIterator[bytes]:
        """The pod's log as raw chunks (a stream when ``follow``)."""
        params = {"container": container, "follow": "true" if follow else None, "tailLines": tail_lines,
                  "previous": "true" if previous else None, "timestamps": "true" if timestamps else None}
        path = resource_path("v1", "pods", namespace, pod, "log")
        async with self.session.get(path, params=_clean_params(params),
                                    timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
            await _raise_for_status(response)
            async for chunk in response.content.iter_any():
                yield chunk


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    """Raise :class:`ApiError` for a non-2xx streaming response (a ``Status`` body when there is one)."""
    if response.status < 300:
        return
    raw = await response.read()
    try:
        body: Any = fastjson.loads(raw)
    except ValueError:
        body = raw.decode(errors="replace")
    raise ApiError.from_status(response.status, body)


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    return {key: str(value) for key, value in (params or {}).items() if value is not None}


def _decode_event(line: bytes) -> WatchEvent:
    event = fastjson.loads(line)
    event_type = str(event.get("type"))
    obj = event.get("object") or {}
    if event_type == "ERROR":
        raise ApiError.from_status(int(obj.get("code") or 500), obj)
    return WatchEvent(event_type, obj)
