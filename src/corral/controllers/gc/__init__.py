"""Garbage collection by ``ownerReferences``, as Kubernetes' garbage collector does it.

Three propagation policies (``corral.api.ownership``):

* **Background** — an object whose owners are all gone is deleted, so deleting a
  TrainingJob removes its PodGroup and pods, and deleting an InferenceService removes its
  revisions' pods. An owner counts as gone only when its kind is watched, its informer has
  synced, and no cached object has the owner's uid — a reference to a kind the collector
  does not watch is never acted on.
* **Foreground** — the owner carries the ``foregroundDeletion`` finalizer and a
  ``deletionTimestamp``: the collector deletes its dependents (themselves in the
  foreground, so grandchildren go first), and removes the finalizer once no dependent is
  left, which lets the API server remove the owner.
* **Orphan** — the owner carries the ``orphan`` finalizer: the collector removes that
  owner's reference from every dependent, then the finalizer.

The collector watches every kind the registry serves except events and leases (churn, and
never owners). Dependents are indexed by owner uid, so an owner's change enqueues exactly its
dependents and a dependent's removal enqueues its owner; each reconcile re-reads the cache
(level-triggered) and writes with a uid or resourceVersion precondition, so a re-created
object of the same name is never hit and a concurrent change is retried, not overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Mapping
from pathlib import Path

from corral.api.kinds import default_registry
from corral.api.ownership import FOREGROUND_FINALIZER, GC_IGNORED_PLURALS, ORPHAN_FINALIZER
from corral.api.registry import Obj
from corral.client import ApiClient, ApiError, Informer, InformerFactory, object_key
from corral.controllers.runtime import Controller, Manager, Result
from corral.util.supervise import HealthCheck

log = logging.getLogger(__name__)

OWNER_UID_INDEX = "owner-uid"

DEFAULT_RESOURCES: tuple[tuple[str, str, str], ...] = tuple(
    (rt.api_version, rt.kind, rt.plural) for rt in default_registry().all() if rt.plural not in GC_IGNORED_PLURALS
)


def _owner_uids(obj: Obj) -> list[str]:
    return [str(ref["uid"]) for ref in (obj.get("metadata") or {}).get("ownerReferences") or [] if ref.get("uid")]


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def dangling(obj: Obj, owner_present: Mapping[tuple[str, str], Container[str]]) -> bool:
    """True when every owner of ``obj`` is of a watched kind and absent (pure decision).

    ``owner_present[(apiVersion, kind)]`` is a container of the uids that exist for that kind.
    """
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    if not references:
        return False
    for reference in references:
        present = owner_present.get((str(reference.get("apiVersion")), str(reference.get("kind"))))
        if present is None or reference.get("uid") in present:
            return False
    return True


def pending_gc_finalizers(obj: Obj) -> list[str]:
    """The collector's finalizers on an object being deleted (empty when it is not being deleted)."""
    metadata = obj.get("metadata") or {}
    if not metadata.get("deletionTimestamp"):
        return []
    return [f for f in metadata.get("finalizers") or [] if f in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]


def without_owner(references: list[Obj], owner_uid: str) -> list[Obj]:
    return [reference for reference in references if reference.get("uid") != owner_uid]


def _updated(handle: Callable[[Obj], None]) -> Callable[[Obj, Obj], None]:
    def on_update(_old: Obj, new: Obj) -> None:
        handle(new)
    return on_update


