"""Patches: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic merge, server-side apply.

Strategic merge follows Kubernetes: lists whose model field carries
``x-kubernetes-patch-merge-key`` merge element by element on that key (containers
and env by ``name``, container ports by ``containerPort``, conditions by ``type``,
...); lists with strategy ``merge`` but no key are merged as sets (finalizers); every
other list is replaced. The directives ``$patch: replace|delete|merge``,
``$retainKeys``, ``$deleteFromPrimitiveList/<field>`` are honoured and
``$setElementOrder/<field>`` is accepted (order is kept as stored). The merge
behaviour comes from the pydantic models via :func:`patch_meta`, the same annotations
the OpenAPI documents publish to ``kubectl``.

Server-side apply is a practical subset: the applied configuration is merged like a
strategic merge patch; each field manager's set of fields (``managedFields``,
``FieldsV1``) is recorded; fields a manager applied before and no longer applies are
removed unless another manager also applies them; a field another manager applies
with a different value is a conflict (409) unless ``force=true``, which takes it over.
"""

from __future__ import annotations

import copy
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from pydantic import BaseModel

from corral.api.meta import ObjectMeta
from corral.api.registry import Obj


class PatchError(ValueError):
    """A patch that cannot be applied; the message says why."""


@dataclass
class FieldMeta:
    child: PatchMeta | None = None
    is_list: bool = False
    merge_key: str | None = None
    strategy: str = ""


@dataclass
class PatchMeta:
    fields: dict[str, FieldMeta] = field(default_factory=dict)


def _unwrap(annotation: Any) -> tuple[bool, Any]:
    """``(is_list, inner type)`` of ``X | None``, ``list[X] | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
        return False, None
    if origin is list:
        (item,) = typing.get_args(annotation) or (None,)
        return True, item
    return False, annotation


def patch_meta(model: type[BaseModel], memo: dict[type[BaseModel], PatchMeta] | None = None) -> PatchMeta:
    """How strategic merge treats each field of ``model``, from its json-schema extras."""
    memo = {} if memo is None else memo
    if model in memo:
        return memo[model]
    meta = memo[model] = PatchMeta()
    for name, info in model.model_fields.items():
        key = info.alias or name
        is_list, inner = _unwrap(info.annotation)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        child = patch_meta(inner, memo) if isinstance(inner, type) and issubclass(inner, BaseModel) else None
        meta.fields[key] = FieldMeta(
            child=child, is_list=is_list,
            merge_key=typing.cast(str | None, extra.get("x-kubernetes-patch-merge-key")),
            strategy=str(extra.get("x-kubernetes-patch-strategy") or ""),
        )
    if issubclass(model, ObjectMeta):
        meta.fields["finalizers"] = FieldMeta(is_list=True, strategy="merge")
        meta.fields["ownerReferences"] = FieldMeta(is_list=True, merge_key="uid", strategy="merge")
    return meta


# --- JSON merge patch --------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- JSON patch ----------------------------------------------------------------------------

MAX_JSON_PATCH_OPERATIONS = 10_000
"""kube-apiserver's limit on the operations of one JSON patch."""
MAX_JSON_PATCH_COPY_BYTES = 3 * 1024 * 1024
"""Bytes ``copy`` operations may duplicate in one patch (kube's AccumulatedCopySizeLimit, the request limit):
without it, 40 copies of a growing subtree into itself double it 40 times."""


def json_patch(target: Obj, operations: Any) -> Obj:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(f"the JSON patch has {len(operations)} operations; at most {MAX_JSON_PATCH_OPERATIONS} are allowed")
    result: Obj = copy.deepcopy(target)
    copied = 0
    try:
        for operation in operations:
            if isinstance(operation, dict) and operation.get("op") == "copy" and isinstance(operation.get("from"), str):
                source = jsonpatch.JsonPointer(operation["from"]).resolve(result)
                copied += len(json.dumps(source, separators=(",", ":"), ensure_ascii=False))
                if copied > MAX_JSON_PATCH_COPY_BYTES:
                    raise PatchError(f"the JSON patch's copy operations duplicate more than {MAX_JSON_PATCH_COPY_BYTES} "
                                     "bytes (the accumulated copy size limit)")
            result = jsonpatch.JsonPatch([operation]).apply(result, in_place=True)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, TypeError, ValueError) as exc:
        raise PatchError(f"the JSON patch could not be applied: {exc}") from None
    return result


# --- strategic merge -----------------------------------------------------------------------

def _strip(value: Any) -> Any:
    """Remove patch directives from a value that is inserted whole."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def strategic_merge(original: Any, patch: Any, meta: PatchMeta | None) -> Any:
    """Apply a strategic merge patch to ``original`` (not modified) and return the result."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    if not isinstance(original, dict):
        return _strip(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip(patch)
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch directive $patch: {directive!r}")
    result = dict(original)
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list) and isinstance(value, list):
                result[name] = [item for item in result[name] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        field_meta = meta.fields.get(key) if meta else None
        current = result.get(key)
        if isinstance(value, dict):
            merged = strategic_merge(current, value, field_meta.child if field_meta else None)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and field_meta is not None and "merge" in field_meta.strategy:
            result[key] = _merge_list(current if isinstance(current, list) else [], value, field_meta)
        else:
            result[key] = _strip(value)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain or k not in original or k in patch}
    return result


