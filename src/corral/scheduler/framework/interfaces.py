"""Extension points as typed Protocols (kube-scheduler's framework, vectorised over nodes).

A plugin is any object with a ``name`` that implements one or more of these; a profile
enables plugins by name and the :class:`~corral.scheduler.framework.runtime.Framework` wires
each into every extension point it implements (checked with ``isinstance`` against these
runtime-checkable Protocols). Filter and Score work on *all nodes at once*: a filter returns
boolean masks over the snapshot's rows, a score plugin returns one value in [0, 100] per
candidate row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from corral.scheduler.framework.cycle_state import CycleState
from corral.scheduler.framework.status import Status
from corral.scheduler.framework.types import DeviceAssignment, Placement, PodRequest

if TYPE_CHECKING:
    from corral.scheduler.cache.snapshot import Snapshot

BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Nodes a filter turned down for one reason. ``resolvable`` is False when evicting
    pods cannot help (affinity, taints, node too small), as UnschedulableAndUnresolvable."""

    reason: str
    nodes: BoolArray
    resolvable: bool = True


@dataclass(frozen=True, slots=True)
class FilterResult:
    """A filter's verdict over all nodes: ``feasible`` mask and why the others were rejected."""

    feasible: BoolArray
    rejections: tuple[Rejection, ...] = ()

    @staticmethod
    def of(n: int, *rejections: Rejection) -> FilterResult:
        bad = np.zeros(n, dtype=np.bool_)
        for r in rejections:
            bad |= r.nodes
        return FilterResult(~bad, tuple(r for r in rejections if r.nodes.any()))


@dataclass(frozen=True, slots=True)
class QueuedGroup:
    """What QueueSort compares: a pending group (a bare pod is a group of one)."""

    key: str
    priority: int = 0
    timestamp: float = 0.0
    pods: tuple[PodRequest, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Plugin(Protocol):
    name: str


@runtime_checkable
class QueueSortPlugin(Plugin, Protocol):
    def less(self, a: QueuedGroup, b: QueuedGroup) -> bool: ...


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> Status:
        """Cheap checks and per-pod precomputation; a rejection here rejects every node."""
        ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> FilterResult: ...


@runtime_checkable
class PostFilterPlugin(Plugin, Protocol):
    def post_filter(
        self, state: CycleState, snapshot: Snapshot, pods: tuple[PodRequest, ...], diagnosis: Diagnosis
    ) -> tuple[Status, str]:
        """Called when a group cannot be placed (preemption); returns a status and the
        nominated node name ('' when none)."""
        ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        """One score in [0, 100] per row of ``nodes`` (higher is better)."""
        ...


@runtime_checkable
class DeviceChooserPlugin(Plugin, Protocol):
    def choose_devices(
        self, state: CycleState, snapshot: Snapshot, pod: PodRequest, node: int
    ) -> tuple[DeviceAssignment, ...] | None:
        """The exact devices for ``pod`` on the chosen ``node``; None defers to the next chooser.
        Score plugins whose policy includes a device rule (FGD, random) implement this."""
        ...


@runtime_checkable
class ReservePlugin(Plugin, Protocol):
    def reserve(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, placement: Placement) -> Status: ...

    def unreserve(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, placement: Placement) -> None: ...


@runtime_checkable
class PermitPlugin(Plugin, Protocol):
    def permit(self, state: CycleState, pod: PodRequest, placement: Placement) -> tuple[Status, float]:
        """SUCCESS, a rejection, or WAIT with a timeout in seconds."""
        ...


@runtime_checkable
class BindPlugin(Plugin, Protocol):
    async def bind(self, state: CycleState, pod: PodRequest, placement: Placement) -> Status:
        """Write the binding (live scheduler only); SKIP lets the next bind plugin try."""
        ...


@dataclass(slots=True)
class Diagnosis:
    """Why a pod fits nowhere: ``reason_counts`` counts each node once, under the first
    reason that rejected it (kube-scheduler's ``0/N nodes are available: ...``).
    ``node_reasons[i]`` is that reason for row ``i`` ('' where the node was feasible), and
    ``unresolvable`` marks rows where preemption cannot help."""

    pod: str
    nodes_total: int
    reason_counts: dict[str, int] = field(default_factory=dict)
    node_reasons: list[str] = field(default_factory=list)
    unresolvable: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    status: Status = field(default_factory=Status.success)

    def message(self) -> str:
        if self.status.code.name in ("UNRESOLVABLE", "UNSCHEDULABLE", "ERROR") and not self.reason_counts:
            detail = self.status.message
            return f"0/{self.nodes_total} nodes are available: {detail}." if detail else f"0/{self.nodes_total} nodes are available."
        parts = [f"{count} {reason}" for reason, count in sorted(self.reason_counts.items())]
        return f"0/{self.nodes_total} nodes are available: {', '.join(parts)}."