class GarbageCollector:
    """Reconciler for keys ``<apiVersion>|<plural>|<namespace/name>``."""

    def __init__(self, client: ApiClient, factory: InformerFactory,
                 resources: Iterable[tuple[str, str, str]] = DEFAULT_RESOURCES) -> None:
        self.client = client
        self.resources = list(resources)
        self.informers: dict[tuple[str, str], Informer] = {}
        self._by_kind: dict[tuple[str, str], Informer] = {}
        self._uids: dict[tuple[str, str], set[str]] = {}
        self._plurals: dict[tuple[str, str], str] = {}
        self.controller = Controller("garbage-collector", self, workers=2)
        for api_version, kind, plural in self.resources:
            informer = factory.informer(api_version, plural)
            informer.add_indexer(OWNER_UID_INDEX, _owner_uids)
            self.informers[(api_version, plural)] = informer
            self._by_kind[(api_version, kind)] = informer
            self._plurals[(api_version, kind)] = plural
            uids: set[str] = set()
            self._uids[(api_version, kind)] = uids
            on_change = self._on_change(api_version, plural, uids)
            informer.add_handler(
                on_add=on_change,
                on_update=_updated(on_change),
                on_delete=self._on_delete(uids),
            )

    def _on_change(self, api_version: str, plural: str, uids: set[str]) -> Callable[[Obj], None]:
        def handle(obj: Obj) -> None:
            uid = _uid(obj)
            uids.add(uid)
            if _owner_uids(obj) or pending_gc_finalizers(obj):
                self.controller.enqueue(f"{api_version}|{plural}|{object_key(obj)}")
        return handle

    def _on_delete(self, uids: set[str]) -> Callable[[Obj], None]:
        def handle(obj: Obj) -> None:
            uid = _uid(obj)
            uids.discard(uid)
            for key in self._dependent_keys(uid):
                self.controller.enqueue(key)
            for owner_key in self._owners_finishing(obj):  # they wait in the foreground for this one
                self.controller.enqueue(owner_key)
        return handle

    def _owners_finishing(self, obj: Obj) -> list[str]:
        """Keys of ``obj``'s cached owners that carry one of the collector's finalizers."""
        namespace = (obj.get("metadata") or {}).get("namespace")
        keys = []
        for reference in (obj.get("metadata") or {}).get("ownerReferences") or []:
            kind = (str(reference.get("apiVersion")), str(reference.get("kind")))
            informer = self._by_kind.get(kind)
            if informer is None:
                continue
            name = str(reference.get("name"))
            # An owner is in the dependent's namespace, or cluster-scoped.
            for key in ((f"{namespace}/{name}", name) if namespace else (name,)):
                owner = informer.get(key)
                if owner is not None and _uid(owner) == reference.get("uid") and pending_gc_finalizers(owner):
                    keys.append(f"{kind[0]}|{self._plurals[kind]}|{key}")
                    break
        return keys

    def _dependents(self, uid: str) -> list[tuple[str, str, Obj]]:
        return [(api_version, plural, dependent)
                for (api_version, plural), informer in self.informers.items()
                for dependent in informer.by_index(OWNER_UID_INDEX, uid)]

    def _dependent_keys(self, uid: str) -> list[str]:
        return [f"{api_version}|{plural}|{object_key(obj)}" for api_version, plural, obj in self._dependents(uid)]

    async def reconcile(self, key: str) -> Result | None:
        api_version, plural, object_name = key.split("|", 2)
        informer = self.informers[(api_version, plural)]
        obj = informer.get(object_name)
        if obj is None:
            return None
        finalizers = pending_gc_finalizers(obj)
        if finalizers:
            return await self._finish_owner(api_version, plural, obj, finalizers)
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            return None
        present = {kind: self._uids[kind] for kind, owner in self._by_kind.items() if owner.has_synced}
        if not dangling(obj, present):
            return None
        log.info("garbage-collecting %s %s: its owners are gone", plural, object_name)
        await self._delete(api_version, plural, obj, "Background")
        return None

    async def _finish_owner(self, api_version: str, plural: str, owner: Obj, finalizers: list[str]) -> Result | None:
        """Orphan or delete the dependents of an owner that is being deleted, then drop the finalizer."""
        uid = _uid(owner)
        dependents = self._dependents(uid)
        if ORPHAN_FINALIZER in finalizers:
            for dep_version, dep_plural, dependent in dependents:
                metadata = dependent["metadata"]
                remaining = without_owner(metadata.get("ownerReferences") or [], uid)
                await self._patch_metadata(dep_version, dep_plural, dependent,
                                           {"ownerReferences": remaining or None})
            return await self._remove_finalizer(api_version, plural, owner, ORPHAN_FINALIZER)
        for dep_version, dep_plural, dependent in dependents:
            if not (dependent.get("metadata") or {}).get("deletionTimestamp"):
                await self._delete(dep_version, dep_plural, dependent, "Foreground")
        if dependents:
            return None  # each dependent's removal enqueues this owner again
        return await self._remove_finalizer(api_version, plural, owner, FOREGROUND_FINALIZER)

    async def _remove_finalizer(self, api_version: str, plural: str, obj: Obj, finalizer: str) -> Result | None:
        remaining = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        await self._patch_metadata(api_version, plural, obj, {"finalizers": remaining or None})
        return None

    async def _patch_metadata(self, api_version: str, plural: str, obj: Obj, changes: dict[str, object]) -> None:
        """Merge-patch metadata fields, guarded by the cached resourceVersion (409 → the reconcile retries)."""
        metadata = obj["metadata"]
        body = {"metadata": {"resourceVersion": metadata.get("resourceVersion"), **changes}}
        try:
            await self.client.patch(api_version, plural, metadata["name"], body,
                                    namespace=metadata.get("namespace"), patch_type="merge")
        except ApiError as error:
            if error.code != 404:
                raise

    async def _delete(self, api_version: str, plural: str, obj: Obj, policy: str) -> None:
        metadata = obj["metadata"]
        try:
            await self.client.delete(api_version, plural, metadata["name"], metadata.get("namespace"),
                                     propagation_policy=policy, uid=metadata.get("uid"))
        except ApiError as error:
            if error.code not in (404, 409):
                raise


class GarbageCollectorComponent:
    """The collector as a ``corral up`` component (its own client and informers)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.client: ApiClient | None = None
        self.manager: Manager | None = None

    async def start(self) -> None:
        self.client = ApiClient.from_kubeconfig(self.kubeconfig, user_agent="corral-garbage-collector")
        factory = InformerFactory(self.client)
        collector = GarbageCollector(self.client, factory)
        self.manager = Manager(factory)
        self.manager.add(collector.controller)
        await self.manager.start()

    def health_checks(self) -> dict[str, HealthCheck]:
        """Its controller's workers, on the API server's ``/readyz``."""
        return self.manager.health_checks() if self.manager is not None else {}

    async def stop(self) -> None:
        if self.manager is not None:
            await self.manager.stop()
        if self.client is not None:
            await self.client.close()
