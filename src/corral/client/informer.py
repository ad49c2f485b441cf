"""Informers: a list+watch cache of one resource, with change handlers and indexes.

An informer lists the resource (paging), then watches from the list's
``resourceVersion``; it keeps every object in memory keyed by ``namespace/name``,
calls the registered handlers on each change, and resumes the watch from the last
version it saw. When the server says the version is too old (410 Gone) it re-lists
and reconciles the cache against the fresh list, firing the handlers for what
changed meanwhile — so consumers never miss a deletion. In steady state it never
re-lists: a watch that ends is restarted from the last seen version.

Handlers are plain functions (they only enqueue keys); they must not block. A handler or
an index function that raises on some object is logged and skipped for that object (the
object stays cached, the other handlers still run), and any other error in the list/watch
loop is logged and the loop goes on after a delay: one object a consumer cannot handle
never stops the informer.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from corral.api.registry import Obj
from corral.client.errors import ApiError
from corral.client.rest import ApiClient, object_key

log = logging.getLogger(__name__)

AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]
IndexFunc = Callable[[Obj], list[str]]


@dataclass
class _Handlers:
    on_add: AddHandler | None
    on_update: UpdateHandler | None
    on_delete: DeleteHandler | None


class Informer:
    """A cache of one resource kept current by list+watch."""

    def __init__(
        self,
        client: ApiClient,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        watch_timeout_seconds: int = 300,
        retry_delay: float = 0.5,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.plural = plural
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._watch_timeout = watch_timeout_seconds
        self._retry_delay = retry_delay
        self._items: dict[str, Obj] = {}
        self._handlers: builtins.list[_Handlers] = []
        self._indexers: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.resource_version = ""
        self.relists = 0

    # -- reading -----------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self) -> builtins.list[Obj]:
        return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add_indexer(self, name: str, index: IndexFunc) -> None:
        """Maintain an index ``value -> keys`` computed by ``index(obj)`` (e.g. pods by node)."""
        self._indexers[name] = index
        table: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for value in self._index_values(name, index, key, obj):
                table.setdefault(value, set()).add(key)
        self._indexes[name] = table

    @staticmethod
    def _index_values(name: str, index: IndexFunc, key: str, obj: Obj) -> builtins.list[str]:
        """``index(obj)``, or no values (logged) when it raises on this object."""
        try:
            return index(obj)
        except Exception:
            log.exception("index %s failed for %s; the object is left out of it", name, key)
            return []

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        keys = self._indexes[name].get(value, set())
        return [self._items[key] for key in keys if key in self._items]

    def add_handler(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        """Register handlers; objects already cached are replayed to ``on_add``."""
        self._handlers.append(_Handlers(on_add, on_update, on_delete))
        if on_add is not None:
            for key, obj in list(self._items.items()):
                try:
                    on_add(obj)
                except Exception:
                    log.exception("informer handler failed for %s", key)

    # -- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listing and watching in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self.api_version}/{self.plural}")

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until the first list is in the cache."""
        await asyncio.wait_for(self._synced.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._watch()
            except asyncio.CancelledError:
                raise
            except ApiError as error:
                if error.gone:
                    log.info("%s/%s: watch expired at %s, re-listing", self.api_version, self.plural,
                             self.resource_version)
                    need_list = True
                    continue
                log.warning("%s/%s: %s", self.api_version, self.plural, error)
                await asyncio.sleep(self._retry_delay * (1 + random.random()))
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as error:
                log.debug("%s/%s: connection problem: %r", self.api_version, self.plural, error)
                await asyncio.sleep(self._retry_delay * (1 + random.random()))
            except Exception:  # a bug or an object nothing foresaw: log it, keep the cache alive
                log.exception("%s/%s: list/watch failed; re-listing", self.api_version, self.plural)
                need_list = True
                await asyncio.sleep(self._retry_delay * (1 + random.random()))

    async def _relist(self) -> None:
        items, resource_version = await self.client.list_all(
            self.api_version, self.plural, self.namespace,
            label_selector=self.label_selector, field_selector=self.field_selector,
        )
        self.relists += 1
        fresh = {object_key(obj): obj for obj in items}
        for key in [k for k in self._items if k not in fresh]:
            self._remove(key)
        for key, obj in fresh.items():
            self._upsert(key, obj)
        self.resource_version = resource_version
        self._synced.set()

    async def _watch(self) -> None:
        timeout = int(self._watch_timeout * (1 + random.random() * 0.2))
        async for event in self.client.watch(
            self.api_version, self.plural, self.namespace,
            resource_version=self.resource_version or None,
            label_selector=self.label_selector, field_selector=self.field_selector,
            timeout_seconds=timeout,
        ):
            metadata = event.object.get("metadata") or {}
            if metadata.get("resourceVersion"):
                self.resource_version = str(metadata["resourceVersion"])
            if event.type == "BOOKMARK":
                continue
            key = object_key(event.object)
            if event.type == "DELETED":
                self._remove(key, event.object)
            else:
                self._upsert(key, event.object)

    # -- cache maintenance ----------------------------------------------------------------------

    def _upsert(self, key: str, obj: Obj) -> None:
        old = self._items.get(key)
        if old is not None and (old.get("metadata") or {}).get("resourceVersion") == (
            obj.get("metadata") or {}
        ).get("resourceVersion"):
            return
        self._items[key] = obj
        self._reindex(key, old, obj)
        for handlers in self._handlers:
            try:
                if old is None:
                    if handlers.on_add is not None:
                        handlers.on_add(obj)
                elif handlers.on_update is not None:
                    handlers.on_update(old, obj)
            except Exception:
                log.exception("informer handler failed for %s", key)

    def _remove(self, key: str, final: Obj | None = None) -> None:
        old = self._items.pop(key, None)
        if old is None:
            return
        self._reindex(key, old, None)
        for handlers in self._handlers:
            if handlers.on_delete is not None:
                try:
                    handlers.on_delete(final or old)
                except Exception:
                    log.exception("informer delete handler failed for %s", key)

    def _reindex(self, key: str, old: Obj | None, new: Obj | None) -> None:
        for name, index in self._indexers.items():
            table = self._indexes[name]
            if old is not None:
                for value in self._index_values(name, index, key, old):
                    keys = table.get(value)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del table[value]
            if new is not None:
                for value in self._index_values(name, index, key, new):
                    table.setdefault(value, set()).add(key)


class InformerFactory:
    """Shared informers: one cache per (resource, namespace, selector) for all consumers in a process."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._informers: dict[tuple[str, str, str | None, str | None], Informer] = {}

    def informer(self, api_version: str, plural: str, namespace: str | None = None, *,
                 label_selector: str | None = None) -> Informer:
        key = (api_version, plural, namespace, label_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, api_version, plural, namespace, label_selector=label_selector)
            self._informers[key] = informer
        return informer

    async def start(self) -> None:
        for informer in list(self._informers.values()):
            await informer.start()

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.gather(*(informer.wait_synced(timeout) for informer in self._informers.values()))

    async def stop(self) -> None:
        for informer in list(self._informers.values()):
            await informer.stop()
