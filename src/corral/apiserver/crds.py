"""Serving CustomResourceDefinitions: the registry follows the stored CRDs.

:class:`CustomResources` keeps the registry's custom resources equal to what the stored
``customresourcedefinitions`` declare (:func:`corral.api.crds.served_resource_types`):

* After every committed write to a CRD, :meth:`CustomResources.sync` registers new and
  changed CRDs' resources at once (so the next request may use them), sets each CRD's
  status as kube's controllers do (``NamesAccepted``, ``Established``, ``acceptedNames``,
  ``storedVersions``), and — for a deleted CRD — deletes every object of its resource and
  stops serving it. Listeners (the server's discovery and OpenAPI caches) are told.
* At start (:meth:`CustomResources.start`) the CRDs corral publishes for its own kinds are
  written to the store (read-only: the CRD model rejects a changed spec, and
  :meth:`check_delete` refuses deletion), and every stored CRD is served again — CRDs
  survive restarts because they are ordinary stored objects.
* Objects are stored in the CRD's storage version (conversion ``None``: only ``apiVersion``
  differs); :meth:`read_as` shows a stored object in the requested version with schema
  defaults applied (defaulting on read, as kube does for objects stored before a default).
* The ``scale`` subresource maps ``specReplicasPath``/``statusReplicasPath``/
  ``labelSelectorPath`` to an ``autoscaling/v1`` ``Scale`` (:func:`scale_of`, :func:`with_replicas`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from corral.api import crds, structural
from corral.api.registry import Obj, Registry, ResourceType
from corral.apiserver import openapi
from corral.apiserver.errors import ApiError, bad_request
from corral.store import Entry, Store, Write

SCALE_GROUP_VERSION = "autoscaling/v1"


def is_custom(rt: ResourceType) -> bool:
    """Whether ``rt`` is served for a user's CRD."""
    return "crd" in rt.extra


def resource_key(rt: ResourceType) -> str:
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


