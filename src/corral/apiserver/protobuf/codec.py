"""One schema-driven codec between Kubernetes protobuf bytes and the JSON dicts the server keeps.

:mod:`.schema` lists each message's fields (number, JSON name, type, repeated or map, and
the Go facts the wire format depends on). :func:`encode_message` and
:func:`decode_message` walk it generically; only the few messages whose JSON form is not
a plain object are special-cased, exactly as Kubernetes' own JSON marshallers are:

- ``Quantity`` is a string; ``IntOrString`` an int or a string;
- ``Time`` is RFC 3339 in whole seconds (its zero value is absent), ``MicroTime`` with
  microseconds;
- ``FieldsV1`` and ``RawExtension`` hold raw JSON (or, for a protobuf ``List``'s items, a
  nested ``k8s\\x00`` envelope);
- a field marked inline (``Volume.volumeSource``) has its fields in its parent's JSON.

Decoding follows Go's rules so that what a client-go program sends reads back as the JSON
it would have sent: a scalar at its zero value is dropped unless the Go field is a
pointer (``automountServiceAccountToken: false`` is kept) or JSON shows it even when zero;
unknown field numbers are skipped. Encoding writes what the JSON holds, fields in number
order and map keys sorted (as Go does); a JSON value the schema has no place for raises
:class:`NotRepresentableError`, so the caller answers in JSON instead of losing the field.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson

from corral.apiserver.protobuf.schema import MESSAGES

MAGIC = b"k8s\x00"
SCALARS = frozenset({"string", "bool", "int32", "int64", "bytes"})
ZERO_TIME_SECONDS = -62135596800
"""Go's zero ``time.Time`` (0001-01-01T00:00:00Z) in Unix seconds: what an unset ``Time`` encodes."""
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ProtobufError(ValueError):
    """Bytes that are not a well-formed message of the expected type."""


class NotRepresentableError(ValueError):
    """A JSON object with a value the protobuf schema has no field (or type) for."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    number: int
    name: str
    type: str
    repeated: bool = False
    map: bool = False
    pointer: bool = False
    keep_zero: bool = False
    inline: bool = False
    tag: bytes = b""
    """The field's key (number and wire type) as encoded, computed once."""

    def __post_init__(self) -> None:
        wire = 0 if self.type in ("bool", "int32", "int64") and not self.map else 2
        object.__setattr__(self, "tag", _varint_bytes(self.number << 3 | wire))



@dataclass(frozen=True, slots=True)
class MessageSpec:
    name: str
    fields: tuple[FieldSpec, ...]
    by_number: dict[int, FieldSpec]
    json_names: frozenset[str]
    """Every JSON key this message accepts, inlined fields' keys included."""
    by_name: dict[str, FieldSpec]
    inlined_by: dict[str, FieldSpec]
    """JSON key of an inlined message's field -> the inline field that holds it."""


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    _put_varint(out, value)
    return bytes(out)


def _parse_field(text: str) -> FieldSpec:
    number, name, spec = text.split()
    flags = ""
    while spec[-1] in "?!^":
        flags += spec[-1]
        spec = spec[:-1]
    repeated = spec.endswith("[]")
    is_map = spec.startswith("{")
    type_name = spec.strip("[]{}")
    return FieldSpec(int(number), name, type_name, repeated, is_map, "?" in flags, "!" in flags, "^" in flags)


def _build() -> dict[str, MessageSpec]:
    fields = {name: tuple(sorted((_parse_field(f) for f in text.split("; ") if f), key=lambda f: f.number))
              for name, text in MESSAGES.items()}

    def json_names(name: str) -> frozenset[str]:
        names: set[str] = set()
        for spec in fields[name]:
            names |= json_names(spec.type) if spec.inline else {spec.name}
        return frozenset(names)

    def inlined_by(name: str) -> dict[str, FieldSpec]:
        return {key: spec for spec in fields[name] if spec.inline for key in json_names(spec.type)}

    return {name: MessageSpec(name, specs, {f.number: f for f in specs}, json_names(name),
                              {f.name: f for f in specs if not f.inline}, inlined_by(name))
            for name, specs in fields.items()}




