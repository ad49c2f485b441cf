"""Structural OpenAPI v3 schemas, as CustomResourceDefinitions declare them.

Pure functions over JSON values, in the order kube-apiserver applies them to a custom
resource on every write:

1. :func:`apply_defaults` — ``null`` in a field that is not ``nullable`` is dropped, then
   every absent property with a ``default`` gets it (recursively, into arrays and maps).
2. :func:`unknown_fields` — the paths of fields the schema does not declare (pruning);
   ``x-kubernetes-preserve-unknown-fields`` keeps a subtree, ``x-kubernetes-embedded-resource``
   keeps an embedded object's ``apiVersion``/``kind``/``metadata``. :func:`prune` drops them.
3. :func:`value_problems` — ``type``, ``required``, ``enum``, ``minimum``/``maximum`` (and
   exclusive), ``multipleOf``, ``pattern``, ``minLength``/``maxLength``, ``minItems``/``maxItems``,
   ``minProperties``/``maxProperties``, ``nullable``, ``x-kubernetes-int-or-string``, each with
   the field path kube prints (``spec.replicas``, ``spec.ports[0].name``).

:func:`schema_problems` checks that a schema is *structural* (every node has a ``type``
unless it preserves unknown fields or is int-or-string), as the CRD's own validation does.
A path is a tuple of keys and list indexes, the shape :mod:`corral.apiserver.validation`
formats and drops.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]
Loc = tuple[str | int, ...]

TYPES = ("object", "array", "string", "integer", "number", "boolean")
EMBEDDED_FIELDS = ("apiVersion", "kind", "metadata")


@dataclass(frozen=True)
class Problem:
    """One invalid value: where, and what kube says about it (``required`` problems say "Required value")."""

    loc: Loc
    message: str
    value: Any = None
    required: bool = False
    supported: tuple[Any, ...] = ()  # an enum's values, when that is the problem


def format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + part
    return text


def _preserves(schema: Schema) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def _children(schema: Schema, value: Any) -> list[tuple[str | int, Any, Schema | None]]:
    """Each child of ``value`` with its schema (``None``: not declared)."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        found: list[tuple[str | int, Any, Schema | None]] = []
        for key, child in value.items():
            if key in properties:
                found.append((key, child, properties[key]))
            elif isinstance(extra, dict):
                found.append((key, child, extra))
            elif extra is True or _preserves(schema) or (
                    schema.get("x-kubernetes-embedded-resource") and key in EMBEDDED_FIELDS):
                found.append((key, child, {"x-kubernetes-preserve-unknown-fields": True}))
            else:
                found.append((key, child, None))
        return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [(index, item, schema["items"]) for index, item in enumerate(value)]
    return []


# ---- defaulting -----------------------------------------------------------------------

