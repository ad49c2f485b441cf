"""Which fields Kubernetes knows on the core kinds, for ``fieldValidation`` (unknown and dropped fields).

corral's core models describe only the fields corral reads; a pod may carry every other
Kubernetes field (``dnsPolicy``, ``topologySpreadConstraints`` ...), which the server keeps.
A field *Kubernetes itself* does not know (``spec.foo``) is what kube-apiserver's decoder
drops — with a ``Warning`` by default, silently with ``fieldValidation=Ignore`` — or
refuses with ``Strict``. To tell the two apart this module holds Kubernetes' own schema of
the core kinds (field names and the type of each object-valued field), generated from the
official Python client's models into ``knownfields.json``:

    PYTHONPATH=src python -m corral.apiserver.knownfields > src/corral/apiserver/knownfields.json

(``tests/unit/apiserver/test_knownfields.py`` checks the file is current.) Fields corral's
models declare are known as well, so nothing corral writes is ever dropped.

The walk is cheap on the hot create path: one pass over the fields an object has, with a
dict lookup each, descending only into fields whose values are objects.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from importlib import resources
from typing import Any

from pydantic import BaseModel

from corral.api.registry import ResourceType

ROOTS = {
    ("", "Namespace"): "V1Namespace", ("", "Node"): "V1Node", ("", "Pod"): "V1Pod",
    ("", "Event"): "CoreV1Event", ("", "ConfigMap"): "V1ConfigMap", ("", "Secret"): "V1Secret",
    ("", "Service"): "V1Service", ("", "Binding"): "V1Binding",
    ("coordination.k8s.io", "Lease"): "V1Lease", ("scheduling.k8s.io", "PriorityClass"): "V1PriorityClass",
}
"""The client model of each core kind corral serves."""

Node = tuple[frozenset[str], dict[str, tuple[str, bool]]]
"""A type: its field names, and per object-valued field (``name``, ``is a map of objects``)."""


@functools.cache
def _schema() -> dict[str, dict[str, str]]:
    text = resources.files("corral.apiserver").joinpath("knownfields.json").read_text()
    loaded: dict[str, dict[str, str]] = json.loads(text)
    return loaded


@functools.cache
def _node(type_name: str) -> Node:
    fields = _schema().get(type_name, {})
    children: dict[str, tuple[str, bool]] = {}
    for field, child in fields.items():
        if child.startswith("{"):
            children[field] = (child[1:-1], True)
        elif child:
            children[field] = (child, False)
    return frozenset(fields), children


def _model_fields(model: type[BaseModel], known: dict[str, set[str]], type_name: str, seen: set[int]) -> None:
    """Add the fields corral's models declare (and their nested models) to ``known``."""
    if id(model) in seen:
        return
    seen.add(id(model))
    names = known.setdefault(type_name, set())
    children = _schema().get(type_name, {})
    for name, info in model.model_fields.items():
        alias = info.alias or name
        names.add(alias)
        for nested in _nested_models(info.annotation):
            child = children.get(alias, "").strip("{}")
            if child:
                _model_fields(nested, known, child, seen)


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _nested_models(arg)]


@functools.cache
def _corral_fields(model: type[BaseModel], root: str) -> dict[str, frozenset[str]]:
    known: dict[str, set[str]] = {}
    _model_fields(model, known, root, set())
    return {name: frozenset(fields) for name, fields in known.items()}


def unknown_fields(rt: ResourceType, obj: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Locations (as pydantic ``loc`` tuples) of the fields in ``obj`` that Kubernetes does not know.

    Only core kinds: corral's own kinds are strict models, whose unknown fields pydantic reports.
    """
    root = ROOTS.get((rt.group, rt.kind))
    if root is None or rt.strict:
        return []
    extra = _corral_fields(rt.model, root)
    found: list[tuple[Any, ...]] = []
    _walk(obj, root, (), found, extra)
    return found


def _walk(value: dict[str, Any], type_name: str, loc: tuple[Any, ...], found: list[tuple[Any, ...]],
          extra: dict[str, frozenset[str]]) -> None:
    known, children = _node(type_name)
    for field, item in value.items():  # one pass over the fields present
        typed = children.get(field)
        if typed is None:
            if field not in known and field not in extra.get(type_name, ()):
                found.append((*loc, field))
            continue
        child, is_map = typed
        kind = type(item)
        if is_map:
            if kind is dict:
                for key, member in item.items():
                    if type(member) is dict:
                        _walk(member, child, (*loc, field, key), found, extra)
        elif kind is dict:
            _walk(item, child, (*loc, field), found, extra)
        elif kind is list:
            for index, member in enumerate(item):
                if type(member) is dict:
                    _walk(member, child, (*loc, field, index), found, extra)


# ---- generation (needs the `kubernetes` package, a dev dependency) -----------------------

_CONTAINER = re.compile(r"^(?:List|Dict)\[(?:str, )?(.+)\]$")


def generate() -> dict[str, dict[str, str]]:
    """Kubernetes' schema of the core kinds from the official client's models."""
    from kubernetes.client import models

    schema: dict[str, dict[str, str]] = {}

    def visit(name: str) -> None:
        if name in schema:
            return
        model = getattr(models, name, None)
        if model is None:
            return
        fields: dict[str, str] = {}
        schema[name] = fields
        for attribute, type_text in model.openapi_types.items():
            json_name = model.attribute_map[attribute]
            is_map = type_text.startswith("Dict[")
            match = _CONTAINER.match(type_text)
            inner = match.group(1) if match else type_text
            if getattr(models, inner, None) is not None:
                fields[json_name] = "{" + inner + "}" if is_map else inner
                visit(inner)
            else:
                fields[json_name] = ""

    for root in sorted(set(ROOTS.values())):
        visit(root)
    return schema


if __name__ == "__main__":
    json.dump(generate(), sys.stdout, indent=0, sort_keys=True)
    sys.stdout.write("\n")