# --- wire primitives -------------------------------------------------------------------------

def _put_varint(out: bytearray, value: int) -> None:
    if 0 <= value < 0x80:
        out.append(value)
        return
    if value < 0:
        value += 1 << 64
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_bytes(out: bytearray, number: int, data: bytes) -> None:
    _put_varint(out, number << 3 | 2)
    _put_varint(out, len(data))
    out += data


def _put_field(out: bytearray, spec: FieldSpec, data: bytes) -> None:
    out += spec.tag
    _put_varint(out, len(data))
    out += data


SPECS = _build()
TYPE_META_KEYS = frozenset({"apiVersion", "kind"})


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
        if shift > 63:
            raise ProtobufError("varint longer than 64 bits")


def fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """``(number, wire type, value)`` of each field in ``data``, in order."""
    out: list[tuple[int, int, int | bytes]] = []
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, 0, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise ProtobufError(f"field {number} runs past the end of its message")
            out.append((number, 2, data[pos:pos + length]))
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise ProtobufError(f"field {number} runs past the end of its message")
            out.append((number, wire, data[pos:pos + size]))
            pos += size
        else:
            raise ProtobufError(f"unsupported wire type {wire} for field {number}")
    return out


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if bits == 32:
        value &= 0xFFFFFFFF
        return value - (1 << 32) if value & 0x80000000 else value
    return value - (1 << 64) if value & (1 << 63) else value


# --- special messages -----------------------------------------------------------------------

def format_time(seconds: int, nanos: int, micro: bool) -> str:
    moment = EPOCH + dt.timedelta(seconds=seconds)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos // 1000:06d}Z" if micro else f"{text}Z"