def apply_defaults(schema: Schema, value: Any) -> None:
    """Drop non-nullable ``null`` properties and fill in ``default`` values, in place."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key in [k for k, v in value.items() if v is None]:
            child_schema = properties.get(key) or (schema.get("additionalProperties") if isinstance(
                schema.get("additionalProperties"), dict) else None)
            if child_schema is not None and not child_schema.get("nullable"):
                del value[key]
        for key, child_schema in properties.items():
            if key not in value and isinstance(child_schema, dict) and "default" in child_schema:
                value[key] = copy.deepcopy(child_schema["default"])
    for _key, child, child_schema in _children(schema, value):
        if child_schema is not None:
            apply_defaults(child_schema, child)


# ---- pruning --------------------------------------------------------------------------

def unknown_fields(schema: Schema, value: Any, loc: Loc = ()) -> list[Loc]:
    """The paths of the fields the schema does not allow, outermost first."""
    found: list[Loc] = []
    for key, child, child_schema in _children(schema, value):
        if child_schema is None:
            found.append((*loc, key))
        else:
            found.extend(unknown_fields(child_schema, child, (*loc, key)))
    return found


def prune(schema: Schema, value: Any) -> list[Loc]:
    """Drop unknown fields from ``value`` in place; returns their paths."""
    removed = unknown_fields(schema, value)
    for path in removed:
        node = value
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    return removed


# ---- validation -----------------------------------------------------------------------

def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value (``null``, ``boolean``, ``integer`` …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _has_type(value: Any, wanted: str) -> bool:
    actual = json_type(value)
    return actual == wanted or (wanted == "number" and actual == "integer") or (
        wanted == "integer" and isinstance(value, float) and value.is_integer())


def _quote(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def value_problems(schema: Schema, value: Any, loc: Loc = ()) -> list[Problem]:
    """Everything wrong with ``value`` (unknown fields aside: see :func:`unknown_fields`)."""
    where = format_loc(loc)
    if value is None:
        if schema.get("nullable") or _preserves(schema) or not schema.get("type"):
            return []
        return [Problem(loc, f"{where} in body must be of type {schema['type']}: \"null\"", value)]
    if schema.get("x-kubernetes-int-or-string"):
        if json_type(value) not in ("integer", "string"):
            return [Problem(loc, f"{where} in body must be of type integer or string: {_quote(json_type(value))}", value)]
    elif schema.get("type") and not _has_type(value, schema["type"]):
        return [Problem(loc, f"{where} in body must be of type {schema['type']}: {_quote(json_type(value))}", value)]
    problems: list[Problem] = []
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        supported = ", ".join(_quote(e) for e in enum)
        problems.append(Problem(loc, f"Unsupported value: {_quote(value)}: supported values: {supported}", value,
                                supported=tuple(enum)))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        problems.extend(_number_problems(schema, value, loc, where))
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(Problem(loc, f"{where} in body should be at most {schema['maxLength']} chars long", value))
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(Problem(loc, f"{where} in body should be at least {schema['minLength']} chars long", value))
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and re.search(pattern, value) is None:
            problems.append(Problem(loc, f"{where} in body should match '{pattern}'", value))
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(Problem(loc, f"{where} in body must have at most {schema['maxItems']} items", value))
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(Problem(loc, f"{where} in body should have at least {schema['minItems']} items", value))
    if isinstance(value, dict):
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            problems.append(Problem(loc, f"{where} in body must have at most {schema['maxProperties']} properties", value))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            problems.append(Problem(loc, f"{where} in body should have at least {schema['minProperties']} properties", value))
        problems.extend(Problem((*loc, str(key)), "Required value", required=True)
                        for key in schema.get("required") or [] if key not in value)
    for key, child, child_schema in _children(schema, value):
        if child_schema is not None:
            problems.extend(value_problems(child_schema, child, (*loc, key)))
    return problems


def _number_problems(schema: Schema, value: float, loc: Loc, where: str) -> list[Problem]:
    problems = []
    if "minimum" in schema:
        low, exclusive = schema["minimum"], bool(schema.get("exclusiveMinimum"))
        if value < low or (exclusive and value == low):
            problems.append(Problem(loc, f"{where} in body should be greater than {'' if exclusive else 'or equal to '}{low}", value))
    if "maximum" in schema:
        high, exclusive = schema["maximum"], bool(schema.get("exclusiveMaximum"))
        if value > high or (exclusive and value == high):
            problems.append(Problem(loc, f"{where} in body should be less than {'' if exclusive else 'or equal to '}{high}", value))
    step = schema.get("multipleOf")
    if isinstance(step, (int, float)) and step and (value / step) % 1:
        problems.append(Problem(loc, f"{where} in body should be a multiple of {step}", value))
    return problems


# ---- the schema itself ----------------------------------------------------------------

def schema_problems(schema: Any, loc: Loc) -> list[tuple[Loc, str]]:
    """Why ``schema`` is not a structural schema: ``(path, message)`` pairs, kube's wording."""
    if not isinstance(schema, dict):
        return [(loc, "Invalid value: must be an object")]
    problems: list[tuple[Loc, str]] = []
    kind = schema.get("type")
    if kind is None:
        if not _preserves(schema) and not schema.get("x-kubernetes-int-or-string"):
            problems.append(((*loc, "type"), "Required value: must not be empty for specified object fields"))
    elif kind not in TYPES:
        supported = ", ".join(f'"{t}"' for t in TYPES)
        problems.append(((*loc, "type"), f'Unsupported value: "{kind}": supported values: {supported}'))
    properties = schema.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            problems.append(((*loc, "properties"), "Invalid value: must be an object"))
        else:
            for key, child in properties.items():
                problems.extend(schema_problems(child, (*loc, "properties", key)))
    if "items" in schema:
        problems.extend(schema_problems(schema["items"], (*loc, "items")))
    elif kind == "array":
        problems.append(((*loc, "items"), "Required value: must be specified"))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        problems.extend(schema_problems(extra, (*loc, "additionalProperties")))
        if properties:
            problems.append(((*loc, "additionalProperties"), "Forbidden: additionalProperties and properties are "
                             "mutual exclusive"))
    if "default" in schema and kind and schema["default"] is not None and not _has_type(schema["default"], kind):
        problems.append(((*loc, "default"), f"Invalid value: {_quote(schema['default'])}: must be of type {kind}"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(((*loc, "pattern"), f"Invalid value: {_quote(pattern)}: {exc}"))
    return problems
