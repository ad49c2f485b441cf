"""CustomResourceDefinitions (``apiextensions.k8s.io/v1``): the kind, its validation, and
what a CRD serves.

* :func:`crd_resource_type` — the ``customresourcedefinitions`` resource itself
  (cluster-scoped, short name ``crd``, ``status`` subresource). Its model runs
  :func:`crd_problems` (kube's essential checks: name ``<plural>.<group>``, a dotted group,
  one storage version, one served, scope, names, a structural ``openAPIV3Schema`` per version).
* :func:`served_resource_types` — one :class:`ResourceType` per served version of a CRD:
  its model validates with the CRD's structural schema (:mod:`corral.api.structural`;
  unknown fields come out as pydantic ``extra_forbidden`` errors, so the API server's
  ``fieldValidation`` handling prunes or rejects them like any kind's), its printer columns
  come from ``additionalPrinterColumns`` (a JSONPath subset), and ``extra`` carries the
  schema, the storage version and the scale paths.
* :func:`corral_crds` — corral's own kinds as CRD manifests, generated from the pydantic
  models' JSON schema (inlined, made structural). The API server publishes them read-only;
  ``corral crds`` prints the same manifests for a real cluster.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from typing import Any, ClassVar, Self, cast

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from corral.api import structural
from corral.api.registry import Obj, PrinterColumn, Registry, ResourceType

GROUP = "apiextensions.k8s.io"
VERSION = "v1"
KIND = "CustomResourceDefinition"
PLURAL = "customresourcedefinitions"
STORE_KEY = f"{PLURAL}.{GROUP}"
BUILTIN_LABEL = "corral.dev/builtin"
"""Set on the CRDs corral publishes for its own kinds (read-only through the API)."""
SCOPES = ("Namespaced", "Cluster")
TOP_LEVEL = ("apiVersion", "kind", "metadata")

Problems = list[tuple[structural.Loc, str, Any, str]]
"""``(path, message, value, pydantic error type)`` for :func:`schema_model`: ``missing``,
``extra_forbidden``, ``literal_error`` (the message lists the supported values) or ``custom``."""


# ---- a model whose validation is a function -------------------------------------------

class CheckedModel(BaseModel):
    """A model whose ``model_validate`` runs the class's ``check`` function and raises its problems as a
    ``ValidationError`` (types ``missing``, ``extra_forbidden`` or a custom message), which is how
    :func:`corral.apiserver.validation.validate` reads every kind's problems. The checked object
    stays a plain dict, as every stored object does."""

    model_config = ConfigDict(extra="allow")
    check: ClassVar[Callable[[Obj], Problems]]

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        problems = cls.check(obj) if isinstance(obj, dict) else [((), "must be an object", obj, "custom")]
        if problems:
            details: list[InitErrorDetails] = []
            for loc, message, value, kind in problems:
                if kind == "custom":
                    details.append({"type": PydanticCustomError("schema", message), "loc": loc, "input": value})
                elif kind == "literal_error":
                    details.append({"type": kind, "loc": loc, "input": value, "ctx": {"expected": message}})
                else:
                    details.append({"type": kind, "loc": loc, "input": value})
            raise ValidationError.from_exception_data(cls.__name__, details)
        return cast(Self, cls.model_construct())


def schema_model(name: str, check: Callable[[Obj], Problems]) -> type[BaseModel]:
    """A :class:`CheckedModel` named ``name`` (the kind) that validates with ``check``."""
    return type(name, (CheckedModel,), {"check": staticmethod(check), "__module__": __name__})


# ---- CRD validation -------------------------------------------------------------------

def _invalid(problems: Problems, field: str, message: str, value: Any = None) -> None:
    problems.append((tuple(field.split(".")), message, value, "custom"))


def crd_problems(crd: Obj, builtin: dict[str, Obj] | None = None) -> Problems:
    """What is wrong with a CRD, field by field (kube's essential checks)."""
    problems: Problems = []
    spec = crd.get("spec")
    name = str((crd.get("metadata") or {}).get("name") or "")
    if builtin is not None and name in builtin and spec != builtin[name]["spec"]:
        return [(("spec",), f"{name} is corral's own kind; its definition is read-only", None, "custom")]
    if not isinstance(spec, dict):
        return [(("spec",), "Required value", None, "missing")]
    group = spec.get("group")
    names: Obj = spec["names"] if isinstance(spec.get("names"), dict) else {}
    if not group or not isinstance(group, str):
        problems.append((("spec", "group"), "Required value", None, "missing"))
    elif "." not in group:
        _invalid(problems, "spec.group", "should be a domain with at least one dot", group)
    for field in ("plural", "kind"):
        if not names.get(field):
            problems.append((("spec", "names", field), "Required value", None, "missing"))
    plural = names.get("plural")
    if plural and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", str(plural)):
        _invalid(problems, "spec.names.plural", "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                 "characters or '-'", plural)
    if plural and group and name != f"{plural}.{group}":
        _invalid(problems, "metadata.name", f'must be spec.names.plural+"."+spec.group ("{plural}.{group}")', name)
    if spec.get("scope") not in SCOPES:
        problems.append((("spec", "scope"), f"Unsupported value: {spec.get('scope')!r}: supported values: "
                         '"Cluster", "Namespaced"', spec.get("scope"), "custom"))
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        problems.append((("spec", "versions"), "Required value: must have exactly one version marked as storage "
                         "version", None, "missing"))
        return problems
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        _invalid(problems, "spec.versions", f"must have exactly one version marked as storage version "
                 f"({len(storage)} are)", [v.get("name") for v in storage])
    if not any(isinstance(v, dict) and v.get("served") for v in versions):
        _invalid(problems, "spec.versions", "must have at least one version marked as served", None)
    seen: set[str] = set()
    for index, version in enumerate(versions):
        where: structural.Loc = ("spec", "versions", index)
        if not isinstance(version, dict):
            problems.append((where, "must be an object", version, "custom"))
            continue
        version_name = version.get("name")
        if not version_name or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", str(version_name)):
            problems.append(((*where, "name"), "must be a DNS-1035 label", version_name, "custom"))
        elif version_name in seen:
            problems.append(((*where, "name"), "Duplicate value", version_name, "custom"))
        seen.add(str(version_name))
        schema = (version.get("schema") or {}).get("openAPIV3Schema") if isinstance(version.get("schema"), dict) else None
        if schema is None:
            problems.append(((*where, "schema", "openAPIV3Schema"), "Required value: schemas are required", None,
                             "missing"))
            continue
        loc = (*where, "schema", "openAPIV3Schema")
        if isinstance(schema, dict) and schema.get("type") not in (None, "object"):
            problems.append(((*loc, "type"), 'must be "object" at the root', schema.get("type"), "custom"))
        for path, message in structural.schema_problems(schema, loc):
            problems.append((path, message, None, "custom"))
        for column_index, column in enumerate(version.get("additionalPrinterColumns") or []):
            if not isinstance(column, dict) or not column.get("name") or not column.get("jsonPath"):
                problems.append(((*where, "additionalPrinterColumns", column_index), "name and jsonPath are required",
                                 column, "custom"))
    return problems


def crd_resource_type(builtin: dict[str, Obj] | None = None) -> ResourceType:
    """The ``customresourcedefinitions`` resource; ``builtin`` CRDs (by name) may not be changed."""

    def check(obj: Obj) -> Problems:
        return crd_problems(obj, builtin)

    return ResourceType(
        group=GROUP, version=VERSION, kind=KIND, plural=PLURAL, namespaced=False,
        model=schema_model(KIND, check), short_names=("crd", "crds"), categories=("api-extensions",),
        subresources=frozenset({"status"}),
        columns=(PrinterColumn("Created At", "string", lambda o: (o.get("metadata") or {}).get("creationTimestamp")),),
        extra={"builtin": builtin or {}},
    )


def established_status(crd: Obj, now: str) -> Obj:
    """The status kube's controllers give an accepted CRD: names accepted, established, stored versions."""
    spec = crd["spec"]
    storage = [v["name"] for v in spec["versions"] if v.get("storage")]
    stored = list((crd.get("status") or {}).get("storedVersions") or [])
    stored.extend(v for v in storage if v not in stored)
    names = dict(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", f"{names['kind']}List")
    conditions = [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found",
         "lastTransitionTime": now},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
         "message": "the initial names have been accepted", "lastTransitionTime": now},
    ]
    old = {c.get("type"): c for c in (crd.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}
    for condition in conditions:  # a condition keeps its transition time while it holds
        previous = old.get(condition["type"])
        if previous and previous.get("status") == condition["status"] and previous.get("lastTransitionTime"):
            condition["lastTransitionTime"] = previous["lastTransitionTime"]
    return {"conditions": conditions, "acceptedNames": names, "storedVersions": stored}


def default_crd(crd: Obj) -> None:
    """kube's defaults for a CRD: conversion None, names.singular/listKind, a version's ``served`` unset is kept."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("conversion", {"strategy": "None"})
    names = spec.get("names")
    if isinstance(names, dict) and names.get("kind"):
        names.setdefault("singular", str(names["kind"]).lower())
        names.setdefault("listKind", f"{names['kind']}List")


# ---- what a CRD serves ----------------------------------------------------------------

_JSONPATH = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\['([^']+)'\]|\[\"([^\"]+)\"\]")


def jsonpath(expression: str) -> Callable[[Any], Any]:
    """The subset of JSONPath printer columns use: ``.spec.x``, ``.a[0].b``, ``.metadata.labels['k']``
    (``{...}`` braces allowed)."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    parts: list[str | int] = []
    position = 0
    while position < len(text):
        match = _JSONPATH.match(text, position)
        if match is None:
            raise ValueError(f"unsupported JSONPath {expression!r} (corral supports .field, [index] and ['key'])")
        field, index, quoted, double = match.groups()
        parts.append(int(index) if index is not None else (field or quoted or double))
        position = match.end()

    def value(obj: Any) -> Any:
        for part in parts:
            if isinstance(part, int):
                obj = obj[part] if isinstance(obj, list) and part < len(obj) else None
            else:
                obj = obj.get(part) if isinstance(obj, dict) else None
            if obj is None:
                return None
        return obj

    return value


def printer_columns(version: Obj) -> tuple[PrinterColumn, ...]:
    """``additionalPrinterColumns`` as printer columns (after the implicit NAME); a CRD that
    declares none gets a single ``Age`` column, as kube-apiserver does."""
    columns = [PrinterColumn(str(column["name"]), str(column.get("type") or "string"), jsonpath(str(column["jsonPath"])),
                             priority=int(column.get("priority") or 0),
                             description=str(column.get("description") or ""),
                             format=str(column.get("format") or ""))
               for column in version.get("additionalPrinterColumns") or []]
    if not columns:
        columns.append(PrinterColumn("Age", "date", jsonpath(".metadata.creationTimestamp"),
                                     description="Time since the object was created."))
    return tuple(columns)


def object_schema(schema: structural.Schema) -> structural.Schema:
    """The schema of a whole object: the CRD's, with ``apiVersion``/``kind``/``metadata`` always allowed."""
    properties = dict(schema.get("properties") or {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties["metadata"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {**schema, "type": "object", "properties": properties}


def object_problems(schema: structural.Schema, obj: Obj) -> Problems:
    """Unknown fields (as ``extra_forbidden``) and invalid values of a custom resource."""
    problems: Problems = [(loc, "unknown field", None, "extra_forbidden")
                          for loc in structural.unknown_fields(schema, obj)]
    for problem in structural.value_problems(schema, obj):
        if problem.required:
            problems.append((problem.loc, "Required value", None, "missing"))
        elif problem.supported and all(isinstance(v, str) for v in problem.supported):
            expected = " or ".join(", ".join(f"'{v}'" for v in problem.supported).rsplit(", ", 1))
            problems.append((problem.loc, expected, problem.value, "literal_error"))
        else:
            problems.append((problem.loc, problem.message, problem.value, "custom"))
    return problems


_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(name: str) -> tuple[int, int, int, str]:
    """kube's version order (``v2`` > ``v1`` > ``v1beta2`` > ``v1beta1`` > ``v1alpha1`` > anything else):
    the first served version is the group's preferred one."""
    match = _VERSION.match(name)
    if match is None:
        return (3, 0, 0, name)
    major, stage, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0), name)


def served_resource_types(crd: Obj) -> list[ResourceType]:
    """The resources a (valid) CRD serves: one per served version, preferred version first."""
    spec = crd["spec"]
    names = spec["names"]
    group = spec["group"]
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    served = sorted((v for v in spec["versions"] if v.get("served")), key=lambda v: version_priority(v["name"]))
    result = []
    for version in served:
        schema = object_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
        subresources = version.get("subresources") or {}
        enabled = frozenset(name for name in ("status", "scale") if isinstance(subresources.get(name), dict))
        generation_fields = tuple(k for k in schema["properties"] if k not in (*TOP_LEVEL, "status")) or ("spec",)

        def check(obj: Obj, schema: structural.Schema = schema) -> Problems:
            return object_problems(schema, obj)

        result.append(ResourceType(
            group=group, version=version["name"], kind=names["kind"], plural=names["plural"],
            namespaced=spec["scope"] == "Namespaced", model=schema_model(names["kind"], check),
            singular=names.get("singular") or names["kind"].lower(),
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            subresources=enabled, columns=printer_columns(version), generation_fields=generation_fields,
            extra={"crd": crd["metadata"]["name"], "schema": schema, "storage_version": storage,
                   "scale": subresources.get("scale") if "scale" in enabled else None},
        ))
    return result


# ---- corral's own kinds as CRDs -------------------------------------------------------

def _structural(schema: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    """A pydantic JSON schema node as a structural OpenAPI v3 node ($refs inlined, nullable, int-or-string)."""
    if not isinstance(schema, dict):
        return schema
    if depth > 40:
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**_structural(target, defs, depth + 1), **{k: v for k, v in schema.items() if k != "$ref"}}
        return _structural(merged, defs, depth + 1) if "$ref" in merged else merged
    schema = {k: v for k, v in schema.items() if k not in ("title", "$defs", "discriminator")}
    if schema.get("default", 0) is None:
        del schema["default"]
    for key in ("anyOf", "oneOf"):
        options = schema.pop(key, None)
        if isinstance(options, list):
            real = [o for o in options if o != {"type": "null"}]
            nullable = len(real) < len(options)
            if len(real) == 1:
                schema = {**_structural(real[0], defs, depth + 1), **schema}
            elif real and all(isinstance(o, dict) and o.get("type") in ("integer", "string", "number") for o in real):
                schema["x-kubernetes-int-or-string"] = True
            else:
                schema["x-kubernetes-preserve-unknown-fields"] = True
                schema.setdefault("type", "object")
            if nullable:
                schema["nullable"] = True
    if "allOf" in schema and len(schema["allOf"]) == 1:
        schema = {**_structural(schema.pop("allOf")[0], defs, depth + 1), **schema}
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = schema.get(bound)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            schema[limit], schema[bound] = value, True
    if "properties" in schema:
        schema["properties"] = {k: _structural(v, defs, depth + 1) for k, v in schema["properties"].items()}
        schema.setdefault("type", "object")
    extra = schema.get("additionalProperties")
    if extra is True or (extra == {} and "properties" not in schema):
        schema.pop("additionalProperties")
        schema["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(extra, dict):
        schema["additionalProperties"] = _structural(extra, defs, depth + 1)
        if "properties" in schema:
            del schema["additionalProperties"]
            schema["x-kubernetes-preserve-unknown-fields"] = True
    elif extra is False:
        del schema["additionalProperties"]
    if "items" in schema:
        schema["items"] = _structural(schema["items"], defs, depth + 1)
    if "type" not in schema and not schema.get("x-kubernetes-int-or-string"):
        schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema


@functools.lru_cache(maxsize=64)
def _model_schema(model: type[BaseModel]) -> str:
    """A model's structural schema as JSON (generated once per model: registries are built often)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return json.dumps(_structural(raw, defs))


def crd_printer_columns(rt: ResourceType) -> list[Obj]:
    """The kind's columns that show one field (those with a ``json_path``), as
    ``additionalPrinterColumns``; the table's own Name column and computed cells are left out,
    since a CRD's column is a JSONPath and nothing else."""
    columns = []
    for column in rt.columns:
        if not column.json_path or column.format == "name":
            continue
        entry: Obj = {"name": column.name, "type": column.type, "jsonPath": column.json_path}
        if column.priority:
            entry["priority"] = column.priority
        if column.description:
            entry["description"] = column.description
        if column.format:
            entry["format"] = column.format
        columns.append(entry)
    return columns


def crd_manifest(rt: ResourceType) -> Obj:
    """One kind as a CRD, its schema generated from the model."""
    schema = json.loads(_model_schema(rt.model))
    properties = schema.setdefault("properties", {})
    properties["metadata"] = {"type": "object"}
    for field in ("apiVersion", "kind"):
        properties[field] = {"type": "string"}
    schema.pop("required", None)
    schema["type"] = "object"
    version: Obj = {"name": rt.version, "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
    if "status" in rt.subresources:
        version["subresources"] = {"status": {}}
    columns = crd_printer_columns(rt)
    if columns:
        version["additionalPrinterColumns"] = columns
    names: Obj = {"plural": rt.plural, "singular": rt.singular_name, "kind": rt.kind, "listKind": f"{rt.kind}List"}
    if rt.short_names:
        names["shortNames"] = list(rt.short_names)
    if rt.categories:
        names["categories"] = list(rt.categories)
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
        "metadata": {"name": f"{rt.plural}.{rt.group}", "labels": {BUILTIN_LABEL: "true"}},
        "spec": {"group": rt.group, "names": names, "scope": "Namespaced" if rt.namespaced else "Cluster",
                 "versions": [version], "conversion": {"strategy": "None"}},
    }


def corral_crds(registry: Registry) -> list[Obj]:
    """CRD manifests for every kind of corral's own groups (``*.corral.dev``) in the registry,
    sorted by name (so the generated files are stable)."""
    manifests = [crd_manifest(rt) for rt in registry.all()
                 if (rt.group == "corral.dev" or rt.group.endswith(".corral.dev")) and "crd" not in rt.extra]
    return sorted(manifests, key=lambda crd: str(crd["metadata"]["name"]))
