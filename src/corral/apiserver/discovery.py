"""API discovery: what the server serves, in the legacy and the aggregated format.

Both formats are built from one list of :class:`DiscoveryResource` — the registry's kinds
plus the built-in review resources the server answers itself (``authentication.k8s.io``,
``authorization.k8s.io``) — so they cannot disagree.

* **Legacy** (one request per group version): ``/api`` → ``APIVersions``, ``/apis`` →
  ``APIGroupList``, ``/apis/G`` → ``APIGroup``, ``/api/v1`` and ``/apis/G/V`` →
  ``APIResourceList`` (subresources as ``plural/sub`` entries).
* **Aggregated** (one request for everything, what client-go 1.30+ and kubectl 1.35 ask
  for first): a request to ``/api`` or ``/apis`` whose ``Accept`` names
  ``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`` (or ``v2beta1``)
  gets an ``APIGroupDiscoveryList`` — each group, its versions (preferred first), each
  resource with ``verbs``, ``scope``, ``singularResource``, ``responseKind``,
  ``shortNames``, ``categories`` and ``subresources`` — with that media type as its
  ``Content-Type``. ``/api`` holds the core group (name ``""``), ``/apis`` the others. A
  client that does not ask for it (or asks only for the protobuf form) gets the legacy
  answer, as kube-apiserver does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from corral.api.registry import Registry

AGGREGATED_GROUP = "apidiscovery.k8s.io"
AGGREGATED_VERSIONS = ("v2", "v2beta1")
SUBRESOURCE_VERBS = {"status": ("get", "patch", "update"), "scale": ("get", "patch", "update"), "binding": ("create",),
                     "log": ("get",), "exec": ("create", "get"), "attach": ("create", "get"),
                     "portforward": ("create", "get")}
SUBRESOURCE_KINDS = {"binding": "Binding", "log": "Pod", "scale": "Scale", "exec": "PodExecOptions",
                     "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}
SUBRESOURCE_GROUP_VERSIONS = {"scale": ("autoscaling", "v1")}  # a custom resource's scale is autoscaling/v1


@dataclass(frozen=True)
class DiscoverySubresource:
    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""


@dataclass(frozen=True)
class DiscoveryResource:
    """One served resource as discovery describes it."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[DiscoverySubresource, ...] = ()


def review(group: str, kind: str, *, namespaced: bool = False) -> DiscoveryResource:
    """A create-only review resource (``SelfSubjectReview``, ``SelfSubjectAccessReview`` …)."""
    return DiscoveryResource(group, "v1", f"{kind.lower()}s", kind.lower(), kind, namespaced, ("create",))


def registry_resources(registry: Registry) -> list[DiscoveryResource]:
    """The registry's kinds (with ``pods/binding``'s sibling ``bindings`` in the core group)."""
    resources: list[DiscoveryResource] = []
    for rt in registry.all():
        subresources = tuple(
            DiscoverySubresource(sub, SUBRESOURCE_KINDS.get(sub, rt.kind), SUBRESOURCE_VERBS.get(sub, ("get",)),
                                 *SUBRESOURCE_GROUP_VERSIONS.get(sub, ("", "")))
            for sub in sorted(rt.subresources))
        resources.append(DiscoveryResource(rt.group, rt.version, rt.plural, rt.singular_name, rt.kind, rt.namespaced,
                                           tuple(rt.verbs), tuple(rt.short_names), tuple(rt.categories), subresources))
    if any(r.group == "" and r.version == "v1" for r in resources):
        resources.append(DiscoveryResource("", "v1", "bindings", "binding", "Binding", True, ("create",)))
    return resources


def group_versions(resources: Iterable[DiscoveryResource]) -> dict[str, list[str]]:
    """Group → versions in first-seen order (the first is the preferred one)."""
    groups: dict[str, list[str]] = {}
    for resource in resources:
        versions = groups.setdefault(resource.group, [])
        if resource.version not in versions:
            versions.append(resource.version)
    return groups


# ---- legacy ---------------------------------------------------------------------------

def api_group(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(resources: Iterable[DiscoveryResource]) -> dict[str, Any]:
    groups = [api_group(g, vs) for g, vs in group_versions(resources).items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(resources: Iterable[DiscoveryResource], group: str, version: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for r in resources:
        if r.group != group or r.version != version:
            continue
        entry: dict[str, Any] = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                                 "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entries.append(entry)
        entries.extend({"name": f"{r.plural}/{s.name}", "singularName": "", "namespaced": r.namespaced,
                        **({"group": s.group, "version": s.version} if s.group else {}),
                        "kind": s.kind, "verbs": list(s.verbs)} for s in r.subresources)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": entries}


# ---- aggregated -----------------------------------------------------------------------

def aggregated_version(accept: str) -> str | None:
    """The ``apidiscovery.k8s.io`` version an ``Accept`` header asks for in JSON (first acceptable), or ``None``."""
    for part in accept.split(","):
        media, *raw_params = (p.strip() for p in part.split(";"))
        params = dict(p.split("=", 1) for p in raw_params if "=" in p)
        if media.lower() not in ("application/json", "application/*", "*/*"):
            continue
        if (params.get("g") == AGGREGATED_GROUP and params.get("as") == "APIGroupDiscoveryList"
                and params.get("v") in AGGREGATED_VERSIONS):
            return params["v"]
        if not params:  # plain JSON comes first: the client prefers the legacy format
            return None
    return None


def aggregated_content_type(version: str) -> str:
    return f"application/json;g={AGGREGATED_GROUP};v={version};as=APIGroupDiscoveryList"


def _kind(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _aggregated_resource(r: DiscoveryResource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": r.plural, "responseKind": _kind(r.group, r.version, r.kind),
        "scope": "Namespaced" if r.namespaced else "Cluster", "singularResource": r.singular, "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    if r.subresources:
        entry["subresources"] = [{"subresource": s.name, "verbs": list(s.verbs),
                                  "responseKind": _kind(s.group or r.group, s.version or r.version, s.kind)}
                                 for s in r.subresources]
    return entry


def aggregated(resources: Iterable[DiscoveryResource], *, core: bool, version: str = "v2") -> dict[str, Any]:
    """The ``APIGroupDiscoveryList`` of ``/api`` (``core=True``) or ``/apis``."""
    listed = list(resources)
    items: list[dict[str, Any]] = []
    for group, versions in group_versions(listed).items():
        if (group == "") != core:
            continue
        items.append({
            "metadata": {"name": group, "creationTimestamp": None},
            "versions": [{"version": v, "freshness": "Current",
                          "resources": [_aggregated_resource(r) for r in listed if r.group == group and r.version == v]}
                         for v in versions],
        })
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"{AGGREGATED_GROUP}/{version}", "metadata": {},
            "items": items}
