"""Queue status and explanations from the admission state: pure functions.

``queue_status`` is what the queue status controller writes: pending and admitted
counts, usage and borrowing per flavor and resource, the weighted fair share, and
conditions (``Active``; ``False`` with reason ``Held`` when a stop policy holds it).

``explain_pending`` is what ``corral explain`` adds for a group waiting on quota: its
position in its queue, which quota of which flavor blocks it, what it would preempt, and
an estimate of when it could start (from the known end times of the admitted workloads
holding the contested quota, e.g. ``corral.dev/sim-duration``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from corral.scheduler.quota.assign import candidates
from corral.scheduler.quota.cycle import order_key
from corral.scheduler.quota.preemption import find_victims
from corral.scheduler.quota.quota import FR, Mode, QuotaBook, fmt_milli
from corral.scheduler.quota.workload import Workload


def queue_status(book: QuotaBook, name: str, *, pending: int, old: Mapping[str, Any] | None = None,
                 now: str = "") -> dict[str, Any]:
    """The ``status`` of Queue ``name``; ``lastTransitionTime`` is kept while a condition holds."""
    config = book.queues[name]
    flavors: list[dict[str, Any]] = []
    for group in config.groups:
        for flavor in group.flavors:
            resources = []
            for resource in sorted(group.resources):
                fr = (flavor.name, resource)
                resources.append({"name": resource, "total": fmt_milli(book.used(name, fr), resource),
                                  "borrowed": fmt_milli(book.borrowed(name, fr), resource)})
            flavors.append({"name": flavor.name, "resources": resources})
    admitted = sum(1 for item in book.admitted.values() if item.queue == name)
    share = book.share(name)
    if config.stop_policy != "None":
        condition = {"type": "Active", "status": "False", "reason": "Held",
                     "message": f"stopPolicy {config.stop_policy}: no new work is admitted"}
    else:
        condition = {"type": "Active", "status": "True", "reason": "Ready", "message": "admitting work"}
    previous = next((c for c in (old or {}).get("conditions") or [] if c.get("type") == "Active"), None)
    if previous is not None and previous.get("status") == condition["status"] and previous.get("lastTransitionTime"):
        condition["lastTransitionTime"] = previous["lastTransitionTime"]
    elif now:
        condition["lastTransitionTime"] = now
    return {"pending": pending, "admitted": admitted, "flavorsUsage": flavors,
            "fairSharing": {"weightedShare": round(share, 4) if share != float("inf") else 1e9},
            "conditions": [condition]}


def estimate_start(book: QuotaBook, workload: Workload, usage: Mapping[FR, int], ends: Mapping[str, float],
                   now: float) -> float | None:
    """Seconds from ``now`` until enough admitted work ends for ``usage`` to fit, if known.

    Admitted workloads end in the order of their known end times; the first moment the
    request fits the queue is the estimate. None when it would need work with no known end.
    """
    trial = book.copy()
    if trial.fits(workload.queue, dict(usage)).mode <= Mode.BORROW:
        return 0.0
    holders = sorted((end, key) for key, end in ends.items()
                     if key in trial.admitted and any(fr in usage for fr in trial.admitted[key].usage))
    for end, key in holders:
        trial.remove(key)
        if trial.fits(workload.queue, dict(usage)).mode <= Mode.BORROW:
            return max(0.0, end - now)
    return None


def explain_pending(book: QuotaBook, workload: Workload, queue_pending: Sequence[Workload], *,
                    ends: Mapping[str, float] | None = None, now: float = 0.0,
                    evicting: Sequence[str] = ()) -> list[str]:
    """Lines for ``corral explain``: position, blocking quota, would-be victims, start estimate."""
    config = book.queues.get(workload.queue)
    if config is None:
        return [f'queue "{workload.queue}" does not exist: the group waits until it is created']
    order = sorted({w.key: w for w in [*queue_pending, workload]}.values(), key=order_key)
    position = next(i for i, w in enumerate(order) if w.key == workload.key)
    lines = [f'queue "{config.name}" ({config.strategy}'
             + (f', cohort "{config.cohort}"' if config.cohort else "") + f"): position {position + 1} of {len(order)}"]
    if position and config.strategy == "StrictFIFO":
        lines.append(f"  behind {order[0].key} (StrictFIFO: nothing passes the head)")
    if config.stop_policy != "None":
        lines.append(f"  the queue is stopped (stopPolicy {config.stop_policy})")
    found = candidates(book, workload)
    best = found.best
    if best is not None and best.mode <= Mode.BORROW:
        lines.append(f"  quota: fits on flavor {best.describe()}"
                     + (f" by borrowing ({best.fit.reason})" if best.mode == Mode.BORROW else "")
                     + "; it waits for placement or its turn")
        return lines
    for reason in found.reasons or ("no flavor of the queue can hold it",):
        lines.append(f"  blocked by quota: {reason}")
    if best is None:
        lines.append("  it can never be admitted as it is: it needs more than the queue may use")
        return lines
    victims = find_victims(book, workload, dict(best.usage), evicting=set(evicting))
    if victims:
        lines.append(f"  would preempt ({config.reclaim_within_cohort} reclaim, {config.within_queue} within queue): "
                     + ", ".join(f"{v.key} (queue {v.queue}, priority {v.priority})" for v in victims))
    else:
        lines.append(f"  would preempt: nothing (preemption policy: withinQueue {config.within_queue}, "
                     f"reclaimWithinCohort {config.reclaim_within_cohort})")
    eta = estimate_start(book, workload, best.usage, ends or {}, now)
    if eta is not None:
        lines.append(f"  could start in about {eta:.0f}s, when admitted work holding that quota ends")
    else:
        lines.append("  could start: unknown (the work holding that quota has no known end)")
    return lines
