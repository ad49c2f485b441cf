"""Checks on what clients send: decoding, names, kinds, and field validation.

Every failure becomes an :class:`ApiError` whose message names the object, the field
and the problem, as Kubernetes writes them (``Pod "x" is invalid: spec.containers[0].name:
Required value``); every problem in an object is collected into one 422, with a cause
per field in ``details.causes``.

Three stages, as in kube-apiserver:

1. **Decoding** (:func:`decode_body`): JSON (orjson, stdlib fallback) or YAML into plain
   JSON values, refusing what cannot be stored faithfully — nesting deeper than
   :data:`MAX_DEPTH`, non-finite numbers (``1e999``, ``.inf``, ``.nan``: the encoder would
   write them as ``null``), lone UTF-16 surrogates, non-string keys, and YAML aliases that
   expand past :data:`MAX_YAML_ALIAS_NODES` nodes (a "billion laughs"). 400 BadRequest.
2. **Unknown fields** (``fieldValidation``): ``Strict`` → 400 ``strict decoding error:
   unknown field "spec.foo"``; ``Warn`` → dropped, with a ``Warning: 299`` header;
   ``Ignore`` → dropped silently. Core kinds' fields are known from Kubernetes' own
   schema (:mod:`corral.apiserver.knownfields`), corral's kinds' from their models.
3. **Validation** (:func:`validate`): the model's types (pydantic errors mapped to
   Kubernetes' wording: ``Invalid value: "string": must be an object``, ``Required
   value``, ``Unsupported value``) plus the value rules of :mod:`corral.api.rules`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import re
from collections.abc import Callable
from typing import Any, Literal, cast

import orjson
import yaml
from pydantic import ValidationError

from corral.api import rules
from corral.api.registry import Obj, ResourceType
from corral.api.structural import json_type
from corral.apiserver import knownfields
from corral.apiserver.errors import ApiError, bad_request, invalid

FieldValidation = Literal["Strict", "Warn", "Ignore"]

_NAME_RULES: dict[str, Callable[[str], str | None]] = {
    "Namespace": rules.dns1123_label,  # DNS-1123 labels; most kinds take subdomains
    "Service": rules.dns1035_label,
}


def name_rule(kind: str) -> Callable[[str], str | None]:
    return _NAME_RULES.get(kind, rules.dns1123_subdomain)


def name_problem(kind: str, name: str) -> str | None:
    """Why ``name`` is not a valid name for ``kind``, or ``None``."""
    why = name_rule(kind)(name)
    return rules.invalid(name, why) if why else None


def check_name(rt: ResourceType, name: str) -> None:
    problem = name_problem(rt.kind, name)
    if problem:
        raise invalid(rt.kind, name, [("metadata.name", problem)], rt.group)


def check_generate_name(rt: ResourceType, prefix: Any) -> None:
    """``generateName`` is a name prefix (it may end in ``-``), checked before a name is made from it."""
    why = rules.generate_name(prefix, name_rule(rt.kind)) if isinstance(prefix, str) else "must be a string"
    if why:
        raise invalid(rt.kind, "", [("metadata.generateName", rules.invalid(prefix, why))], rt.group)


def warning_value(text: str) -> str:
    """A ``Warning`` header value (RFC 7234: code, agent, quoted text), as kube-apiserver sends them."""
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_type(rt: ResourceType, obj: Obj) -> None:
    """The body's ``apiVersion``/``kind`` (defaulted when absent) must be the URL's."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version is None:
        obj["apiVersion"] = rt.api_version
    elif api_version != rt.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version ({rt.api_version})"
        )
    if kind is None:
        obj["kind"] = rt.kind
    elif kind != rt.kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind}) of {rt.plural}")


MAX_DEPTH = 100
"""Deepest nesting of arrays and objects a body may have (Kubernetes objects need about 15)."""
MAX_YAML_ALIAS_NODES = 10_000
"""How many nodes YAML aliases may add when expanded (manifests rarely use aliases at all)."""
INT64_MAX = 2**63 - 1


def _path_text(path: list[Any]) -> str:
    return _format_loc(tuple(path)) or "<root>"


def _too_deep(value: Any, budget: int) -> bool:
    """Whether ``value`` nests more than ``budget`` levels (the fast check for orjson's output)."""
    if budget <= 0:
        return True
    children = value.values() if type(value) is dict else value
    for child in children:
        kind = type(child)
        if (kind is dict or kind is list) and _too_deep(child, budget - 1):
            return True
    return False


