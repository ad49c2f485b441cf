"""The few writes the workload reconcilers share: create tolerating a previous try, adopt, release."""

from __future__ import annotations

from corral.api.registry import Obj
from corral.client import ApiClient, ApiError
from corral.controllers.podutil import controller_reference, metadata


async def create(client: ApiClient, obj: Obj) -> Obj | None:
    """Create ``obj``; ``None`` when it exists already (an earlier try made it)."""
    try:
        return await client.create(obj)
    except ApiError as error:
        if error.code != 409:
            raise
        return None


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
