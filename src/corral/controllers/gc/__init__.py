"""Garbage collection by ``ownerReferences``, as Kubernetes' garbage collector does it.

An object whose owners are all gone is deleted (background propagation), so deleting
a TrainingJob removes its PodGroup and pods, and deleting an InferenceService removes
its revisions' pods. The collector watches a configured list of resources; an owner
counts as gone only when its kind is one of them, its informer has synced, and no
cached object has the owner's uid — a reference to a kind the collector does not
watch is never acted on. Dependents are indexed by owner uid, so an owner's deletion
enqueues exactly its dependents; the reconcile itself re-checks the current state
(level-triggered) and deletes with a uid precondition, so a re-created object of the
same name is never hit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Mapping
from pathlib import Path

from corral.api.registry import Obj
from corral.client import ApiClient, ApiError, Informer, InformerFactory, object_key
from corral.controllers.runtime import Controller, Manager, Result

log = logging.getLogger(__name__)

OWNER_UID_INDEX = "owner-uid"

DEFAULT_RESOURCES: tuple[tuple[str, str, str], ...] = (
    ("v1", "Pod", "pods"),
    ("corral.dev/v1alpha1", "PodGroup", "podgroups"),
    ("corral.dev/v1alpha1", "TrainingJob", "trainingjobs"),
    ("corral.dev/v1alpha1", "InferenceService", "inferenceservices"),
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
        self.controller = Controller("garbage-collector", self, workers=2)
        for api_version, kind, plural in self.resources:
            informer = factory.informer(api_version, plural)
            informer.add_indexer(OWNER_UID_INDEX, _owner_uids)
            self.informers[(api_version, plural)] = informer
            self._by_kind[(api_version, kind)] = informer
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
            uids.add(_uid(obj))
            if _owner_uids(obj):
                self.controller.enqueue(f"{api_version}|{plural}|{object_key(obj)}")
        return handle

    def _on_delete(self, uids: set[str]) -> Callable[[Obj], None]:
        def handle(obj: Obj) -> None:
            uid = _uid(obj)
            uids.discard(uid)
            for (api_version, plural), informer in self.informers.items():
                for dependent in informer.by_index(OWNER_UID_INDEX, uid):
                    self.controller.enqueue(f"{api_version}|{plural}|{object_key(dependent)}")
        return handle

    async def reconcile(self, key: str) -> Result | None:
        api_version, plural, object_name = key.split("|", 2)
        informer = self.informers[(api_version, plural)]
        obj = informer.get(object_name)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            return None
        present = {kind: self._uids[kind] for kind, owner in self._by_kind.items() if owner.has_synced}
        if not dangling(obj, present):
            return None
        metadata = obj["metadata"]
        log.info("garbage-collecting %s %s: its owners are gone", plural, object_name)
        try:
            await self.client.delete(api_version, plural, metadata["name"], metadata.get("namespace"),
                                     propagation_policy="Background", uid=metadata.get("uid"))
        except ApiError as error:
            if error.code not in (404, 409):
                raise
        return None


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

    async def stop(self) -> None:
        if self.manager is not None:
            await self.manager.stop()
        if self.client is not None:
            await self.client.close()