def _check_values(value: Any, path: list[Any], depth: int) -> None:
    """Every value must be one JSON can carry and the store can encode faithfully."""
    kind = type(value)
    if kind is dict:
        if depth >= MAX_DEPTH:
            raise bad_request(f"{_path_text(path)}: the object is nested more than {MAX_DEPTH} levels deep")
        for key, child in value.items():
            if type(key) is not str:
                raise bad_request(f"{_path_text(path)}: Invalid value: {key!r}: object keys must be strings")
            _check_string(key, path)
            path.append(key)
            _check_values(child, path, depth + 1)
            path.pop()
    elif kind is list:
        if depth >= MAX_DEPTH:
            raise bad_request(f"{_path_text(path)}: the object is nested more than {MAX_DEPTH} levels deep")
        for index, child in enumerate(value):
            path.append(index)
            _check_values(child, path, depth + 1)
            path.pop()
    elif kind is str:
        _check_string(value, path)
    elif kind is float:
        if not math.isfinite(value):
            shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
            raise bad_request(f"{_path_text(path)}: Invalid value: {shown}: must be a finite number")
    elif kind not in (int, bool) and value is not None:
        raise bad_request(f"{_path_text(path)}: Invalid value: {json_type(value)}: must be a JSON string, number, "
                          "boolean, array, object or null")


def _check_string(value: str, path: list[Any]) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise bad_request(f"{_path_text(path)}: Invalid value: {value[:40]!r}: contains a lone UTF-16 surrogate "
                          "(not valid Unicode)") from None


def check_decoded(value: Any) -> None:
    """All of :func:`_check_values` (for values that did not come from orjson)."""
    _check_values(value, [], 0)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def decode_json(data: bytes | str) -> Any:
    """JSON into plain values; 400 for anything malformed or unstorable.

    orjson refuses ``NaN``, overflowing numbers and lone surrogates itself, and only
    nesting needs checking on its output; the stdlib fallback (for integers beyond 64
    bits) gets the full check.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        if (type(value) is dict or type(value) is list) and _too_deep(value, MAX_DEPTH):
            raise bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep")
        return value
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None
    check_decoded(value)
    return value


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a nesting bound, and timestamps kept as the strings they are (as JSON has them)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise yaml.YAMLError(f"the document is nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _timestamp_as_text(loader: _BoundedLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(cast(yaml.ScalarNode, node)))


_BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _alias_expansion(root: yaml.Node) -> int:
    """How many nodes the document has once every alias is expanded (raises on a recursive alias)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise yaml.YAMLError("the document has a recursive alias")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = total
        return total

    expanded = size(root)
    return expanded - len(sizes)


def decode_yaml(data: bytes | str) -> Any:
    loader = _BoundedLoader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        extra = _alias_expansion(node)
        if extra > MAX_YAML_ALIAS_NODES:
            raise bad_request(f"the request body is not valid YAML: its aliases expand to {extra} more nodes; "
                              f"at most {MAX_YAML_ALIAS_NODES} are allowed")
        value = loader.construct_document(node)
    except RecursionError:
        raise bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise bad_request(f"the request body is not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    check_decoded(value)
    return value


class _Pairs(dict[str, Any]):
    """A JSON object that remembers the keys it was given more than once."""

    duplicates: list[str]


def _pairs(items: list[tuple[str, Any]]) -> _Pairs:
    result = _Pairs(items)
    result.duplicates = []
    if len(result) != len(items):
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                result.duplicates.append(key)
            seen.add(key)
    return result


def duplicate_fields(data: bytes) -> list[str]:
    """Paths of keys a JSON body repeats (``Strict`` refuses them; other modes keep the last, as kube does).

    Parsed again only for ``fieldValidation=Strict``, so the hot path never pays for it.
    """
    try:
        value = json.loads(data, object_pairs_hook=_pairs)
    except (ValueError, RecursionError):
        return []
    found: list[str] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, _Pairs):
            found.extend(_format_loc((*path, key)) for key in dict.fromkeys(node.duplicates))
            for key, child in node.items():
                walk(child, (*path, key))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, (*path, index))

    walk(value, ())
    return found


