"""Why does a pod or group wait? (``corral explain pod|podgroup NAME``.)

Pure: given the scheduler brain fed with the cluster (nodes, bound pods, groups), it
runs the group through the same framework *without* reserving anything and writes:

- the kube-scheduler-style summary (``0/5000 nodes are available: 4000 Insufficient
  nvidia.com/gpu, ...``) — for a gang, how many members fit before one did not;
- the nearest misses: nodes turned down only for capacity, ordered by how little they
  lack, each with what it has free and what the pod needs;
- what would change it: the smallest shortfall to close on the nearest node, the largest
  node when no node could ever fit, and the lower-priority pods whose preemption would
  make room (the planner the live scheduler uses, on a scratch copy of the state).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from corral.scheduler.cache.snapshot import Snapshot
from corral.scheduler.cycle import Scheduler
from corral.scheduler.framework.cycle_state import CycleState
from corral.scheduler.framework.interfaces import Diagnosis
from corral.scheduler.framework.runtime import schedule_group
from corral.scheduler.framework.types import MILLI, PodRequest, PodSpecError, pod_request_from_obj
from corral.scheduler.pods import creation_seconds, group_priority, meta, min_member, split_group_key
from corral.scheduler.preemption import plan_preemption
from corral.util.quantity import format_bytes


@dataclass
class NodeMiss:
    node: str
    reason: str
    lacks: dict[str, str]
    """Resource → 'has X free, needs Y'."""
    score: float


@dataclass
class Explanation:
    group: str
    pods: list[str]
    fits: bool
    summary: str
    nearest: list[NodeMiss] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"{self.group}: {self.summary}"]
        if self.nearest:
            lines.append("nearest misses:")
            for miss in self.nearest:
                detail = "; ".join(f"{k}: {v}" for k, v in miss.lacks.items()) or miss.reason
                lines.append(f"  {miss.node}: {miss.reason} ({detail})")
        if self.advice:
            lines.append("what would change it:")
            lines.extend(f"  - {line}" for line in self.advice)
        return "\n".join(lines)


def _shortfall(snapshot: Snapshot, pod: PodRequest, node: int) -> tuple[dict[str, str], float]:
    """What ``pod`` lacks on ``node``, in words, and a size of the gap (0 = fits)."""
    lacks: dict[str, str] = {}
    gap = 0.0
    cpu_free = int(snapshot.cpu_cap[node] - snapshot.cpu_used[node])
    if pod.cpu_milli > cpu_free:
        lacks["cpu"] = f"{cpu_free}m free, needs {pod.cpu_milli}m"
        gap += (pod.cpu_milli - cpu_free) / max(1, pod.cpu_milli)
    mem_free = int(snapshot.mem_cap[node] - snapshot.mem_used[node])
    if pod.memory > mem_free:
        lacks["memory"] = f"{format_bytes(max(0, mem_free))} free, needs {format_bytes(pod.memory)}"
        gap += (pod.memory - mem_free) / max(1, pod.memory)
    if pod.gpu_count and snapshot.max_gpus:
        free = snapshot.gpu_free[node]
        if pod.is_share:
            need = int(snapshot.gpu_need_milli(pod)[node].min())
            best = int(free.max()) if len(free) else 0
            if best < need:
                lacks["nvidia.com/gpu"] = f"at most {best / MILLI:.2f} of a GPU free on one device, needs {need / MILLI:.2f}"
                gap += (need - best) / MILLI
        else:
            whole = int((free >= MILLI).sum())
            if whole < pod.gpu_count:
                lacks["nvidia.com/gpu"] = f"{whole} whole GPU(s) free, needs {pod.gpu_count}"
                gap += pod.gpu_count - whole
    elif pod.gpu_count:
        lacks["nvidia.com/gpu"] = f"no GPUs, needs {pod.gpu_count}"
        gap += pod.gpu_count
    for profile, count in pod.mig.items():
        col = snapshot.mig_index.get(profile)
        have = int(snapshot.mig_free[node, col]) if col is not None else 0
        if have < count:
            lacks[f"nvidia.com/mig-{profile}"] = f"{have} free, needs {count}"
            gap += count - have
    return lacks, gap


def explain_group(sched: Scheduler, key: str, *, nearest: int = 3) -> Explanation:
    """Explain group ``key`` (``pod:ns/name`` or ``group:ns/name``) against the brain's state."""
    sched.sync_nodes()
    snapshot = sched.snapshot
    kind, ns, name = split_group_key(key)
    members = dict(sched._pending.get(key, {}))
    pods = sorted(members.values(), key=lambda p: (creation_seconds(p), str(meta(p).get("name"))))
    names = [str(meta(p).get("name")) for p in pods]
    bound = sorted(sched._group_held.get(key, ()))
    if not pods:
        where = ", ".join(f"{k} on {sched.held()[k][0]}" for k in bound) if bound else ""
        return Explanation(key, names, True, f"nothing is pending{'; bound: ' + where if where else ''}")
    podgroup = sched.podgroup(key)
    if kind == "group":
        if podgroup is None:
            return Explanation(key, names, False, f"waiting for PodGroup {ns}/{name} to exist",
                               advice=[f"create PodGroup {ns}/{name} (its pods carry label corral.dev/pod-group={name})"])
        need = min_member(podgroup)
        have = len(pods) + len(bound)
        if have < need:
            return Explanation(key, names, False, f"PodGroup {ns}/{name} has {have}/{need} pods",
                               advice=[f"create {need - have} more pod(s) with label corral.dev/pod-group={name}, "
                                       f"or lower spec.minMember"])
    priority = group_priority(podgroup, pods, sched._classes)
    try:
        reqs = [dataclasses.replace(pod_request_from_obj(p), priority=priority) for p in pods]
    except PodSpecError as error:
        return Explanation(key, names, False, f"invalid pod: {error}")
    result = schedule_group(snapshot, reqs, sched.framework, state=CycleState(np.random.default_rng(0)), assume=False)
    if result.ok:
        where = ", ".join(f"{p.pod.partition('/')[2]} → {p.node}" + (f" [{p.gpu_devices}]" if p.gpu_devices else "")
                          for p in result.placements)
        return Explanation(key, names, True, f"fits now: {where} (the scheduler will place it on its next try)")
    diagnosis = result.failure
    assert diagnosis is not None
    failing = next((i for i, r in enumerate(reqs) if r.key == diagnosis.pod), 0)
    summary = diagnosis.message()
    if len(reqs) > 1:
        summary = f"{failing} of {len(reqs)} pods fit, then {names[failing]} did not: {summary}"
    pod = reqs[failing]
    misses = _nearest(snapshot, pod, diagnosis, nearest)
    advice = _advice(sched, snapshot, pod, reqs, priority=priority, diagnosis=diagnosis, misses=misses)
    return Explanation(key, names, False, summary, misses, advice)


