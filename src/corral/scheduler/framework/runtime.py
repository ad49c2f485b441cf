"""The framework runtime: a profile's plugins wired into extension points, and the pure
placement entry point :func:`schedule_group`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from corral.scheduler.framework.cycle_state import CycleState
from corral.scheduler.framework.interfaces import (
    BindPlugin,
    DeviceChooserPlugin,
    Diagnosis,
    FilterPlugin,
    FloatArray,
    IntArray,
    PermitPlugin,
    Plugin,
    PostFilterPlugin,
    PreFilterPlugin,
    QueueSortPlugin,
    ReservePlugin,
    ScorePlugin,
)
from corral.scheduler.framework.profile import Profile
from corral.scheduler.framework.registry import Registry
from corral.scheduler.framework.status import Code, Status
from corral.scheduler.framework.types import DeviceAssignment, Placement, PodRequest

if TYPE_CHECKING:
    from corral.scheduler.cache.snapshot import Snapshot


class Framework:
    """A profile instantiated: plugin objects sorted into extension points (profile order)."""

    def __init__(self, profile: Profile, registry: Registry) -> None:
        self.profile = profile
        self.plugins: list[Plugin] = []
        self.queue_sort: list[QueueSortPlugin] = []
        self.pre_filter: list[PreFilterPlugin] = []
        self.filter: list[FilterPlugin] = []
        self.post_filter: list[PostFilterPlugin] = []
        self.score: list[tuple[ScorePlugin, int]] = []
        self.device_choosers: list[DeviceChooserPlugin] = []
        self.reserve: list[ReservePlugin] = []
        self.permit: list[PermitPlugin] = []
        self.bind: list[BindPlugin] = []
        default_choosers: list[DeviceChooserPlugin] = []
        for ref in profile.plugins:
            plugin = registry.create(ref.name, ref.args)
            self.plugins.append(plugin)
            if isinstance(plugin, QueueSortPlugin):
                self.queue_sort.append(plugin)
            if isinstance(plugin, PreFilterPlugin):
                self.pre_filter.append(plugin)
            if isinstance(plugin, FilterPlugin):
                self.filter.append(plugin)
            if isinstance(plugin, PostFilterPlugin):
                self.post_filter.append(plugin)
            if isinstance(plugin, ScorePlugin) and ref.weight > 0:
                self.score.append((plugin, ref.weight))
            if isinstance(plugin, DeviceChooserPlugin):
                # score plugins' device rules win over the GPU plugin's default rule
                (self.device_choosers if isinstance(plugin, ScorePlugin) else default_choosers).append(plugin)
            if isinstance(plugin, ReservePlugin):
                self.reserve.append(plugin)
            if isinstance(plugin, PermitPlugin):
                self.permit.append(plugin)
            if isinstance(plugin, BindPlugin):
                self.bind.append(plugin)
        self.device_choosers.extend(default_choosers)

    def plugin(self, name: str) -> Plugin:
        for p in self.plugins:
            if p.name == name:
                return p
        raise KeyError(name)

    # -- stages -------------------------------------------------------------------------
    def run_pre_filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> Status:
        for p in self.pre_filter:
            st = p.pre_filter(state, snapshot, pod)
            if st.code is Code.SKIP or st.is_success():
                continue
            return st.with_plugin(p.name)
        return Status.success()

    def feasible(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> tuple[np.ndarray, list[tuple[str, np.ndarray, bool]]]:
        """Feasible mask over all nodes, and the rejections in plugin order."""
        ok = np.ones(len(snapshot), dtype=np.bool_)
        rejections: list[tuple[str, np.ndarray, bool]] = []
        for p in self.filter:
            res = p.filter(state, snapshot, pod)
            if res.feasible is snapshot.all_nodes:
                continue
            ok &= res.feasible
            rejections.extend((r.reason, r.nodes, r.resolvable) for r in res.rejections)
        return ok, rejections

    def run_score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        total = np.zeros(len(nodes), dtype=np.float64)
        for p, w in self.score:
            s = p.score(state, snapshot, pod, nodes)
            total += s if w == 1 else w * s
        return total

    def choose_devices(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, node: int) -> tuple[DeviceAssignment, ...] | None:
        if not pod.wants_gpu:
            return ()
        for p in self.device_choosers:
            got = p.choose_devices(state, snapshot, pod, node)
            if got is not None:
                return got
        return snapshot.default_devices(pod, node)


def diagnose(pod: PodRequest, n: int, rejections: list[tuple[str, np.ndarray, bool]], status: Status | None = None) -> Diagnosis:
    """Per-reason node counts: each node under the first reason that rejected it."""
    assigned = np.zeros(n, dtype=np.bool_)
    unresolvable = np.zeros(n, dtype=np.bool_)
    counts: dict[str, int] = {}
    names: list[str] = [""]
    ids = np.zeros(n, dtype=np.int64)
    for reason, mask, resolvable in rejections:
        new = mask & ~assigned
        c = int(new.sum())
        if c:
            counts[reason] = counts.get(reason, 0) + c
            if reason not in names:
                names.append(reason)
            ids[new] = names.index(reason)
            if not resolvable:
                unresolvable |= new
            assigned |= new
    node_reasons: list[str] = np.array(names, dtype=object)[ids].tolist()
    st = status or Status.unschedulable(*sorted(counts))
    return Diagnosis(pod.key, n, counts, node_reasons, unresolvable, st)


@dataclass(slots=True)
class GroupResult:
    """All members placed (``placements``, same order as the pods), or none and why."""

    placements: list[Placement] = field(default_factory=list)
    failure: Diagnosis | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def select_node(snapshot: Snapshot, nodes: IntArray, scores: FloatArray) -> int:
    """Highest score; ties go to the node with the lowest ``snapshot.rank``."""
    best = scores.max()
    tied = nodes[scores == best]
    if len(tied) == 1:
        return int(tied[0])
    return int(tied[np.argmin(snapshot.rank[tied])])


def schedule_one(
    framework: Framework, state: CycleState, snapshot: Snapshot, pod: PodRequest
) -> Placement | Diagnosis:
    """Place one pod (no assume): PreFilter, Filter, Score, select, choose devices."""
    n = len(snapshot)
    st = framework.run_pre_filter(state, snapshot, pod)
    if not st.is_success():
        return Diagnosis(pod.key, n, {}, [""] * n, np.ones(n, dtype=np.bool_) if st.code is Code.UNRESOLVABLE else np.zeros(n, dtype=np.bool_), st)
    ok, rejections = framework.feasible(state, snapshot, pod)
    nodes = np.flatnonzero(ok)
    if len(nodes) == 0:
        return diagnose(pod, n, rejections)
    if len(nodes) == 1:
        node = int(nodes[0])
    else:
        node = select_node(snapshot, nodes, framework.run_score(state, snapshot, pod, nodes))
    devices = framework.choose_devices(state, snapshot, pod, node)
    if devices is None:
        return Diagnosis(pod.key, n, {}, [""] * n, np.zeros(n, dtype=np.bool_), Status.error(f"no devices chosen on {snapshot.nodes[node]}"))
    return Placement(pod.key, snapshot.nodes[node], node, devices)


def schedule_group(
    snapshot: Snapshot,
    pods: Sequence[PodRequest],
    framework: Framework,
    *,
    state: CycleState | None = None,
    rng: np.random.Generator | None = None,
    assume: bool = True,
) -> GroupResult:
    """Place every pod of a group, all or nothing, with device-level choice.

    Members are placed in order; each is assumed in ``snapshot`` so later members see it.
    If any member fits nowhere (or a Reserve plugin rejects it), every member placed so far
    is unreserved and forgotten and the result carries that member's :class:`Diagnosis`.
    On success the placements stay assumed when ``assume`` is true (the live scheduler then
    binds them, and calls ``snapshot.forget`` if a bind fails); otherwise they are undone.
    """
    state = state or CycleState(rng, group_size=len(pods))
    state.group_size = len(pods)
    done: list[tuple[PodRequest, Placement]] = []

    def rollback() -> None:
        for p, pl in reversed(done):
            for r in reversed(framework.reserve):
                r.unreserve(state, snapshot, p, pl)
            snapshot.forget(p.key)
        state.group_nodes.clear()

    for pod in pods:
        got = schedule_one(framework, state, snapshot, pod)
        if isinstance(got, Diagnosis):
            rollback()
            return GroupResult([], got)
        try:
            snapshot.assume(pod, got.node_index, got.devices)
        except ValueError as exc:
            rollback()
            n = len(snapshot)
            return GroupResult([], Diagnosis(pod.key, n, {}, [""] * n, np.zeros(n, dtype=np.bool_), Status.error(str(exc))))
        done.append((pod, got))
        for r in framework.reserve:
            st = r.reserve(state, snapshot, pod, got)
            if not st.is_success():
                rollback()
                n = len(snapshot)
                return GroupResult([], Diagnosis(pod.key, n, {}, [""] * n, np.zeros(n, dtype=np.bool_), st.with_plugin(r.name)))
        state.group_nodes.append(got.node_index)
    placements = [pl for _, pl in done]
    if not assume:
        rollback()
    return GroupResult(placements, None)