def check_strict_body(data: bytes, content_type: str, mode: FieldValidation) -> None:
    """``Strict``: a JSON body may not repeat a field (kube: ``strict decoding error: duplicate field``)."""
    if mode != "Strict" or "yaml" in content_type or "protobuf" in content_type:
        return
    duplicates = duplicate_fields(data)
    if duplicates:
        raise bad_request("strict decoding error: " + ", ".join(f'duplicate field "{p}"' for p in duplicates))


def decode_body(data: bytes, content_type: str) -> Any:
    """A JSON or YAML request body as plain JSON values (see the module docstring)."""
    if "yaml" in content_type:
        return decode_yaml(data)
    return decode_json(data)


# ---- field validation -----------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str):
            if "[" in part or part in _UNION_TAGS or part.startswith("literal"):
                continue  # pydantic union-member tags, not fields
            if _IDENTIFIER.fullmatch(part):
                text += ("." if text else "") + part
            else:  # a map key such as nvidia.com/gpu
                text += f"[{part}]"
    return text


_TYPE_NAMES = {
    "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
    "list_type": "an array", "string_type": "a string", "int_type": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "bool_type": "a boolean", "none_required": "null",
}


def _problem(error: Any) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "missing":
        return "Required value"
    if kind in _TYPE_NAMES:
        return f'Invalid value: "{json_type(value)}": must be {_TYPE_NAMES[kind]}'
    if kind == "finite_number":
        return f"Invalid value: {value}: must be a finite number"
    if kind == "literal_error":
        expected = re.findall(r"'((?:[^'\\]|\\.)*)'", str((error.get("ctx") or {}).get("expected", "")))
        return f"Unsupported value: {rules.show(value)}: supported values: " + ", ".join(f'"{e}"' for e in expected)
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {"greater_than_equal": "greater than or equal to", "greater_than": "greater than",
                 "less_than_equal": "less than or equal to", "less_than": "less than"}[kind]
        bound = next(iter((error.get("ctx") or {}).values()), "")
        return f"Invalid value: {rules.show(value)}: must be {words} {bound}"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    return f"Invalid value: {rules.show(value)}: {message}"


def _causes(errors: list[Any]) -> list[tuple[str, str]]:
    """One cause per field: a union's alternatives (``str | int``) become one "must be a or b"."""
    by_path: dict[str, list[str]] = {}
    for error in errors:
        by_path.setdefault(_format_loc(error["loc"]), []).append(_problem(error))
    causes = []
    for path, problems in by_path.items():
        if len(problems) > 1 and all(": must be " in p for p in problems) and problems[0].startswith("Invalid value:"):
            head = problems[0].split(": must be ", 1)[0]
            wanted = list(dict.fromkeys(p.split(": must be ", 1)[1] for p in problems))
            causes.append((path, f"{head}: must be " + " or ".join(wanted)))
        else:
            causes.extend((path, p) for p in dict.fromkeys(problems))
    return causes


