"""The few writes the workload reconcilers share: create tolerating a previous try, pods with their
events (FailedCreate on a rejection), adopt, release."""

from __future__ import annotations

from typing import Any

from corral.api.registry import Obj
from corral.client import ApiClient, ApiError, EventRecorder
from corral.controllers.podutil import controller_reference, metadata

FAILED_CREATE_RETRY = 5.0
"""Seconds before a controller whose pods were rejected tries again."""


async def create(client: ApiClient, obj: Obj) -> Obj | None:
    """Create ``obj``; ``None`` when it exists already (an earlier try made it)."""
    try:
        return await client.create(obj)
    except ApiError as error:
        if error.code != 409:
            raise
        return None


def merge_difference(old: Any, new: Any) -> Any:
    """The JSON merge patch that turns ``old`` into ``new`` (``None`` for removed keys)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_difference(old[key], value)
    return patch


async def write_status(client: ApiClient, api_version: str, plural: str, obj: Obj, status: dict[str, Any]) -> Obj:
    """Write ``status`` as a merge patch of ``/status``, without a resourceVersion precondition:
    one worker owns a key at a time, so nothing else writes this status, and a concurrent change
    of the spec or metadata (another controller scaling a set) must not make the write fail."""
    meta = metadata(obj)
    body = {"status": merge_difference(obj.get("status") or {}, status)}
    return await client.patch(api_version, plural, str(meta.get("name")), body, namespace=meta.get("namespace"),
                              subresource="status")


async def set_controller(client: ApiClient, api_version: str, plural: str, obj: Obj, owner: Obj | None) -> None:
    """Adopt ``obj`` for ``owner`` (or release it with ``None``), as a patch guarded by its
    ``resourceVersion``, so an object that changed since it was read is looked at again."""
    meta = metadata(obj)
    references = [r for r in meta.get("ownerReferences") or [] if not r.get("controller")]
    if owner is not None:
        references.append(controller_reference(owner))
    body = {"metadata": {"ownerReferences": references, "resourceVersion": meta.get("resourceVersion")}}
    try:
        await client.patch(api_version, plural, str(meta.get("name")), body, namespace=meta.get("namespace"))
    except ApiError as error:
        if error.code != 404:
            raise


async def claim(client: ApiClient, api_version: str, plural: str, owner: Obj, objects: list[Obj], *,
                adopt: list[str], release: list[str]) -> None:
    """Adopt the named ``objects`` for ``owner`` and release others, as the plan decided."""
    by_name = {metadata(obj).get("name"): obj for obj in objects}
    for name in adopt:
        await set_controller(client, api_version, plural, by_name[name], owner)
    for name in release:
        await set_controller(client, api_version, plural, by_name[name], None)


async def create_pods(client: ApiClient, recorder: EventRecorder, owner: Obj, pods: list[Obj]) -> tuple[int, str | None]:
    """Create ``pods`` for ``owner`` (events SuccessfulCreate); on a rejection (4xx) stop, record
    FailedCreate and return its message with the number created — the owner's controller looks
    again after :data:`FAILED_CREATE_RETRY`."""
    made = 0
    for pod in pods:
        try:
            created = await create(client, pod)
        except ApiError as error:
            if error.code >= 500:
                raise
            message = f"Error creating: {error.message}"
            await recorder.record(owner, "Warning", "FailedCreate", message)
            return made, message
        made += 1
        if created is not None:
            await recorder.record(owner, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
    return made, None
