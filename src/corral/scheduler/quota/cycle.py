"""One admission cycle: order the queues' heads, admit what fits together with a placement,
nominate victims where the policy allows, and explain everything else.

Ordering inside a queue is priority (high first), then creation time, then name. Across
the queues of a cohort the head whose queue would have the lowest weighted
dominant-resource share after admitting it goes first (the queue furthest below its fair
share), then priority and age. Preemptors nominated in an earlier cycle go before anyone
else, so the room their victims free is theirs.

``StrictFIFO``: when a head cannot be admitted, nothing behind it in that queue is tried.
``BestEffortFIFO``: later, smaller work may pass it — until the head has waited
``Policy.starvation_seconds``; then the queue holds for it as if it were StrictFIFO, so a
large head is not starved by a stream of small work.

Admission and placement are one decision: the caller passes ``place(workload,
assignment)``, which returns a feasible placement of every pod on nodes of the assigned
flavors (or None and why). A workload is admitted only with a placement, and the quota
is booked in the same step; with no ``place`` the cycle decides on quota alone (the
benchmark of quota admission, the simulator). Everything here is pure: the
:class:`QuotaBook` passed in is updated with the admissions and nothing else is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from corral.scheduler.quota.assign import Assignment, Candidates, candidates
from corral.scheduler.quota.preemption import find_victims
from corral.scheduler.quota.quota import Admitted, Mode, QuotaBook
from corral.scheduler.quota.workload import Workload

ADMIT = "Admitted"
PREEMPT = "Preempting"
WAIT = "WaitingForVictims"
BLOCKED = "QuotaBlocked"
UNPLACEABLE = "Unschedulable"
HELD = "QueueHeld"
NO_QUEUE = "QueueNotFound"

PlaceFn = Callable[[Workload, Assignment], tuple[Any, str]]
"""``place(workload, assignment) -> (placement or None, reason)``."""


@dataclass(frozen=True)
class Policy:
    starvation_seconds: float = 300.0
    max_preemptions_per_cycle: int = 16


@dataclass(frozen=True)
class Decision:
    workload: Workload
    kind: str
    reason: str = ""
    assignment: Assignment | None = None
    victims: tuple[Admitted, ...] = ()
    placement: Any = None
    position: int = 0
    """0-based position in its queue's order at the start of the cycle."""


@dataclass
class CycleResult:
    decisions: list[Decision] = field(default_factory=list)

    def of(self, kind: str) -> list[Decision]:
        return [decision for decision in self.decisions if decision.kind == kind]

    def by_key(self) -> dict[str, Decision]:
        return {decision.workload.key: decision for decision in self.decisions}


def order_key(workload: Workload) -> tuple[int, float, str]:
    return (-workload.priority, workload.created, workload.key)


def _dominates(total: Mapping[str, int], other: Mapping[str, int]) -> bool:
    return all(total.get(resource, 0) >= amount for resource, amount in other.items())