def parse_time(text: Any, where: str) -> tuple[int, int]:
    if not isinstance(text, str):
        raise NotRepresentableError(f"{where}: expected an RFC 3339 time string")
    try:
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise NotRepresentableError(f"{where}: {text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - EPOCH
    seconds = delta.days * 86400 + delta.seconds
    return seconds, delta.microseconds * 1000


def _encode_special(name: str, value: Any, where: str) -> bytes | None:
    """The message bytes of a special message, or None when ``name`` is not special."""
    out = bytearray()
    if name == "Quantity":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise NotRepresentableError(f"{where}: a quantity must be a string or a number")
        _put_bytes(out, 1, str(value).encode())
    elif name == "IntOrString":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise NotRepresentableError(f"{where}: expected an integer or a string")
        if isinstance(value, int):
            out += b"\x08\x00\x10"
            _put_varint(out, value)
        else:
            out += b"\x08\x01"
            _put_bytes(out, 3, value.encode())
    elif name in ("meta.Time", "meta.MicroTime"):
        seconds, nanos = parse_time(value, where)
        out.append(0x08)
        _put_varint(out, seconds)
        if nanos and name == "meta.MicroTime":
            out.append(0x10)
            _put_varint(out, nanos)
    elif name in ("meta.FieldsV1", "runtime.RawExtension"):
        if name == "runtime.RawExtension" and isinstance(value, dict) and supported_kind(value):
            _put_bytes(out, 1, encode_object(value))
        else:
            _put_bytes(out, 1, orjson.dumps(value))
    else:
        return None
    return bytes(out)


def _decode_special(name: str, data: bytes) -> tuple[bool, Any]:
    """``(True, json value)`` for a special message (``None`` when absent), else ``(False, None)``."""
    if name == "Quantity":
        return True, next((v.decode() for n, _, v in fields(data) if n == 1 and isinstance(v, bytes)), "")
    if name == "IntOrString":
        kind, number, text = 0, 0, ""
        for n, _, v in fields(data):
            if n == 1 and isinstance(v, int):
                kind = v
            elif n == 2 and isinstance(v, int):
                number = _signed(v, 32)
            elif n == 3 and isinstance(v, bytes):
                text = v.decode()
        return True, text if kind == 1 else number
    if name in ("meta.Time", "meta.MicroTime"):
        if not data:
            return True, None  # Go writes an unset time as an empty message
        seconds = nanos = 0
        for n, _, v in fields(data):
            if n == 1 and isinstance(v, int):
                seconds = _signed(v, 64)
            elif n == 2 and isinstance(v, int):
                nanos = _signed(v, 32)
        if seconds == ZERO_TIME_SECONDS and not nanos:
            return True, None
        try:
            return True, format_time(seconds, nanos, name == "meta.MicroTime")
        except (OverflowError, ValueError):
            raise ProtobufError(f"{name} of {seconds} seconds is out of range") from None
    if name in ("meta.FieldsV1", "runtime.RawExtension"):
        raw = next((v for n, _, v in fields(data) if n == 1 and isinstance(v, bytes)), b"")
        if not raw:
            return True, None
        if raw.startswith(MAGIC):
            return True, decode_object(raw)
        try:
            return True, orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProtobufError(f"{name} does not hold JSON or a protobuf object") from None
    return False, None


# --- generic messages -----------------------------------------------------------------------

def _encode_scalar(out: bytearray, spec: FieldSpec, value: Any, where: str) -> None:
    kind = spec.type
    if kind == "string":
        if not isinstance(value, str):
            raise NotRepresentableError(f"{where}: expected a string")
        _put_field(out, spec, value.encode())
    elif kind == "bool":
        if not isinstance(value, bool):
            raise NotRepresentableError(f"{where}: expected a boolean")
        out += spec.tag
        out.append(1 if value else 0)
    elif kind in ("int32", "int64"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise NotRepresentableError(f"{where}: expected an integer")
        bits = 32 if kind == "int32" else 64
        if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            raise NotRepresentableError(f"{where}: {value} does not fit in {kind}")
        out += spec.tag
        _put_varint(out, value)
    else:  # bytes: base64 in JSON
        if not isinstance(value, str):
            raise NotRepresentableError(f"{where}: expected base64 data")
        try:
            _put_field(out, spec, base64.b64decode(value, validate=True))
        except binascii.Error:
            raise NotRepresentableError(f"{where}: not valid base64") from None


def _encode_value(out: bytearray, spec: FieldSpec, value: Any, where: str) -> None:
    if spec.type in SCALARS:
        _encode_scalar(out, spec, value, where)
        return
    special = _encode_special(spec.type, value, where)
    if special is not None:
        _put_field(out, spec, special)
        return
    if not isinstance(value, dict):
        raise NotRepresentableError(f"{where}: expected an object")
    _put_field(out, spec, encode_message(spec.type, value, where))


def _encode_field(out: bytearray, spec: FieldSpec, value: Any, where: str) -> None:
    if value is None:
        return
    if spec.map:
        if not isinstance(value, dict):
            raise NotRepresentableError(f"{where}: expected a map")
        entry_value = FieldSpec(2, "value", spec.type)
        for key in sorted(value):
            entry = bytearray()
            _put_bytes(entry, 1, str(key).encode())
            if value[key] is not None:
                _encode_value(entry, entry_value, value[key], f"{where}[{key}]")
            _put_field(out, spec, bytes(entry))
    elif spec.repeated:
        if not isinstance(value, list):
            raise NotRepresentableError(f"{where}: expected a list")
        for index, item in enumerate(value):
            _encode_value(out, spec, item, f"{where}[{index}]")
    else:
        _encode_value(out, spec, value, where)


def encode_message(name: str, obj: dict[str, Any], where: str = "") -> bytes:
    """The protobuf bytes of message ``name`` holding the JSON object ``obj``."""
    message = SPECS[name]
    present: list[tuple[int, FieldSpec, Any]] = []
    inlined: dict[int, tuple[FieldSpec, dict[str, Any]]] = {}
    for key, value in obj.items():
        spec = message.by_name.get(key)
        if spec is not None:
            present.append((spec.number, spec, value))
        elif key in message.inlined_by:
            holder = message.inlined_by[key]
            inlined.setdefault(holder.number, (holder, {}))[1][key] = value
        elif key not in TYPE_META_KEYS:
            unknown = sorted(obj.keys() - message.json_names - TYPE_META_KEYS)
            raise NotRepresentableError(f"{where or name}: no protobuf field for {', '.join(unknown)}")
    present.extend((number, holder, part) for number, (holder, part) in inlined.items())
    present.sort(key=lambda entry: entry[0])  # Go writes fields in number order
    out = bytearray()
    for _, spec, value in present:
        if spec.inline:
            _put_field(out, spec, encode_message(spec.type, value, where))
        else:
            _encode_field(out, spec, value, f"{where}.{spec.name}" if where else spec.name)
    return bytes(out)


def _decode_scalar(spec: FieldSpec, wire: int, value: int | bytes) -> Any:
    kind = spec.type
    if kind in ("string", "bytes"):
        if not isinstance(value, bytes):
            raise ProtobufError(f"field {spec.name} should be length-delimited")
        return value.decode() if kind == "string" else base64.b64encode(value).decode()
    if not isinstance(value, int):
        raise ProtobufError(f"field {spec.name} should be a varint")
    if kind == "bool":
        return bool(value)
    return _signed(value, 32 if kind == "int32" else 64)


def _decode_value(spec: FieldSpec, wire: int, value: int | bytes) -> Any:
    if spec.type in SCALARS:
        return _decode_scalar(spec, wire, value)
    if not isinstance(value, bytes):
        raise ProtobufError(f"field {spec.name} should be a message")
    special, result = _decode_special(spec.type, value)
    return result if special else decode_message(spec.type, value)


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    """The JSON object that the bytes of message ``name`` stand for (Go's omitempty rules)."""
    message = SPECS[name]
    obj: dict[str, Any] = {}
    for number, wire, value in fields(data):
        spec = message.by_number.get(number)
        if spec is None:
            continue  # a field newer than this schema: Go drops it too
        if spec.inline:
            if not isinstance(value, bytes):
                raise ProtobufError(f"field {spec.name} should be a message")
            obj.update(decode_message(spec.type, value))
        elif spec.map:
            if not isinstance(value, bytes):
                raise ProtobufError(f"map field {spec.name} should hold entries")
            key, item = "", None
            entry_value = FieldSpec(2, spec.name, spec.type)
            for n, w, v in fields(value):
                if n == 1 and isinstance(v, bytes):
                    key = v.decode()
                elif n == 2:
                    item = _decode_value(entry_value, w, v)
            if item is None:
                item = "" if spec.type in ("string", "bytes", "Quantity") else {}
            obj.setdefault(spec.name, {})[key] = item
        elif spec.repeated:
            items = obj.setdefault(spec.name, [])
            if wire == 2 and spec.type in ("bool", "int32", "int64") and isinstance(value, bytes):
                pos = 0
                while pos < len(value):  # a packed run of varints
                    item, pos = _varint(value, pos)
                    items.append(_decode_scalar(spec, 0, item))
            else:
                items.append(_decode_value(spec, wire, value))
        else:
            decoded = _decode_value(spec, wire, value)
            if decoded is None or (spec.type in SCALARS and not decoded and not spec.pointer and not spec.keep_zero):
                obj.pop(spec.name, None)
            else:
                obj[spec.name] = decoded
    return obj


# --- top-level objects ----------------------------------------------------------------------

SERVED: dict[str, frozenset[str]] = {
    "v1": frozenset({
        "Namespace", "NamespaceList", "Pod", "PodList", "Node", "NodeList", "Event", "EventList", "ConfigMap",
        "ConfigMapList", "Secret", "SecretList", "Service", "ServiceList", "Binding", "List",
    }),
    "coordination.k8s.io/v1": frozenset({"Lease", "LeaseList"}),
    "scheduling.k8s.io/v1": frozenset({"PriorityClass", "PriorityClassList"}),
    "authorization.k8s.io/v1": frozenset({"SelfSubjectAccessReview", "SelfSubjectRulesReview"}),
    "apps/v1": frozenset({"Deployment", "DeploymentList", "ReplicaSet", "ReplicaSetList"}),
    "batch/v1": frozenset({"Job", "JobList"}),
    "autoscaling/v1": frozenset({"Scale"}),
}
META = {"Status": "meta.Status", "DeleteOptions": "meta.DeleteOptions", "WatchEvent": "meta.WatchEvent"}
META_VERSIONS = frozenset({"v1", "meta.k8s.io/v1"})


def message_name(api_version: str, kind: str) -> str | None:
    """The schema message for ``apiVersion``/``kind``, or None when corral has no protobuf form for it."""
    if kind in META and api_version in META_VERSIONS:
        return META[kind]
    return kind if kind in SERVED.get(api_version, ()) else None


def supported_kind(obj: dict[str, Any]) -> bool:
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    return isinstance(api_version, str) and isinstance(kind, str) and message_name(api_version, kind) is not None


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = bytearray()
    _put_bytes(type_meta, 1, api_version.encode())
    _put_bytes(type_meta, 2, kind.encode())
    out = bytearray(MAGIC)
    _put_bytes(out, 1, bytes(type_meta))
    _put_bytes(out, 2, raw)
    out += b"\x1a\x00\x22\x00"  # contentEncoding and contentType, empty as Go writes them
    return bytes(out)


def encode_object(obj: dict[str, Any]) -> bytes:
    """``k8s\\x00`` + ``runtime.Unknown`` envelope + the object's message (raises NotRepresentableError)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    name = message_name(api_version, kind) if isinstance(api_version, str) and isinstance(kind, str) else None
    if name is None:
        raise NotRepresentableError(f"corral has no protobuf form for {api_version} {kind}")
    return _envelope(str(api_version), str(kind), encode_message(name, obj))


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """``(apiVersion, kind, message bytes)`` of an enveloped body."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic k8s\\x00")
    api_version = kind = encoding = ""
    raw = b""
    for number, _, value in fields(body[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            for sub, _, text in fields(value):
                if sub == 1 and isinstance(text, bytes):
                    api_version = text.decode()
                elif sub == 2 and isinstance(text, bytes):
                    kind = text.decode()
        elif number == 2 and isinstance(value, bytes):
            raw = value
        elif number == 3 and isinstance(value, bytes):
            encoding = value.decode()
    if encoding:
        raise ProtobufError(f"content encoding {encoding!r} is not supported")
    return api_version, kind, raw


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON object an enveloped protobuf body stands for, ``apiVersion`` and ``kind`` first."""
    api_version, kind, raw = unwrap(body)
    name = message_name(api_version, kind)
    if name is None:
        raise NotRepresentableError(f"corral cannot read protobuf bodies of {api_version or '?'} {kind or '?'}")
    return {"apiVersion": api_version, "kind": kind, **decode_message(name, raw)}


def watch_frame(event_type: str, obj: dict[str, Any]) -> bytes:
    """One frame of a protobuf watch stream: 4-byte big-endian length, then a bare ``WatchEvent``.

    As kube-apiserver does, the frame itself has no magic or envelope; the event's object
    (a ``RawExtension``) holds the fully enveloped object.
    """
    event = bytearray()
    _put_bytes(event, 1, event_type.encode())
    raw = bytearray()
    _put_bytes(raw, 1, encode_object(obj))
    _put_bytes(event, 2, bytes(raw))
    return len(event).to_bytes(4, "big") + bytes(event)
