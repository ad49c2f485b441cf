"""Label and field selectors, parsed and matched as Kubernetes does.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``
(exists), ``!a`` (does not exist), joined by commas. Field selectors: ``path=value``,
``path==value``, ``path!=value`` on dotted paths such as ``metadata.name``,
``spec.nodeName`` or ``status.phase``; a missing field matches the empty string, so
``spec.nodeName=`` selects unbound pods.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from corral.api.registry import Obj


class SelectorError(ValueError):
    """A selector that cannot be parsed; the message says where."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        value = labels.get(self.key)
        if self.operator == "=":
            return present and value == self.values[0]
        if self.operator == "!=":
            return not present or value != self.values[0]
        if self.operator == "in":
            return present and value in self.values
        return not present or value not in self.values  # notin


_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\((.*)\)\s*$")


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _check_key(key: str, text: str) -> str:
    if not _KEY_RE.match(key):
        raise SelectorError(f"invalid label key {key!r} in selector {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise SelectorError(f"invalid label value {value!r} in selector {text!r}")
    return value


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse a label selector string; raises :class:`SelectorError`."""
    requirements: list[Requirement] = []
    for part in _split_top(text or ""):
        set_match = _SET_RE.match(part)
        if set_match:
            key, operator, values = set_match.group(1), set_match.group(3), set_match.group(4)
            items = tuple(_check_value(v.strip(), text) for v in values.split(",") if v.strip() or values.strip())
            requirements.append(Requirement(_check_key(key, text), operator, items))
            continue
        for symbol, operator in (("!=", "!="), ("==", "="), ("=", "=")):
            if symbol in part:
                key, value = part.split(symbol, 1)
                requirements.append(Requirement(_check_key(key.strip(), text), operator, (_check_value(value.strip(), text),)))
                break
        else:
            if part.startswith("!"):
                requirements.append(Requirement(_check_key(part[1:].strip(), text), "!"))
            elif " " in part or "(" in part:
                raise SelectorError(f"unable to parse requirement {part!r} in selector {text!r}")
            else:
                requirements.append(Requirement(_check_key(part, text), "exists"))
    return requirements


def selector_from_dict(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """Requirements of a ``LabelSelector`` object (``matchLabels`` and ``matchExpressions``)."""
    if not selector:
        return []
    requirements = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    names = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        requirements.append(Requirement(expression["key"], names[expression["operator"]], tuple(expression.get("values") or ())))
    return requirements


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(requirement.matches(labels) for requirement in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    equal: bool
    value: str


def parse_field_selector(text: str) -> list[FieldRequirement]:
    """Parse ``a.b=c,d!=e``; raises :class:`SelectorError`."""
    requirements = []
    for part in _split_top(text or ""):
        for symbol, equal in (("!=", False), ("==", True), ("=", True)):
            if symbol in part:
                path, value = part.split(symbol, 1)
                path = path.strip()
                if not path or not re.match(r"^[A-Za-z][A-Za-z0-9_.]*$", path):
                    raise SelectorError(f"invalid field path {path!r} in field selector {text!r}")
                requirements.append(FieldRequirement(tuple(path.split(".")), equal, value.strip()))
                break
        else:
            raise SelectorError(f"invalid field selector requirement {part!r}: expected field=value or field!=value")
    return requirements


def field_value(obj: Obj, path: tuple[str, ...]) -> str:
    value: Any = obj
    for part in path:
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fields_match(requirements: list[FieldRequirement], obj: Obj) -> bool:
    return all((field_value(obj, r.path) == r.value) == r.equal for r in requirements)


def matcher(label_selector: str | None, field_selector: str | None) -> Callable[[Obj], bool] | None:
    """A predicate for both selectors, or ``None`` when neither selects anything."""
    labels = parse_label_selector(label_selector) if label_selector else []
    fields = parse_field_selector(field_selector) if field_selector else []
    if not labels and not fields:
        return None

    def match(obj: Obj) -> bool:
        metadata = obj.get("metadata") or {}
        return labels_match(labels, metadata.get("labels")) and fields_match(fields, obj)

    return match


def equality_fields(field_selector: str | None) -> dict[str, str]:
    """The ``path=value`` requirements of a field selector, by dotted path (``metadata.name`` → ``web``).

    A store can answer these from its keys without decoding objects (``kubectl wait`` and
    ``kubectl delete`` watch one pod by ``metadata.name``); the full selector still applies.
    """
    fields: dict[str, str] = {}
    for requirement in parse_field_selector(field_selector) if field_selector else []:
        if requirement.equal:
            fields.setdefault(".".join(requirement.path), requirement.value)
    return fields
