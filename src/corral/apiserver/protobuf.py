"""Just enough Kubernetes protobuf to read what typed ``kubectl create`` commands send.

``kubectl create namespace|configmap|secret`` post protobuf bodies (``application/
vnd.kubernetes.protobuf``): the ``k8s\\x00`` magic, then a ``runtime.Unknown`` envelope
holding the type and the object's own message. corral answers in JSON (kubectl accepts
it) and decodes these few kinds into the JSON they stand for, using the field numbers of
Kubernetes' ``generated.proto``. Anything else gets a 415 that says to use
``kubectl apply -f``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A body this decoder does not understand."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            yield number, data[pos:pos + length]
            pos += length
        elif wire == 1:
            yield number, data[pos:pos + 8]
            pos += 8
        elif wire == 5:
            yield number, data[pos:pos + 4]
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string field")
    return value.decode()


def _map_entry(value: int | bytes) -> tuple[str, bytes]:
    key, item = "", b""
    for number, field in _fields(value if isinstance(value, bytes) else b""):
        if number == 1:
            key = _text(field)
        elif number == 2 and isinstance(field, bytes):
            item = field
    return key, item


def _object_meta(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for number, value in _fields(data):
        if number == 1:
            meta["name"] = _text(value)
        elif number == 2:
            meta["generateName"] = _text(value)
        elif number == 3:
            meta["namespace"] = _text(value)
        elif number in (11, 12):
            key, item = _map_entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


RESOURCE_ATTRIBUTES = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
NON_RESOURCE_ATTRIBUTES = ("path", "verb")
REVIEW_SPECS: dict[str, dict[int, tuple[str, tuple[str, ...]] | str]] = {
    # authorization.k8s.io/v1 generated.proto: SelfSubjectAccessReviewSpec, SelfSubjectRulesReviewSpec
    "SelfSubjectAccessReview": {1: ("resourceAttributes", RESOURCE_ATTRIBUTES),
                                2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES)},
    "SelfSubjectRulesReview": {1: "namespace"},
}


def _review(obj: dict[str, Any], raw: bytes, spec_fields: dict[int, tuple[str, tuple[str, ...]] | str]) -> dict[str, Any]:
    """A SelfSubjectAccessReview or SelfSubjectRulesReview (what ``kubectl auth can-i`` sends): metadata and spec."""
    spec: dict[str, Any] = {}
    for number, value in _fields(raw):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 2 and isinstance(value, bytes):
            for sub, item in _fields(value):
                described = spec_fields.get(sub)
                if isinstance(described, str):
                    spec[described] = _text(item)
                elif described is not None and isinstance(item, bytes):
                    name, attributes = described
                    spec[name] = {attributes[n - 1]: _text(v) for n, v in _fields(item) if 0 < n <= len(attributes)}
    obj["spec"] = spec
    return obj


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object a protobuf body encodes (Namespace, ConfigMap, Secret)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic")
    api_version = kind = ""
    raw = b""
    for number, value in _fields(body[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            for sub, text in _fields(value):
                if sub == 1:
                    api_version = _text(text)
                elif sub == 2:
                    kind = _text(text)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {}}
    if api_version == "authorization.k8s.io/v1" and kind in REVIEW_SPECS:
        return _review(obj, raw, REVIEW_SPECS[kind])
    if (api_version, kind) not in (("v1", "Namespace"), ("v1", "ConfigMap"), ("v1", "Secret")):
        raise ProtobufError(f"corral cannot read protobuf bodies of {api_version} {kind}")
    for number, value in _fields(raw):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif kind == "ConfigMap" and number in (2, 3):
            key, item = _map_entry(value)
            if number == 2:
                obj.setdefault("data", {})[key] = item.decode()
            else:
                obj.setdefault("binaryData", {})[key] = base64.b64encode(item).decode()
        elif kind == "ConfigMap" and number == 4:
            obj["immutable"] = bool(value)
        elif kind == "Secret" and number == 2:
            key, item = _map_entry(value)
            obj.setdefault("data", {})[key] = base64.b64encode(item).decode()
        elif kind == "Secret" and number == 3:
            obj["type"] = _text(value)
        elif kind == "Secret" and number == 4:
            key, item = _map_entry(value)
            obj.setdefault("stringData", {})[key] = item.decode()
        elif kind == "Secret" and number == 5:
            obj["immutable"] = bool(value)
    return obj
