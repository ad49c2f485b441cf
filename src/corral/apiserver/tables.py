"""Table responses for ``kubectl get`` (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``).

The columns come from each kind's :class:`~corral.api.registry.PrinterColumn` list, after
a ``Name`` column; ``date`` columns are shown as ages (``5m``) as Kubernetes does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from corral.api.registry import Obj, PrinterColumn, ResourceType
from corral.util.clock import parse_timestamp


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration``: ``45s``, ``3m12s``, ``5h``, ``2d3h``."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def columns_of(rt: ResourceType) -> tuple[PrinterColumn, ...]:
    """The kind's columns after the Name column every table starts with (a kind's own
    ``Name`` column is dropped so it does not print twice)."""
    if rt.columns:
        return tuple(column for column in rt.columns if column.name.lower() != "name")
    return (PrinterColumn("Age", "date", lambda o: (o.get("metadata") or {}).get("creationTimestamp")),)


def column_definitions(rt: ResourceType) -> list[dict[str, Any]]:
    definitions = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                    "description": "Name must be unique within a namespace."}]
    for column in columns_of(rt):
        definitions.append({"name": column.name, "type": "string" if column.type == "date" else column.type,
                            "format": column.format, "priority": column.priority,
                            "description": column.description or column.name})
    return definitions


def _cell(column: PrinterColumn, obj: Obj, now: datetime) -> Any:
    try:
        value = column.value(obj)
    except (KeyError, TypeError, ValueError, AttributeError):
        value = None
    if column.type == "date":
        if not value:
            return "<unknown>"
        try:
            return human_duration((now - parse_timestamp(str(value))).total_seconds())
        except ValueError:
            return "<invalid>"
    if value is None:
        return "<none>" if column.type == "string" else None
    return value


def row(rt: ResourceType, obj: Obj, now: datetime, include: str) -> dict[str, Any]:
    cells = [(obj.get("metadata") or {}).get("name")]
    cells.extend(_cell(column, obj, now) for column in columns_of(rt))
    result: dict[str, Any] = {"cells": cells}
    if include == "Object":
        result["object"] = obj
    elif include == "Metadata":
        result["object"] = partial_metadata(obj)
    return result


def partial_metadata(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def table(rt: ResourceType, objects: list[Obj], now: datetime, include: str, metadata: dict[str, Any], *,
          headers: bool = True) -> dict[str, Any]:
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
        "columnDefinitions": column_definitions(rt) if headers else [],
        "rows": [row(rt, obj, now, include) for obj in objects],
    }
