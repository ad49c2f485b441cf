"""OpenAPI v3 documents generated from the pydantic models.

``/openapi/v3`` lists one document per group-version; each document has a schema per
kind (tagged ``x-kubernetes-group-version-kind``, which is how ``kubectl explain``
finds it) and the paths of its resources, whose PATCH operations declare the
``fieldValidation`` query parameter — that is how ``kubectl apply`` learns it can
leave validation to the server (``--validate=strict`` becomes ``fieldValidation=Strict``).

Schemas are rewritten from JSON Schema into the OpenAPI 3.0 dialect Kubernetes uses:
``X | None`` becomes ``X``, ``$ref`` with a description becomes ``allOf: [$ref]``,
an integer-or-string union becomes ``x-kubernetes-int-or-string``, titles go.

Core kinds do not advertise ``application/strategic-merge-patch+json`` here: ``kubectl``
then computes strategic merge patches for them from its compiled-in types, which carry
Kubernetes' exact merge keys; corral's own kinds get JSON merge patches from ``kubectl``,
as custom resources do.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic.json_schema import models_json_schema

from corral.api.registry import Registry, ResourceType


def _prefix(group: str, version: str) -> str:
    if group == "":
        return f"io.k8s.api.core.{version}"
    if group.endswith(".k8s.io"):
        return f"io.k8s.api.{group.removesuffix('.k8s.io')}.{version}"
    return ".".join(reversed(group.split("."))) + f".{version}"


def _fix(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_fix(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: _fix(v) for k, v in schema.items() if k not in ("title",)}
    if schema.get("default", 0) is None:
        del schema["default"]
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        options = [option for option in any_of if option != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        types = {option.get("type") for option in options if isinstance(option, dict)}
        if len(options) == 1:
            schema = {**options[0], **rest} if "$ref" not in options[0] else {**rest, "allOf": [options[0]]}
        elif types and types <= {"integer", "string", "number"} and all(set(o) == {"type"} for o in options):
            schema = {**rest, "x-kubernetes-int-or-string": True}
        else:
            schema = {**rest, "anyOf": options}
    if "$ref" in schema and len(schema) > 1:
        ref = schema.pop("$ref")
        schema["allOf"] = [{"$ref": ref}]
    if schema.get("additionalProperties") is True and "properties" in schema:
        del schema["additionalProperties"]
    if schema.get("additionalProperties") is True:
        schema["x-kubernetes-preserve-unknown-fields"] = True
        del schema["additionalProperties"]
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = schema.get(bound)  # JSON Schema's number form; OpenAPI 3.0 (and kubectl) want a boolean
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            schema[limit] = value
            schema[bound] = True
    return schema


def _param(name: str, where: str = "query", required: bool = False, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": {"type": kind}}


def _paths(rt: ResourceType, schema_ref: str) -> dict[str, Any]:
    base = "/api/v1" if rt.group == "" else f"/apis/{rt.group}/{rt.version}"
    collection = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    item = f"{collection}/{{name}}"
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    body = {"content": {"application/json": {"schema": {"$ref": schema_ref}}}}
    ok = {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}}
    patch_types = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
    if rt.strict:
        patch_types.append("application/strategic-merge-patch+json")

    def op(action: str, extra_params: list[dict[str, Any]] | None = None, with_body: bool = False,
           content: list[str] | None = None) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "operationId": f"{action}{rt.kind}", "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
            "parameters": [*(extra_params or [])], "responses": ok,
        }
        if with_body:
            operation["requestBody"] = body if content is None else {
                "content": {c: {"schema": {"type": "object"}} for c in content}}
        return operation

    writes = [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")]
    path_params = [_param("name", "path", True)] + ([_param("namespace", "path", True)] if rt.namespaced else [])
    collection_params = [_param("namespace", "path", True)] if rt.namespaced else []
    listing = [_param("labelSelector"), _param("fieldSelector"), _param("limit", kind="integer"), _param("continue"),
               _param("watch", kind="boolean"), _param("resourceVersion"), _param("timeoutSeconds", kind="integer"),
               _param("allowWatchBookmarks", kind="boolean")]
    paths: dict[str, Any] = {
        collection: {
            "parameters": collection_params,
            "get": op("list", listing), "post": op("post", writes, True),
            "delete": op("deletecollection", [_param("labelSelector"), _param("fieldSelector")]),
        },
        item: {
            "parameters": path_params,
            "get": op("get"), "put": op("put", writes, True), "delete": op("delete", [_param("gracePeriodSeconds", kind="integer")]),
            "patch": op("patch", [*writes, _param("force", kind="boolean")], True, patch_types),
        },
    }
    if "status" in rt.subresources:
        paths[f"{item}/status"] = {
            "parameters": path_params,
            "get": op("get"), "put": op("put", writes, True),
            "patch": op("patch", [*writes, _param("force", kind="boolean")], True, patch_types),
        }
    return paths


def group_version_document(registry: Registry, group: str, version: str) -> dict[str, Any]:
    """The OpenAPI v3 document of one group-version."""
    types = [rt for rt in registry.all() if rt.group == group and rt.version == version]
    prefix = _prefix(group, version)
    _, top = models_json_schema(
        [(rt.model, "validation") for rt in types], by_alias=True,
        ref_template=f"#/components/schemas/{prefix}.{{model}}",
    )
    schemas: dict[str, Any] = {f"{prefix}.{name}": _fix(schema) for name, schema in top.get("$defs", {}).items()}
    paths: dict[str, Any] = {}
    for rt in types:
        name = f"{prefix}.{rt.model.__name__}"
        schema = schemas.setdefault(name, {"type": "object"})
        schema["x-kubernetes-group-version-kind"] = [{"group": rt.group, "kind": rt.kind, "version": rt.version}]
        schema.setdefault("description", (rt.model.__doc__ or rt.kind).strip())
        paths.update(_paths(rt, f"#/components/schemas/{name}"))
    return {
        "openapi": "3.0.0",
        "info": {"title": "corral", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _doc_path(group: str, version: str) -> str:
    return f"api/{version}" if group == "" else f"apis/{group}/{version}"


def build_documents(registry: Registry) -> dict[str, bytes]:
    """Every group-version document, encoded, by its path under ``/openapi/v3/``."""
    documents = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            documents[_doc_path(group, version)] = json.dumps(group_version_document(registry, group, version)).encode()
    return documents


def root_document(documents: dict[str, bytes]) -> dict[str, Any]:
    return {"paths": {
        path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={hashlib.sha256(body).hexdigest()[:32].upper()}"}
        for path, body in documents.items()
    }}


def resource_paths(rt: ResourceType, schema_ref: str) -> dict[str, Any]:
    """The paths of one resource (for documents built elsewhere: custom resources')."""
    return _paths(rt, schema_ref)
