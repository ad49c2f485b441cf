"""Preemption (PostFilter): the cheapest set of lower-priority victims that lets a group fit.

Pure over the snapshot: :func:`plan_preemption` tries victims by forgetting their pods in
the snapshot, checks whether the group then fits with the very same framework that
placed it, and puts everything back before it returns (the caller applies the plan).

Victims come in *units*: a bare pod is a unit of one; the bound members of a gang are
one unit (a running gang is preempted whole or not at all — half a gang is useless and
still holds its GPUs). Only units whose priority (the highest of their pods) is strictly
lower than the preemptor's are eligible, so a higher- or equal-priority pod is never
evicted.

Cost of a victim set, compared lexicographically (kube-scheduler's order): the highest
victim priority, then the number of victim pods, then the sum of their priorities.

- A single pod: for each candidate node (rejected for a reason preemption can fix, i.e.
  not marked unresolvable) with eligible units on it, remove them all, keep the node if
  the pod then fits there, then *reprieve* units from the most important down, keeping
  each one that can stay while the pod still fits. The cheapest node wins (ties: the
  first in snapshot order).
- A group of several pods: remove eligible units cheapest-first until the whole group
  fits, then reprieve from the most important down.

Nothing is preempted twice: the caller keeps the victims out of the snapshot and the
preemptor reserved in their place until the victims are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from corral.scheduler.cache.snapshot import Snapshot
from corral.scheduler.framework.cycle_state import CycleState
from corral.scheduler.framework.interfaces import Diagnosis
from corral.scheduler.framework.runtime import Framework, schedule_group
from corral.scheduler.framework.types import DeviceAssignment, PodRequest


@dataclass(frozen=True)
class VictimUnit:
    """Pods that are evicted together (a running gang, or one bare pod)."""

    key: str
    priority: int
    pods: tuple[str, ...]


@dataclass(frozen=True)
class PreemptionPlan:
    victims: tuple[VictimUnit, ...]
    cost: tuple[int, int, int]

    @property
    def victim_pods(self) -> list[str]:
        return [pod for unit in self.victims for pod in unit.pods]


def cost_of(units: Sequence[VictimUnit]) -> tuple[int, int, int]:
    if not units:
        return (-(2**62), 0, 0)
    return (max(u.priority for u in units), sum(len(u.pods) for u in units),
            sum(u.priority * len(u.pods) for u in units))


class _Scratch:
    """Forget/restore units in a snapshot, remembering how to put them back."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.saved: dict[str, tuple[PodRequest, int, tuple[DeviceAssignment, ...]]] = {}

    def remove(self, unit: VictimUnit) -> None:
        for key in unit.pods:
            where = self.snapshot.placement_of(key)
            if where is None:
                continue
            pod = self.snapshot.forget(key)
            if pod is not None:
                self.saved[key] = (pod, where[0], where[1])

    def restore(self, unit: VictimUnit) -> None:
        for key in unit.pods:
            entry = self.saved.pop(key, None)
            if entry is not None:
                self.snapshot.assume(*entry)

    def restore_all(self) -> None:
        for key in list(self.saved):
            pod, node, devices = self.saved.pop(key)
            self.snapshot.assume(pod, node, devices)


