"""The registry of kinds: one :class:`ResourceType` per served resource.

Adding a kind to corral is writing its pydantic model and registering a
``ResourceType`` for it; the API server, the OpenAPI/CRD export and the tables
``kubectl get`` prints all come from here. Objects themselves travel and are
stored as plain JSON dicts (``Obj``) — the model validates them on write and
describes them in OpenAPI, so the hot paths never pay for model instances.

There is no module-level registry: :func:`corral.api.kinds.default_registry`
builds one, and whoever needs it (server, tests) holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

Obj = dict[str, Any]
"""A Kubernetes object as JSON: ``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``."""


@dataclass(frozen=True)
class PrinterColumn:
    """One column of the Table that ``kubectl get`` prints.

    ``value`` computes the cell from the object; ``priority`` 1 columns only show with ``-o wide``.
    ``json_path`` (``.status.phase``) is set when the cell is one field of the object: such a column
    is also one of the kind's CRD ``additionalPrinterColumns`` (``corral crds``), so ``kubectl get``
    on a real cluster shows it too; computed cells (``2/4``, sums) have none.
    """

    name: str
    type: str
    value: Callable[[Obj], Any]
    priority: int = 0
    description: str = ""
    format: str = ""
    json_path: str = ""


@dataclass(frozen=True)
class ResourceType:
    """A served resource: where it lives in the URL space and how its objects are checked.

    ``strict`` kinds (corral's own) reject unknown fields; core kinds preserve them,
    since a server must round-trip fields it does not model.
    """

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    model: type[BaseModel]
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    strict: bool = False
    subresources: frozenset[str] = frozenset({"status"})
    columns: tuple[PrinterColumn, ...] = ()
    verbs: tuple[str, ...] = (
        "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
    )
    # Spec-like fields whose change bumps metadata.generation ("spec" for most kinds;
    # kinds without a spec, like ConfigMap, list their data fields).
    generation_fields: tuple[str, ...] = ("spec",)
    # Kubernetes' registry strategy for the kind: ``default(obj)`` fills in defaults on every
    # write; ``check(new, old)`` returns semantic problems as (field, problem) pairs (``old`` is
    # None on create). See corral.api.workloads.
    default: Callable[[Obj], None] | None = None
    check: Callable[[Obj, Obj | None], list[tuple[str, str]]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Value rules beyond the model's types (``corral.api.rules``): (field path, problem) pairs.
    value_rules: Callable[[Obj], list[tuple[str, str]]] | None = None

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()


class RegistryError(KeyError):
    """A kind or resource that is not registered."""


class Registry:
    """Kinds by ``(apiVersion, kind)`` and by ``(group, version, plural)``."""

    def __init__(self, types: Iterable[ResourceType] = ()) -> None:
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        self._by_resource: dict[tuple[str, str, str], ResourceType] = {}
        for resource_type in types:
            self.register(resource_type)

    def register(self, resource_type: ResourceType) -> None:
        key = (resource_type.api_version, resource_type.kind)
        if key in self._by_kind:
            raise ValueError(f"{resource_type.api_version} {resource_type.kind} is registered twice")
        self._by_kind[key] = resource_type
        self._by_resource[(resource_type.group, resource_type.version, resource_type.plural)] = resource_type

    def unregister(self, resource_type: ResourceType) -> None:
        """Stop serving a resource (a deleted or changed CustomResourceDefinition's)."""
        key = (resource_type.api_version, resource_type.kind)
        if self._by_kind.get(key) is resource_type:
            del self._by_kind[key]
        resource = (resource_type.group, resource_type.version, resource_type.plural)
        if self._by_resource.get(resource) is resource_type:
            del self._by_resource[resource]

    def by_kind(self, api_version: str, kind: str) -> ResourceType:
        try:
            return self._by_kind[(api_version, kind)]
        except KeyError:
            raise RegistryError(f"no kind {kind!r} is registered for version {api_version!r}") from None

    def by_resource(self, group: str, version: str, plural: str) -> ResourceType:
        try:
            return self._by_resource[(group, version, plural)]
        except KeyError:
            where = f"{group}/{version}" if group else version
            raise RegistryError(f"the server could not find the requested resource {plural!r} in {where}") from None

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_resource.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        return list(self._by_kind.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Served versions per group (``""`` is the core group)."""
        versions: dict[str, list[str]] = {}
        for resource_type in self._by_kind.values():
            served = versions.setdefault(resource_type.group, [])
            if resource_type.version not in served:
                served.append(resource_type.version)
        return versions
