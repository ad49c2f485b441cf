"""Drop the empty metadata fields that Kubernetes never shows (Go's ``omitempty``).

``ObjectMeta``'s ``labels``, ``annotations``, ``finalizers``, ``ownerReferences``,
``managedFields``, ``generateName`` and ``namespace`` are ``omitempty`` in Kubernetes: an
empty value is not serialized, so a client never sees ``annotations: {}``. corral stores
JSON as it is written, so a patch that removes the last annotation (as ``kubectl diff``'s
dry run does with ``last-applied-configuration``), or a body with ``labels: {}``, left an
empty map that the live object lacked, and ``kubectl diff`` reported a change on an
unchanged object. Every write passes through :func:`omit_empty_metadata`.
"""

from __future__ import annotations

from typing import Any

OMITTED_WHEN_EMPTY: dict[str, type] = {"labels": dict, "annotations": dict, "finalizers": list, "ownerReferences": list,
                                        "managedFields": list, "generateName": str, "namespace": str}
"""Each omitempty field and its JSON type: an empty value of another type is left for validation to reject."""


def omit_empty_metadata(obj: dict[str, Any]) -> None:
    """Remove ``metadata`` fields whose value is null or empty of the field's own type (in place)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return
    for field, kind in OMITTED_WHEN_EMPTY.items():
        value = metadata.get(field, 0)
        if value is None or (isinstance(value, kind) and not value):
            del metadata[field]