def plan_preemption(
    snapshot: Snapshot,
    framework: Framework,
    pods: Sequence[PodRequest],
    priority: int,
    *,
    units: Mapping[str, VictimUnit],
    unit_of_pod: Mapping[str, str],
    diagnosis: Diagnosis,
    new_state: Callable[[], CycleState] = CycleState,
    max_candidates: int = 128,
    max_units: int = 64,
) -> PreemptionPlan | None:
    """The cheapest victims that let ``pods`` (all of them) fit, or None. Leaves ``snapshot`` as it found it."""
    n = len(snapshot)
    rejected = np.zeros(n, dtype=np.bool_)
    for i, reason in enumerate(diagnosis.node_reasons):
        if reason:
            rejected[i] = True
    candidates = rejected & ~diagnosis.unresolvable if len(diagnosis.unresolvable) == n else rejected
    if not candidates.any():
        return None
    by_node: dict[int, set[str]] = {}
    for pod, node, _ in snapshot.assumed_pods():
        if not candidates[node]:
            continue
        unit_key = unit_of_pod.get(pod.key)
        unit = units.get(unit_key) if unit_key else None
        if unit is not None and unit.priority < priority:
            by_node.setdefault(node, set()).add(unit.key)
    if not by_node:
        return None
    if len(pods) == 1:
        return _plan_single(snapshot, framework, pods[0], units=units, by_node=by_node, new_state=new_state,
                            max_candidates=max_candidates)
    return _plan_group(snapshot, framework, pods, units=units, by_node=by_node, new_state=new_state, max_units=max_units)


def _fits_on(snapshot: Snapshot, framework: Framework, pod: PodRequest, node: int, new_state: Callable[[], CycleState]) -> bool:
    state = new_state()
    if not framework.run_pre_filter(state, snapshot, pod).is_success():
        return False
    ok, _ = framework.feasible(state, snapshot, pod)
    return bool(ok[node])


def _cheapest_first(units: list[VictimUnit]) -> list[VictimUnit]:
    return sorted(units, key=lambda u: (u.priority, len(u.pods), u.key))


def _plan_single(
    snapshot: Snapshot,
    framework: Framework,
    pod: PodRequest,
    *,
    units: Mapping[str, VictimUnit],
    by_node: dict[int, set[str]],
    new_state: Callable[[], CycleState],
    max_candidates: int,
) -> PreemptionPlan | None:
    def lower_bound(node: int) -> tuple[int, int, int]:
        return cost_of([min((units[k] for k in by_node[node]), key=lambda u: (u.priority, len(u.pods)))])

    best: PreemptionPlan | None = None
    for node in sorted(by_node, key=lambda i: (lower_bound(i), int(snapshot.rank[i])))[:max_candidates]:
        if best is not None and lower_bound(node) > best.cost:
            continue
        eligible = _cheapest_first([units[k] for k in by_node[node]])
        scratch = _Scratch(snapshot)
        try:
            for unit in eligible:
                scratch.remove(unit)
            if not _fits_on(snapshot, framework, pod, node, new_state):
                continue
            victims: list[VictimUnit] = []
            for unit in reversed(eligible):  # most important first: keep it if we can
                scratch.restore(unit)
                if not _fits_on(snapshot, framework, pod, node, new_state):
                    scratch.remove(unit)
                    victims.append(unit)
            plan = PreemptionPlan(tuple(_cheapest_first(victims)), cost_of(victims))
            if best is None or plan.cost < best.cost:
                best = plan
        finally:
            scratch.restore_all()
    return best


def _plan_group(
    snapshot: Snapshot,
    framework: Framework,
    pods: Sequence[PodRequest],
    *,
    units: Mapping[str, VictimUnit],
    by_node: dict[int, set[str]],
    new_state: Callable[[], CycleState],
    max_units: int,
) -> PreemptionPlan | None:
    keys = {k for ks in by_node.values() for k in ks}
    eligible = _cheapest_first([units[k] for k in keys])[:max_units]

    def fits() -> bool:
        return schedule_group(snapshot, pods, framework, state=new_state(), assume=False).ok

    scratch = _Scratch(snapshot)
    try:
        removed: list[VictimUnit] = []
        for unit in eligible:
            scratch.remove(unit)
            removed.append(unit)
            if fits():
                break
        else:
            return None
        victims: list[VictimUnit] = []
        for unit in reversed(removed):
            scratch.restore(unit)
            if not fits():
                scratch.remove(unit)
                victims.append(unit)
        return PreemptionPlan(tuple(_cheapest_first(victims)), cost_of(victims))
    finally:
        scratch.restore_all()
