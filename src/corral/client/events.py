"""Recording ``v1`` Events about objects, as kube components do.

Repeats of the same (object, reason, message) within a component bump ``count`` and
``lastTimestamp`` of the existing Event instead of creating a new one, so a crash
loop does not flood the API. Recording never raises: an event that cannot be
written is logged and dropped, since events explain behaviour but never drive it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Literal

from corral.api.registry import Obj
from corral.client.errors import ApiError
from corral.client.rest import ApiClient
from corral.util.clock import Clock, SystemClock, format_timestamp

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]


class EventRecorder:
    """Writes Events on behalf of one component (``corral-scheduler``, ``trainingjob-controller``…)."""

    def __init__(self, client: ApiClient, component: str, *, clock: Clock | None = None, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self.clock = clock or SystemClock()
        self._recent: dict[tuple[str, str, str, str], tuple[str, str, int]] = {}

    async def record(self, obj: Obj, event_type: EventType, reason: str, message: str) -> None:
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        involved = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": metadata.get("name"),
                    "namespace": metadata.get("namespace"), "uid": metadata.get("uid"),
                    "resourceVersion": metadata.get("resourceVersion")}
        now = format_timestamp(self.clock.now())
        key = (str(metadata.get("uid") or metadata.get("name")), event_type, reason, message)
        try:
            previous = self._recent.get(key)
            if previous is not None:
                name, event_namespace, count = previous
                try:
                    await self.client.patch("v1", "events", name, {"count": count + 1, "lastTimestamp": now},
                                            namespace=event_namespace)
                    self._recent[key] = (name, event_namespace, count + 1)
                    return
                except ApiError as error:
                    if not error.not_found:
                        raise
            name = f"{metadata.get('name')}.{uuid.uuid4().hex[:12]}"
            event = {"apiVersion": "v1", "kind": "Event",
                     "metadata": {"name": name, "namespace": namespace},
                     "involvedObject": {k: v for k, v in involved.items() if v is not None},
                     "reason": reason, "message": message, "type": event_type,
                     "source": {"component": self.component, **({"host": self.host} if self.host else {})},
                     "reportingComponent": self.component, "firstTimestamp": now, "lastTimestamp": now,
                     "count": 1}
            await self.client.create(event)
            if len(self._recent) > 4096:
                self._recent.clear()
            self._recent[key] = (name, namespace, 1)
        except Exception as error:  # events must never break the caller
            log.warning("could not record event %s on %s: %s", reason, metadata.get("name"), error)