class CustomResources:
    """The registry's custom resources, kept in step with the stored CRDs."""

    def __init__(self, store: Store, registry: Registry, now: Callable[[], str]) -> None:
        self.store = store
        self.registry = registry
        self.now = now
        # a registry without customresourcedefinitions (some tests build one) serves no CRDs
        self.crd_rt = registry.find(crds.GROUP, crds.VERSION, crds.PLURAL)
        self.published: dict[str, Obj] = self.crd_rt.extra.get("builtin") or {} if self.crd_rt else {}
        self._served: dict[str, tuple[str, list[ResourceType]]] = {}  # CRD name → (its spec as JSON, resources)
        self.listeners: list[Callable[[], None]] = []

    # ---- hooks the handlers call ------------------------------------------------------

    def default(self, rt: ResourceType, obj: Obj, *, creating: bool) -> None:
        """Defaults of a written object: a CRD's (and its status on create), a custom resource's schema
        defaults and storage version. With a ``status`` subresource, a create's status is dropped, as in kube."""
        if rt is self.crd_rt:
            crds.default_crd(obj)
            if creating and not crds.crd_problems(obj):
                obj["status"] = crds.established_status(obj, self.now())
        elif is_custom(rt):
            if creating and "status" in rt.subresources:
                obj.pop("status", None)
            structural.apply_defaults(rt.extra["schema"], obj)
            obj["apiVersion"] = f"{rt.group}/{rt.extra['storage_version']}"

    def read_as(self, rt: ResourceType, obj: Obj) -> Obj:
        """A stored custom resource as ``rt``'s version shows it (apiVersion, schema defaults)."""
        if not is_custom(rt):
            return obj
        shown = copy.deepcopy(obj)
        shown["apiVersion"] = rt.api_version
        structural.apply_defaults(rt.extra["schema"], shown)
        return shown

    def check_patch(self, rt: ResourceType, content_type: str) -> None:
        if is_custom(rt) and content_type == "application/strategic-merge-patch+json":
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - accepted media types include: "
                           f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml "
                           f"(strategic merge patch is not supported for custom resources such as {rt.plural}.{rt.group})")

    def check_delete(self, rt: ResourceType, entry: Entry) -> None:
        if rt is self.crd_rt and entry.name in self.published:
            raise ApiError(405, "MethodNotAllowed", f"customresourcedefinitions {entry.name!r} is corral's own kind "
                           "and cannot be deleted (corral publishes its kinds' definitions read-only)")

    # ---- keeping the registry in step -------------------------------------------------

    async def start(self, prepare_new: Callable[[ResourceType, Obj, str | None], None]) -> None:
        """Publish corral's own kinds' CRDs (creating or refreshing them), then serve every stored CRD."""
        if self.crd_rt is None:
            return
        last: Write | None = None
        for name, manifest in self.published.items():
            current = self.store.get(crds.STORE_KEY, "", name)
            if current is None:
                obj = copy.deepcopy(manifest)
                prepare_new(self.crd_rt, obj, None)
                last = self.store.create(crds.STORE_KEY, obj)
            elif current.obj.get("spec") != manifest["spec"]:  # a newer corral changed a kind
                obj = current.copy()
                obj["spec"] = copy.deepcopy(manifest["spec"])
                obj["status"] = crds.established_status(obj, self.now())
                last = self.store.update(crds.STORE_KEY, obj, current.rv)
        if last is not None:
            await last.wait()
        await self.sync()

    async def sync(self) -> None:
        """Serve exactly the stored CRDs (see the module docstring); awaits its own writes."""
        last: Write | None = None
        stored = {e.name: e for e in self.store.entries(crds.STORE_KEY) if e.name not in self.published}
        changed = False
        for name in list(self._served):
            entry = stored.get(name)
            spec = json.dumps(entry.obj.get("spec"), sort_keys=True) if entry is not None else None
            if entry is None or entry.obj["metadata"].get("deletionTimestamp") or spec != self._served[name][0]:
                for rt in self._served.pop(name)[1]:
                    self.registry.unregister(rt)
                changed = True
                if entry is None or entry.obj["metadata"].get("deletionTimestamp"):
                    last = self._delete_objects(name) or last
        for name, entry in stored.items():
            if name in self._served or entry.obj["metadata"].get("deletionTimestamp"):
                if entry.obj["metadata"].get("deletionTimestamp"):
                    last = self._finish_deletion(entry) or last
                continue
            crd = entry.obj
            if crds.crd_problems(crd):
                continue  # stored by an older corral with laxer checks: not served
            types = crds.served_resource_types(crd)
            try:
                for rt in types:
                    self.registry.register(rt)
            except ValueError:  # another CRD already serves that kind
                for rt in types:
                    self.registry.unregister(rt)
                continue
            self._served[name] = (json.dumps(crd.get("spec"), sort_keys=True), types)
            changed = True
            status = crds.established_status(crd, self.now())
            if crd.get("status") != status:
                updated = entry.copy()
                updated["status"] = status
                last = self.store.update(crds.STORE_KEY, updated, entry.rv)
        if last is not None:
            await last.wait()
        if changed:
            for listener in self.listeners:
                listener()

    def _delete_objects(self, crd_name: str) -> Write | None:
        """Delete every object of a deleted CRD's resource (kube's ``customresourcecleanup``)."""
        plural, _, group = crd_name.partition(".")
        key = f"{plural}.{group}"
        last = None
        for entry in self.store.entries(key):
            last = self.store.delete(key, entry.namespace, entry.name)
        return last

    def _finish_deletion(self, entry: Entry) -> Write | None:
        """A CRD deleted while it has finalizers: its objects go now, the CRD when its finalizers do."""
        last = self._delete_objects(entry.name)
        conditions = [c for c in (entry.obj.get("status") or {}).get("conditions") or [] if c.get("type") != "Terminating"]
        conditions.append({"type": "Terminating", "status": "True", "reason": "InstanceDeletionCompleted",
                           "message": "removed all instances", "lastTransitionTime": self.now()})
        if ((entry.obj.get("status") or {}).get("conditions") or []) == conditions:
            return last
        updated = entry.copy()
        updated.setdefault("status", {})["conditions"] = conditions
        return self.store.update(crds.STORE_KEY, updated, entry.rv)

    # ---- discovery and OpenAPI --------------------------------------------------------

    def custom_types(self) -> list[ResourceType]:
        return [rt for _, types in self._served.values() for rt in types]

    def openapi_documents(self) -> dict[str, bytes]:
        """The OpenAPI v3 document of each custom group-version, by its path under ``/openapi/v3/``."""
        documents: dict[str, dict[str, Any]] = {}
        for rt in self.custom_types():
            path = f"apis/{rt.group}/{rt.version}"
            document = documents.setdefault(path, {"openapi": "3.0.0", "info": {"title": "corral", "version": rt.version},
                                                   "paths": {}, "components": {"schemas": {}}})
            name = ".".join(reversed(rt.group.split("."))) + f".{rt.version}.{rt.kind}"
            schema = copy.deepcopy(rt.extra["schema"])
            schema["x-kubernetes-group-version-kind"] = [{"group": rt.group, "kind": rt.kind, "version": rt.version}]
            document["components"]["schemas"][name] = schema
            document["paths"].update(openapi.resource_paths(rt, f"#/components/schemas/{name}"))
        return {path: json.dumps(document).encode() for path, document in documents.items()}


# ---- the scale subresource --------------------------------------------------------------

def _path(expression: str) -> list[str]:
    return [part for part in expression.strip().lstrip(".").split(".") if part]


def scale_of(rt: ResourceType, obj: Obj) -> Obj:
    """The ``autoscaling/v1`` ``Scale`` of a custom resource."""
    paths = rt.extra.get("scale") or {}
    meta = obj.get("metadata") or {}
    spec_replicas = crds.jsonpath(str(paths.get("specReplicasPath") or ".spec.replicas"))(obj)
    status_replicas = crds.jsonpath(str(paths.get("statusReplicasPath") or ".status.replicas"))(obj)
    status: Obj = {"replicas": int(status_replicas or 0)}
    if paths.get("labelSelectorPath"):
        selector = crds.jsonpath(str(paths["labelSelectorPath"]))(obj)
        if selector:
            status["selector"] = selector
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta}
    return {"kind": "Scale", "apiVersion": SCALE_GROUP_VERSION, "metadata": scale_meta,
            "spec": {"replicas": int(spec_replicas or 0)}, "status": status}


def with_replicas(rt: ResourceType, obj: Obj, scale: Any) -> Obj:
    """``obj`` with the replicas a written ``Scale`` asks for at its ``specReplicasPath``."""
    if not isinstance(scale, dict) or not isinstance(scale.get("spec"), dict):
        raise bad_request("the request body must be an autoscaling/v1 Scale with spec.replicas")
    replicas = scale["spec"].get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ApiError(422, "Invalid", f"Scale.autoscaling {obj['metadata']['name']!r} is invalid: spec.replicas: "
                       f"Invalid value: {replicas!r}: must be greater than or equal to 0")
    paths = rt.extra.get("scale") or {}
    parts = _path(str(paths.get("specReplicasPath") or ".spec.replicas"))
    new = copy.deepcopy(obj)
    node = new
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = replicas
    return new

