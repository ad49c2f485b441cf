"""OpenAPI v2 (``/openapi/v2``), derived from the same per-group-version documents as v3.

kubectl and helm read this document for client-side validation: kubectl always fetches it
when validation is on, and validates against it whatever the server cannot check itself —
notably each item of a ``kind: List`` (what ``kubectl get -o yaml`` prints). They ask for it
only as protobuf (``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``, gnostic's
``openapi_v2.Document``); other clients get JSON. Any other ``Accept`` gets 406.

The v3 schemas are rewritten into Swagger 2.0: refs point at ``#/definitions/``, a
described ``allOf: [$ref]`` becomes ``$ref`` (as Kubernetes publishes it), and what v2
cannot say (``anyOf``) is left open. kubectl's validator rejects a field its schema does not
name, while corral keeps fields its lenient models do not describe; so each core kind's
definition also lists, as open schemas, the fields Kubernetes' protobuf layout has and the
model lacks — a valid Kubernetes object passes, a misspelt field is still named.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from corral.api.registry import Registry
from corral.apiserver import openapi
from corral.apiserver.protobuf.codec import SPECS

PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
V3_REF = "#/components/schemas/"
V2_ONLY_KEYS = ("anyOf", "oneOf", "not", "nullable")


def _to_v2(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_to_v2(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _to_v2(v) for k, v in schema.items() if k not in V2_ONLY_KEYS}
    ref = out.get("$ref")
    if isinstance(ref, str):
        out["$ref"] = "#/definitions/" + ref.removeprefix(V3_REF)
    all_of = out.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict) and "$ref" in all_of[0]:
        del out["allOf"]
        out = {"$ref": all_of[0]["$ref"], **{k: v for k, v in out.items() if k in ("description",)}}
    return out


def _protobuf_fields(definition_name: str) -> frozenset[str]:
    """JSON names Kubernetes' own type of this name has (empty for corral's own models)."""
    if not definition_name.startswith(("io.k8s.api.", "io.k8s.apimachinery.")):
        return frozenset()
    short = definition_name.rsplit(".", 1)[-1]
    spec = SPECS.get(short) or SPECS.get(f"meta.{short}")
    return spec.json_names if spec is not None else frozenset()


def _complete(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties")
    missing = _protobuf_fields(name) - set(properties or ())
    if isinstance(properties, dict) and missing:
        schema = {**schema, "properties": {**properties, **{field: {} for field in sorted(missing)}}}
    return schema


def build_document(registry: Registry) -> dict[str, Any]:
    """The Swagger 2.0 document of every group-version corral serves."""
    definitions: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            v3 = openapi.group_version_document(registry, group, version)
            for name, schema in v3["components"]["schemas"].items():
                definitions[name] = _complete(name, _to_v2(schema))
            for path, item in v3["paths"].items():
                paths[path] = {method: _operation(op) if isinstance(op, dict) and method != "parameters" else
                               [_parameter(p) for p in op] for method, op in item.items()}
    return {"swagger": "2.0", "info": {"title": "corral", "version": "v1"}, "paths": paths, "definitions": definitions}


def _parameter(param: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in param.items() if k != "schema"}
    out["type"] = param.get("schema", {}).get("type", "string")
    out["uniqueItems"] = True
    return out


def _operation(op: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in op.items() if k not in ("requestBody", "responses", "parameters")}
    params = [_parameter(p) for p in op.get("parameters", [])]
    body = op.get("requestBody")
    if body:
        content = body["content"]
        out["consumes"] = list(content)
        schema = _to_v2(next(iter(content.values()))["schema"])
        params.append({"name": "body", "in": "body", "required": True, "schema": schema})
    out["parameters"] = params
    out["produces"] = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
    out["responses"] = {code: _response(r) for code, r in op.get("responses", {}).items()}
    return out


def _response(response: dict[str, Any]) -> dict[str, Any]:
    media: dict[str, Any] = next(iter(response.get("content", {}).values()), {})
    return {"description": response.get("description", ""), "schema": _to_v2(media.get("schema", {}))}


# --- gnostic protobuf -------------------------------------------------------------------------
# Field numbers of github.com/google/gnostic openapiv2/OpenAPIv2.proto (proto3: zero values are
# not written). Only what kubectl reads is encoded: swagger, info and the definitions.

def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _text(number: int, value: str) -> bytes:
    return _field(number, value.encode()) if value else b""


def _bool(number: int, value: bool) -> bytes:
    return _varint(number << 3) + b"\x01" if value else b""


def _double(number: int, value: float) -> bytes:
    return _varint(number << 3 | 1) + struct.pack("<d", float(value))


def _any(value: Any) -> bytes:
    return _text(2, json.dumps(value))  # Any.yaml: JSON is YAML


def _named(number: int, name: str, value: bytes) -> bytes:
    return _field(number, _text(1, name) + _field(2, value))


def encode_schema(schema: dict[str, Any]) -> bytes:
    """gnostic ``openapi_v2.Schema`` bytes of a Swagger 2.0 schema."""
    out = bytearray()
    out += _text(1, schema.get("$ref", ""))
    out += _text(2, schema.get("format", ""))
    out += _text(4, schema.get("description", ""))
    if "default" in schema:
        out += _field(5, _any(schema["default"]))
    for number, key in ((7, "maximum"), (9, "minimum")):
        if isinstance(schema.get(key), (int, float)):
            out += _double(number, schema[key])
    out += _bool(8, schema.get("exclusiveMaximum") is True)
    out += _bool(10, schema.get("exclusiveMinimum") is True)
    for number, key in ((11, "maxLength"), (12, "minLength"), (14, "maxItems"), (15, "minItems"),
                        (17, "maxProperties"), (18, "minProperties")):
        if isinstance(schema.get(key), int):
            out += _varint(number << 3) + _varint(schema[key])
    out += _text(13, schema.get("pattern", ""))
    for required in schema.get("required", []):
        out += _text(19, required)
    for value in schema.get("enum", []):
        out += _field(20, _any(value))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        out += _field(21, _field(1, encode_schema(extra)))
    elif isinstance(extra, bool):
        out += _field(21, _varint(2 << 3) + (b"\x01" if extra else b"\x00"))
    kind = schema.get("type")
    if kind:
        out += _field(22, b"".join(_text(1, k) for k in ([kind] if isinstance(kind, str) else kind)))
    items = schema.get("items")
    if isinstance(items, dict):
        out += _field(23, _field(1, encode_schema(items)))
    for part in schema.get("allOf", []):
        out += _field(24, encode_schema(part))
    properties = schema.get("properties")
    if isinstance(properties, dict):
        out += _field(25, b"".join(_named(1, name, encode_schema(value)) for name, value in properties.items()))
    for name, value in schema.items():
        if name.startswith("x-"):
            out += _named(31, name, _any(value))
    return bytes(out)


def negotiate(accept: str) -> str | None:
    """The media type to answer ``/openapi/v2`` with, or None (406) when the client takes neither."""
    media = [part.split(";")[0].strip() for part in accept.split(",")] if accept.strip() else ["*/*"]
    for item in media:
        if item == PROTOBUF_V2:
            return PROTOBUF_V2
        if item in ("application/json", "*/*", "application/*"):
            return "application/json"
    return None


def encode_document(document: dict[str, Any]) -> bytes:
    """gnostic ``openapi_v2.Document`` bytes: swagger, info and definitions (what kubectl reads)."""
    info = document.get("info", {})
    out = _text(1, document.get("swagger", "2.0"))
    out += _field(2, _text(1, info.get("title", "")) + _text(2, info.get("version", "")))
    definitions = b"".join(_named(1, name, encode_schema(schema)) for name, schema in document["definitions"].items())
    return out + _field(9, definitions)
