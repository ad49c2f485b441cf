"""Checks on what clients send: names, kinds, and the models' field validation.

Every failure becomes an :class:`ApiError` whose message names the object, the field
and the problem, as Kubernetes writes them (``Pod "x" is invalid: spec.containers[0].name:
Required value``).
"""

from __future__ import annotations

import copy
import re
from typing import Any, Literal

from pydantic import ValidationError

from corral.api.registry import Obj, ResourceType
from corral.apiserver.errors import ApiError, bad_request, invalid

FieldValidation = Literal["Strict", "Warn", "Ignore"]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

# Kinds whose names must be DNS-1123 labels / DNS-1035 labels rather than subdomains.
_LABEL_NAMED = {"Namespace"}
_DNS1035_NAMED = {"Service"}


def name_problem(kind: str, name: str) -> str | None:
    """Why ``name`` is not a valid name for ``kind``, or ``None``."""
    if kind in _DNS1035_NAMED:
        if len(name) > 63 or not _DNS1035.match(name):
            return (f'Invalid value: "{name}": a DNS-1035 label must consist of lower case alphanumeric characters '
                    "or '-', start with an alphabetic character, and end with an alphanumeric character "
                    "(e.g. 'my-name', or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
        return None
    if kind in _LABEL_NAMED:
        if len(name) > 63 or not _LABEL.match(name):
            return (f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case alphanumeric '
                    "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', "
                    "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
        return None
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        return (f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
                "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
                "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    return None


def check_name(rt: ResourceType, name: str) -> None:
    problem = name_problem(rt.kind, name)
    if problem:
        raise invalid(rt.kind, name, [("metadata.name", problem)], rt.group)


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


def _format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str):
            if "[" in part or part in ("str", "int", "float", "bool", "list", "dict", "none") or part.startswith("literal"):
                continue  # pydantic union-member tags, not fields
            text += ("." if text else "") + part
    return text


def _problem(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "Required value"
    if kind == "extra_forbidden":
        return "field not declared in schema"
    value = error.get("input")
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return f"Invalid value: {shown}: {error['msg']}"


def validate(rt: ResourceType, obj: Obj, mode: FieldValidation) -> list[str]:
    """Validate ``obj`` against its model; unknown fields per ``mode`` on strict kinds.

    Returns warnings (``Warn`` mode); removes unknown fields in ``Warn``/``Ignore`` modes;
    raises 422 Invalid naming every bad field otherwise.
    """
    name = str((obj.get("metadata") or {}).get("name") or "")
    warnings: list[str] = []
    for _attempt in range(2):
        try:
            rt.model.model_validate(obj, strict=True)
            return warnings
        except ValidationError as exc:
            errors = exc.errors()
        unknown = [e for e in errors if e["type"] == "extra_forbidden"]
        others = [e for e in errors if e["type"] != "extra_forbidden"]
        if unknown and not others and mode != "Strict":
            for error in unknown:
                _drop(obj, error["loc"])
                if mode == "Warn":
                    warnings.append(f'unknown field "{_format_loc(error["loc"])}"')
            continue
        causes = []
        for error in errors:
            path = _format_loc(error["loc"])
            if error["type"] == "extra_forbidden":
                causes.append((path, f'unknown field "{path}"'))
            else:
                causes.append((path, _problem(error)))
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
            if _causes(error) <= _causes(old_error):
                return [f"{field}: {problem} (kept from the stored object)" for field, problem in sorted(_causes(error))]
        raise


def _causes(error: ApiError) -> set[tuple[str, str]]:
    return {(str(c.get("field")), str(c.get("message"))) for c in (error.details or {}).get("causes") or []}