def _nearest(snapshot: Snapshot, pod: PodRequest, diagnosis: Diagnosis, count: int) -> list[NodeMiss]:
    rows: list[NodeMiss] = []
    unresolvable = diagnosis.unresolvable if len(diagnosis.unresolvable) == len(snapshot) else np.zeros(len(snapshot), bool)
    for i, reason in enumerate(diagnosis.node_reasons):
        if not reason or unresolvable[i]:
            continue
        lacks, gap = _shortfall(snapshot, pod, i)
        rows.append(NodeMiss(snapshot.nodes[i], reason, lacks, gap))
    rows.sort(key=lambda m: (m.score, m.node))
    return rows[:count]


def _advice(
    sched: Scheduler, snapshot: Snapshot, pod: PodRequest, reqs: list[PodRequest], *, priority: int,
    diagnosis: Diagnosis, misses: list[NodeMiss],
) -> list[str]:
    out: list[str] = []
    n = len(snapshot)
    if n == 0:
        return ["there are no nodes: register some (e.g. corral sim nodes --count 4 --gpus 8 --gpu-model H100-80GB)"]
    if pod.gpu_count and not pod.is_share and snapshot.max_gpus and int(snapshot.gpu_count.max()) < pod.gpu_count:
        out.append(f"no node has {pod.gpu_count} GPUs (the largest has {int(snapshot.gpu_count.max())}): "
                   f"ask for at most that many per pod and use more pods (a PodGroup keeps them together)")
    if misses:
        best = misses[0]
        if best.lacks:
            needs = ", ".join(f"{k} ({v})" for k, v in best.lacks.items())
            out.append(f"it would fit on {best.node} with more free {needs}")
    elif not out:
        out.append("no node could take it even if it were empty: "
                   + ", ".join(f"{c} {r}" for r, c in sorted(diagnosis.reason_counts.items())))
    units, unit_of = sched.victim_units()
    plan = plan_preemption(snapshot, sched.framework, reqs, priority, units=units, unit_of_pod=unit_of,
                           diagnosis=diagnosis, new_state=lambda: CycleState(np.random.default_rng(0)))
    if plan is not None:
        victims = plan.victim_pods
        shown = ", ".join(victims[:5]) + (f" and {len(victims) - 5} more" if len(victims) > 5 else "")
        out.append(f"at priority {priority} it can preempt {len(victims)} lower-priority pod(s): {shown} "
                   f"(the scheduler does this unless preemption is off)")
    elif any(u.priority < priority for u in units.values()):
        out.append(f"preempting lower-priority pods (below {priority}) would not free enough room")
    else:
        out.append(f"a higher priority (now {priority}) would let it preempt lower-priority work; "
                   "nothing running has a lower priority")
    return out