def plan_cycle(book: QuotaBook, pending: Sequence[Workload], now: float, *,
               place: PlaceFn | None = None,
               evicting: Collection[str] = (),
               nominated: Mapping[str, Collection[str]] | None = None,
               blocked_since: Mapping[str, float] | None = None,
               policy: Policy | None = None) -> CycleResult:
    """Decide this cycle for every pending workload; admissions are booked into ``book``."""
    policy = policy or Policy()
    nominated = nominated or {}
    blocked_since = blocked_since or {}
    evicting_now = set(evicting)
    result = CycleResult()
    queues: dict[str, list[Workload]] = {}
    for workload in pending:
        if workload.key in book.admitted:
            continue
        queues.setdefault(workload.queue, []).append(workload)
    for name in list(queues):
        items = sorted(queues[name], key=order_key)
        config = book.queues.get(name)
        if config is None:
            result.decisions.extend(Decision(w, NO_QUEUE, f'queue "{name}" does not exist', position=i)
                                    for i, w in enumerate(items))
            del queues[name]
        elif config.stop_policy != "None":
            result.decisions.extend(Decision(w, HELD, f'queue "{name}" is stopped (stopPolicy {config.stop_policy})',
                                             position=i) for i, w in enumerate(items))
            del queues[name]
        else:
            queues[name] = items
    cursor = dict.fromkeys(queues, 0)
    cache: dict[str, tuple[int, Candidates]] = {}
    blocked_shapes: dict[str, list[tuple[int, dict[str, int], str, str]]] = {}
    preemptions = 0

    def cands(workload: Workload) -> Candidates:
        version = book.version(workload.queue)
        hit = cache.get(workload.key)
        if hit is not None and hit[0] == version:
            return hit[1]
        found = candidates(book, workload)
        cache[workload.key] = (version, found)
        return found

    def head_key(workload: Workload) -> tuple[int, float, int, float, str]:
        best = cands(workload).best
        share = book.share(workload.queue, best.usage) if best is not None else float("inf")
        return (0 if workload.key in nominated else 1, share, -workload.priority, workload.created, workload.key)

    def close_queue(name: str, head: Workload) -> None:
        items = queues[name]
        for position in range(cursor[name], len(items)):
            result.decisions.append(Decision(items[position], BLOCKED,
                                             f'waiting behind {head.key} at the head of queue "{name}"',
                                             position=position))
        cursor[name] = len(items)

    while True:
        heads = [queues[name][cursor[name]] for name in queues if cursor[name] < len(queues[name])]
        if not heads:
            break
        workload = min(heads, key=head_key)
        name = workload.queue
        position = cursor[name]
        config = book.queues[name]
        total = workload.total()
        selectors = repr(sorted(tuple(sorted(p.node_selector.items())) for p in workload.pod_sets))
        shape_hit = next((reason for prio, shape, sel, reason in blocked_shapes.get(name, ())
                          if workload.key not in nominated and prio >= workload.priority
                          and sel == selectors and _dominates(total, shape)), None)
        if shape_hit is not None:
            result.decisions.append(Decision(workload, BLOCKED, shape_hit, position=position))
            cursor[name] += 1
            continue
        found = cands(workload)
        decision = _decide(book, workload, found, now, place=place, evicting=evicting_now, nominated=nominated,
                           may_preempt=preemptions < policy.max_preemptions_per_cycle, position=position)
        result.decisions.append(decision)
        cursor[name] += 1
        if decision.kind == ADMIT:
            continue
        if decision.kind == PREEMPT:
            preemptions += 1
            evicting_now.update(victim.key for victim in decision.victims)
        if decision.kind == BLOCKED:
            blocked_shapes.setdefault(name, []).append((workload.priority, total, selectors, decision.reason))
        aged = now - blocked_since.get(workload.key, now) >= policy.starvation_seconds
        if config.strategy == "StrictFIFO" or aged:
            close_queue(name, workload)
    return result


def _decide(book: QuotaBook, workload: Workload, found: Candidates, now: float, *, place: PlaceFn | None,
            evicting: set[str], nominated: Mapping[str, Collection[str]], may_preempt: bool,
            position: int) -> Decision:
    fitting = [a for a in found.assignments if a.mode <= Mode.BORROW]
    unplaced: list[str] = []
    for assignment in fitting:
        placement: Any = None
        if place is not None:
            placement, why = place(workload, assignment)
            if placement is None:
                unplaced.append(f"flavor {assignment.describe()}: {why}")
                continue
        book.add(Admitted(workload.key, workload.queue, workload.priority, workload.created,
                          dict(assignment.usage), now))
        return Decision(workload, ADMIT, f"admitted to {workload.queue} on flavor {assignment.describe()}"
                        + (f" ({assignment.fit.reason})" if assignment.mode == Mode.BORROW else ""),
                        assignment=assignment, placement=placement, position=position)
    if unplaced:
        return Decision(workload, UNPLACEABLE, "quota is available but no feasible placement: " + "; ".join(unplaced),
                        position=position)
    waiting = [key for key in nominated.get(workload.key, ()) if key in evicting or key in book.admitted]
    if waiting:
        return Decision(workload, WAIT, f"waiting for {len(waiting)} preempted workload(s) to end: "
                        + ", ".join(sorted(waiting)[:5]), position=position)
    preemptible = [a for a in found.assignments if a.mode == Mode.PREEMPT]
    reason = "; ".join(found.reasons) or "no flavor of the queue fits"
    for assignment in preemptible if may_preempt else []:
        victims = find_victims(book, workload, dict(assignment.usage), evicting,
                               reserved=nominated.get(workload.key, ()))
        if victims is None:
            continue
        if not victims:
            return Decision(workload, WAIT, "waiting for preempted workloads to end: " + assignment.fit.reason,
                            assignment=assignment, position=position)
        return Decision(workload, PREEMPT, f"preempting {len(victims)} workload(s) on flavor "
                        f"{assignment.describe()}: " + ", ".join(v.key for v in victims),
                        assignment=assignment, victims=tuple(victims), position=position)
    return Decision(workload, BLOCKED, reason, position=position)