def validate(rt: ResourceType, obj: Obj, mode: FieldValidation) -> list[str]:
    """Validate ``obj``: unknown fields per ``mode``, then types and value rules (all problems at once).

    Returns warnings (``Warn`` mode); removes unknown fields in ``Warn``/``Ignore`` modes;
    raises 400 (``Strict`` and an unknown field) or 422 Invalid naming every bad field.
    """
    metadata = obj.get("metadata")
    name = str(metadata.get("name") or "") if isinstance(metadata, dict) else ""
    warnings: list[str] = []
    unknown = knownfields.unknown_fields(rt, obj)
    try:
        rt.model.model_validate(obj, strict=True)
        errors: list[Any] = []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    unknown += [tuple(e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
    errors = [e for e in errors if e["type"] != "extra_forbidden"]
    if unknown:
        paths = [_format_loc(loc) for loc in unknown]
        if mode == "Strict":
            raise bad_request("strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in paths))
        for loc in unknown:
            _drop(obj, loc)
        if mode == "Warn":
            warnings.extend(f'unknown field "{p}"' for p in paths)
    causes = _causes(errors)
    if isinstance(metadata, dict):
        causes += rules.metadata_problems(metadata, name_rule(rt.kind))
    if rt.value_rules is not None:
        causes += rt.value_rules(obj)
    if causes:
        raise invalid(rt.kind, name, causes, rt.group)
    return warnings


def _drop(obj: Any, loc: tuple[Any, ...]) -> None:
    node = obj
    for part in loc[:-1]:
        if (isinstance(node, dict) and part in node) or (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            node = node[part]
        else:
            return
    if isinstance(node, dict):
        node.pop(loc[-1], None)


def parse_field_validation(value: str | None, default: FieldValidation) -> FieldValidation:
    if value is None or value == "":
        return default
    if value not in ("Strict", "Warn", "Ignore"):
        raise ApiError(400, "BadRequest", f'fieldValidation must be one of "Strict", "Warn", "Ignore", not {value!r}')
    return value  # type: ignore[return-value]


def validate_update(rt: ResourceType, new: Obj, old: Obj, mode: FieldValidation) -> list[str]:
    """:func:`validate` for an update, ratcheting as Kubernetes does: a problem that the stored
    object already has, unchanged (same field, same value), does not block the update.

    An object stored before a rule existed (or by an older version) stays editable: its
    status can be written, its labels and finalizers changed, its bad field fixed; whatever
    the update newly gets wrong is still rejected.
    """
    try:
        return validate(rt, new, mode)
    except ApiError as error:
        if error.code != 422:
            raise
        try:
            validate(rt, copy.deepcopy(old), mode)
        except ApiError as old_error:
            if _error_causes(error) <= _error_causes(old_error):
                return [f"{field}: {problem} (kept from the stored object)"
                        for field, problem in sorted(_error_causes(error))]
        raise


def _error_causes(error: ApiError) -> set[tuple[str, str]]:
    return {(str(c.get("field")), str(c.get("message"))) for c in (error.details or {}).get("causes") or []}


# ---- list continue tokens and DeleteOptions ---------------------------------------------

def parse_continue(token: str) -> tuple[tuple[str, str], int]:
    """A ``continue`` token's start key and resourceVersion; 400 as Kubernetes for anything else."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error, RecursionError):
        decoded = None
    start = decoded.get("start") if isinstance(decoded, dict) else None
    rv = decoded.get("rv") if isinstance(decoded, dict) else None
    if (not isinstance(start, list) or len(start) != 2 or not all(isinstance(part, str) for part in start)
            or type(rv) is not int or not 0 <= rv <= INT64_MAX):
        raise bad_request(f"continue key is not valid: {token[:100]!r} is not a continue token this server issued")
    return (start[0], start[1]), rv


_DELETE_FIELDS = {"apiVersion", "kind", "gracePeriodSeconds", "preconditions", "orphanDependents",
                  "propagationPolicy", "dryRun", "ignoreStoreReadErrorWithClusterBreakingPotential"}


def _delete_error(field: str, value: Any, why: str) -> ApiError:
    return bad_request(f'DeleteOptions in version "v1" cannot be handled as a DeleteOptions: {field}: '
                       f"Invalid value: {rules.show(value)}: {why}")


def grace_period(value: Any, field: str = "gracePeriodSeconds") -> int:
    """A grace period in seconds: an integer from 0 to 2^63-1."""
    if type(value) is not int:
        raise _delete_error(field, value, "must be an integer")
    if value < 0:
        raise _delete_error(field, value, "must be greater than or equal to 0")
    if value > INT64_MAX:
        raise _delete_error(field, value, f"must be no more than {INT64_MAX}")
    return value


def check_delete_options(body: Any) -> dict[str, Any]:
    """A DeleteOptions body, its fields type-checked as kube-apiserver's decoder does."""
    if not isinstance(body, dict):
        raise bad_request(f"the DeleteOptions body must be an object, not {json_type(body)}")
    options: dict[str, Any] = {}
    for field, value in body.items():
        if field not in _DELETE_FIELDS or value is None:
            continue
        if field == "gracePeriodSeconds":
            options[field] = grace_period(value)
        elif field == "preconditions":
            if not isinstance(value, dict):
                raise _delete_error(field, value, "must be an object")
            for key in ("uid", "resourceVersion"):
                if value.get(key) is not None and not isinstance(value[key], str):
                    raise _delete_error(f"preconditions.{key}", value[key], "must be a string")
            options[field] = value
        elif field == "dryRun":
            if not isinstance(value, list) or not all(v == "All" for v in value):
                raise _delete_error(field, value, 'supported values: "All"')
            options[field] = value
        elif field in ("orphanDependents", "ignoreStoreReadErrorWithClusterBreakingPotential"):
            if not isinstance(value, bool):
                raise _delete_error(field, value, "must be a boolean")
            options[field] = value
        elif field == "propagationPolicy" and not isinstance(value, str):
            raise _delete_error(field, value, "must be a string")
        else:
            options[field] = value
    return options