def _merge_list(current: list[Any], patch: list[Any], field_meta: FieldMeta) -> list[Any]:
    key = field_meta.merge_key
    if key is None:  # a set of scalars
        if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
            return [item for item in patch if not isinstance(item, dict)]
        result = list(current)
        for item in patch:
            if item not in result:
                result.append(item)
        return result
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    result = list(current)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"list items merged by {key!r} must be objects, got {item!r}")
        if key not in item:
            raise PatchError(f"a list item in the patch lacks its merge key {key!r}: {json.dumps(item)}")
        index = next((i for i, existing in enumerate(result) if isinstance(existing, dict) and existing.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(_strip(item))
        else:
            result[index] = strategic_merge(result[index], item, field_meta.child)
    return result


# --- server-side apply -------------------------------------------------------------------

Path = tuple[str, ...]


def field_set(obj: Any, meta: PatchMeta | None, prefix: Path = ()) -> set[Path]:
    """The leaf fields a configuration sets, as FieldsV1-style path tuples."""
    paths: set[Path] = set()
    if not isinstance(obj, dict):
        return paths
    for key, value in obj.items():
        if prefix == () and key in ("apiVersion", "kind"):
            continue
        if prefix == ("f:metadata",) and key in ("name", "namespace", "resourceVersion", "uid", "managedFields",
                                                 "creationTimestamp", "generation"):
            continue
        field_meta = meta.fields.get(key) if meta else None
        path = (*prefix, f"f:{key}")
        if isinstance(value, dict) and value and (field_meta is None or not field_meta.is_list):
            paths |= field_set(value, field_meta.child if field_meta else None, path)
        elif isinstance(value, list) and field_meta is not None and field_meta.merge_key:
            for item in value:
                if isinstance(item, dict) and field_meta.merge_key in item:
                    item_path = (*path, "k:" + json.dumps({field_meta.merge_key: item[field_meta.merge_key]}, separators=(",", ":")))
                    paths.add((*item_path, "."))
                    paths |= field_set(item, field_meta.child, item_path)
        else:
            paths.add(path)
    return paths


def fields_to_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    return tree


def fields_from_v1(tree: Any, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    if not isinstance(tree, dict):
        return paths
    for key, child in tree.items():
        path = (*prefix, key)
        if isinstance(child, dict) and child and key != ".":
            paths |= fields_from_v1(child, path)
        else:
            paths.add(path)
    return paths


def _lookup(obj: Any, path: Path) -> tuple[bool, Any]:
    node = obj
    for part in path:
        if part == ".":
            return True, node
        if part.startswith("f:") and isinstance(node, dict):
            if part[2:] not in node:
                return False, None
            node = node[part[2:]]
        elif part.startswith("k:") and isinstance(node, list):
            wanted = json.loads(part[2:])
            node = next((item for item in node if isinstance(item, dict)
                         and all(item.get(k) == v for k, v in wanted.items())), None)
            if node is None:
                return False, None
        else:
            return False, None
    return True, node


def _remove(obj: Any, path: Path) -> None:
    if path and path[-1] == ".":
        path = path[:-1]
    if not path:
        return
    found, parent = _lookup(obj, path[:-1])
    if not found:
        return
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(parent, list):
        wanted = json.loads(last[2:])
        parent[:] = [item for item in parent if not (isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items()))]


@dataclass
class ApplyConflict:
    manager: str
    path: Path

    def describe(self) -> str:
        return f'conflict with "{self.manager}": {".".join(p[2:] if p.startswith("f:") else p for p in self.path)}'


def server_side_apply(live: Obj, applied: Obj, manager: str, *, force: bool, meta: PatchMeta, now: str) -> tuple[Obj, list[ApplyConflict]]:
    """Merge ``applied`` into ``live`` for ``manager``; returns the result and any conflicts."""
    managed = list((live.get("metadata") or {}).get("managedFields") or [])
    new_paths = field_set(applied, meta)
    previous: set[Path] = set()
    others: list[tuple[str, set[Path], dict[str, Any]]] = []
    for entry in managed:
        if not isinstance(entry, dict):
            continue
        paths = fields_from_v1(entry.get("fieldsV1"))
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            previous = paths
        elif entry.get("operation") == "Apply":
            others.append((str(entry.get("manager")), paths, entry))
    conflicts: list[ApplyConflict] = []
    for other_manager, paths, _entry in others:
        for path in sorted(new_paths & paths):
            if path[-1] == ".":
                continue
            _, live_value = _lookup(live, path)
            _, applied_value = _lookup(applied, path)
            if live_value != applied_value:
                conflicts.append(ApplyConflict(other_manager, path))
    if conflicts and not force:
        return live, conflicts
    result = strategic_merge(live, applied, meta)
    owned_by_others: set[Path] = set()
    for _, paths, _ in others:
        owned_by_others |= paths
    for path in sorted(previous - new_paths - owned_by_others, key=len, reverse=True):
        _remove(result, path)
    entries = []
    for entry in managed:
        if not isinstance(entry, dict):
            continue
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        if force and entry.get("operation") == "Apply":
            kept = fields_from_v1(entry.get("fieldsV1")) - new_paths
            entries.append({**entry, "fieldsV1": fields_to_v1(kept)})
        else:
            entries.append(entry)
    entries.append({
        "manager": manager, "operation": "Apply", "apiVersion": applied.get("apiVersion"), "time": now,
        "fieldsType": "FieldsV1", "fieldsV1": fields_to_v1(new_paths),
    })
    result.setdefault("metadata", {})["managedFields"] = entries
    return result, []
