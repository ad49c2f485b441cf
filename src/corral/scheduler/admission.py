"""The admission seam: quota admission joins the placement decision here.

DESIGN.md asks that admission and placement be one atomic decision: a group is admitted
to its queue's quota only together with a feasible placement of every member. The live
scheduler therefore calls :meth:`Admission.admit` *inside* its cycle, after the whole
group has a tentative placement (every member reserved in the snapshot) and *before*
anything is committed (no binding written yet):

- ``admit(group, placements)`` → :class:`AdmissionResult`. Allowed: the scheduler binds
  the group. Denied: the scheduler unreserves every member, parks the group as
  unschedulable with ``reason``/``message`` on its pods (``PodScheduled=False``) and
  PodGroup, and retries it when the cluster changes (or on :meth:`Scheduler.requeue`).
  An admission implementation may count the group against its quota when it allows it.
- ``forget(group_key)``: the group's reservation was undone after it was allowed (a bind
  failed and the members go back to the queue, or the group left); quota taken in
  ``admit`` for it should be returned. The group will be admitted again before it binds.

- optional ``precheck(group)`` → :class:`AdmissionResult` or None, called *before*
  placement (and before the pods' requests are parsed: ``group.pods`` is empty there): a denial parks the group as above without spending a placement on it (quota
  that rules it out whatever the placement). ``admit`` is still called after placement.
  A denial with ``hold=True`` takes the group out of the scheduling queue altogether
  (cluster events do not retry it) until the admission calls
  :meth:`Scheduler.release_held` with its key (e.g. when quota in its cohort is freed):
  a queue of waiting work then costs nothing per cluster event.

The call is synchronous and must be cheap (it runs once per group per cycle); it reads
its own caches (queues, usage), never the network. :class:`AllowAll` is the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from corral.api.registry import Obj
from corral.scheduler.framework.types import Placement, PodRequest


@dataclass(frozen=True)
class GroupInfo:
    """A group as admission sees it."""

    key: str
    """``group:ns/name`` for a PodGroup, ``pod:ns/name`` for a bare pod."""
    namespace: str
    name: str
    priority: int
    queue: str | None
    """The PodGroup's ``spec.queue``, else the pods' label ``corral.dev/queue``."""
    pods: tuple[PodRequest, ...]
    pod_objs: tuple[Obj, ...] = field(default=(), repr=False)
    podgroup: Obj | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AdmissionResult:
    allowed: bool
    reason: str = ""
    """CamelCase reason for the pods' condition when denied (e.g. ``QuotaExceeded``)."""
    message: str = ""
    hold: bool = False
    """Denied by ``precheck``: keep the group out of the queue until ``release_held``."""


class Admission(Protocol):
    def admit(self, group: GroupInfo, placements: Sequence[Placement]) -> AdmissionResult: ...

    def forget(self, group_key: str) -> None: ...


class AllowAll:
    """Admits everything (no queues configured)."""

    def admit(self, group: GroupInfo, placements: Sequence[Placement]) -> AdmissionResult:
        return AdmissionResult(True)

    def forget(self, group_key: str) -> None:
        return None
