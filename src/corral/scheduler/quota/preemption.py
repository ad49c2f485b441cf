"""Victim selection for quota: reclaim within the cohort, then lower priority in the queue.

Given a workload that fits its queue's limits but not the quota in use now, find a
minimal set of admitted workloads whose eviction makes room:

- *Reclaim* (``reclaimWithinCohort``): workloads of other queues in the cohort, only
  while their queue borrows in a contested ``(flavor, resource)`` and only when the
  preemptor would stay within its own nominal quota (it takes back what it lent).
  ``Any`` takes any priority, ``LowerPriority`` only lower priorities.
- *Borrow within cohort* (``borrowWithinCohort: LowerPriority``): when the preemptor would
  borrow, other queues' borrowing workloads of lower priority (at most
  ``maxPriorityThreshold``).
- *Within the queue* (``withinQueue``): the queue's own workloads of lower priority, or
  also equal priority and newer (``LowerOrNewerEqualPriority``).

Candidates are ordered other-queue first (borrowed capacity is reclaimed first), then
lowest priority, then most recently admitted; they are removed one by one until the
preemptor fits, then every victim that turns out unnecessary is put back (newest first
tried last), so the set is minimal. A victim is a whole workload: a gang goes whole.
Workloads already being evicted are never chosen twice.

*Fair-share preemption* (``fairSharing.preemptionStrategy``, when the rules above find
nothing): a queue that would *borrow* may take capacity back from the cohort member that
is furthest above its fair share (highest weighted share; its lowest-priority, newest
workloads first), only from a queue that borrows in a contested ``(flavor, resource)``,
only victims its ``reclaimWithinCohort`` allows and never of higher priority than the
preemptor, and only while the preemptor's queue, with the preemptor admitted, keeps a
share at most the victim queue's share after the eviction (``LessThanOrEqualToFinalShare``)
or below the victim queue's share before it (``LessThanInitialShare``). So a preemption
moves the shares towards each other and never past each other: no queue is pushed below
the preemptor's queue, and the preemptor is admitted only within its quota.
"""

from __future__ import annotations

from collections.abc import Collection

from corral.scheduler.quota.quota import FR, Admitted, Mode, QuotaBook
from corral.scheduler.quota.workload import Workload


def _fits(book: QuotaBook, queue: str, usage: dict[FR, int]) -> bool:
    return book.fits(queue, usage).mode <= Mode.BORROW


def _minimised(victims: list[Admitted], trial: QuotaBook, queue: str, usage: dict[FR, int]) -> list[Admitted]:
    """Put back every victim the preemptor does not need (last removed first); ``trial`` is the
    book without all of ``victims``."""
    for victim in list(reversed(victims[:-1])):
        trial.add(victim)
        if _fits(trial, queue, usage):
            victims.remove(victim)
        else:
            trial.remove(victim.key)
    return victims


def within_nominal(book: QuotaBook, queue: str, usage: dict[FR, int]) -> bool:
    config = book.queues[queue]
    return all(book.used(queue, fr) + amount <= config.quota(*fr).nominal for fr, amount in usage.items())


def eligible(book: QuotaBook, preemptor: Workload, usage: dict[FR, int], victim: Admitted) -> str | None:
    """Why ``victim`` may be preempted for ``preemptor`` ("reclaim", "borrow", "queue"), or None."""
    config = book.queues[preemptor.queue]
    if not any(fr in usage for fr in victim.usage):
        return None
    if victim.queue == preemptor.queue:
        if config.within_queue == "LowerPriority" and victim.priority < preemptor.priority:
            return "queue"
        if config.within_queue == "LowerOrNewerEqualPriority" and (
                victim.priority < preemptor.priority
                or (victim.priority == preemptor.priority and victim.created > preemptor.created)):
            return "queue"
        return None
    victim_config = book.queues.get(victim.queue)
    if victim_config is None or config.cohort is None or victim_config.cohort != config.cohort:
        return None
    if within_nominal(book, preemptor.queue, usage):
        if config.reclaim_within_cohort == "Any":
            return "reclaim"
        if config.reclaim_within_cohort == "LowerPriority" and victim.priority < preemptor.priority:
            return "reclaim"
        return None
    if config.borrow_within_cohort == "LowerPriority" and victim.priority < preemptor.priority:
        threshold = config.borrow_priority_threshold
        if threshold is None or victim.priority <= threshold:
            return "borrow"
    return None


def find_victims(book: QuotaBook, preemptor: Workload, usage: dict[FR, int],
                 evicting: Collection[str] = (), reserved: Collection[str] = ()) -> list[Admitted] | None:
    """A minimal list of admitted workloads to evict so ``usage`` fits, or None if none exists.

    ``evicting`` are on their way out already and are never chosen again; ``reserved`` are
    those among them this preemptor nominated earlier: their room counts as its own.
    """
    if preemptor.queue not in book.queues or book.fits(preemptor.queue, usage).mode == Mode.NOFIT:
        return None
    victims = _policy_victims(book, preemptor, usage, evicting, reserved)
    if victims is None:
        victims = fair_victims(book, preemptor, usage, evicting, reserved)
    return victims


def _policy_victims(book: QuotaBook, preemptor: Workload, usage: dict[FR, int],
                    evicting: Collection[str], reserved: Collection[str]) -> list[Admitted] | None:
    scored: list[tuple[int, int, float, str, Admitted]] = []
    for victim in book.admitted.values():
        if victim.key in evicting:
            continue
        why = eligible(book, preemptor, usage, victim)
        if why is None:
            continue
        scored.append((0 if why != "queue" else 1, victim.priority, -victim.admitted_at, victim.key, victim))
    if not scored:
        return None
    scored.sort(key=lambda item: item[:4])
    trial = book.copy()
    # This preemptor's earlier victims will be gone soon: that room is its own.
    for key in reserved:
        trial.remove(key)
    if _fits(trial, preemptor.queue, usage):
        return []
    victims: list[Admitted] = []
    for _, _, _, _, victim in scored:
        if victim.queue != preemptor.queue and not any(
                trial.borrowed(victim.queue, fr) > 0 for fr in victim.usage if fr in usage):
            continue  # that queue no longer borrows: what it uses now is its own
        trial.remove(victim.key)
        victims.append(victim)
        if _fits(trial, preemptor.queue, usage):
            break
    else:
        return None
    return _minimised(victims, trial, preemptor.queue, usage)



def fair_eligible(book: QuotaBook, preemptor: Workload, usage: dict[FR, int], victim: Admitted) -> bool:
    """Whether fair-share preemption may consider ``victim`` at all (policy and priority)."""
    config = book.queues[preemptor.queue]
    victim_config = book.queues.get(victim.queue)
    if victim.queue == preemptor.queue or victim_config is None or config.cohort is None \
            or victim_config.cohort != config.cohort or victim.priority > preemptor.priority:
        return False
    if config.reclaim_within_cohort == "LowerPriority" and victim.priority >= preemptor.priority:
        return False
    return config.reclaim_within_cohort != "Never" and any(fr in usage for fr in victim.usage)


def fair_victims(book: QuotaBook, preemptor: Workload, usage: dict[FR, int],
                 evicting: Collection[str] = (), reserved: Collection[str] = ()) -> list[Admitted] | None:
    """Fair-share preemption (see the module docstring): a minimal list of victims, or None."""
    config = book.queues.get(preemptor.queue)
    if config is None or config.fair_preemption == "Never" or config.cohort is None \
            or book.fits(preemptor.queue, usage).mode == Mode.NOFIT:
        return None
    trial = book.copy()
    for key in reserved:
        trial.remove(key)
    if _fits(trial, preemptor.queue, usage):
        return []
    mine = trial.share(preemptor.queue, usage)  # depends on the preemptor's queue alone
    by_queue: dict[str, list[Admitted]] = {}
    for victim in book.admitted.values():
        if victim.key not in evicting and victim.key not in reserved and fair_eligible(book, preemptor, usage, victim):
            by_queue.setdefault(victim.queue, []).append(victim)
    for items in by_queue.values():
        items.sort(key=lambda v: (v.priority, -v.admitted_at, v.key))
    victims: list[Admitted] = []
    while not _fits(trial, preemptor.queue, usage):
        chosen: Admitted | None = None
        for name in sorted(by_queue, key=lambda q: (-trial.share(q), q)):  # furthest above first
            before = trial.share(name)
            if before <= 0:
                continue  # within its nominal quota: nothing of it is borrowed
            for victim in by_queue[name]:
                if not any(trial.borrowed(name, fr) > 0 for fr in victim.usage if fr in usage):
                    continue
                trial.remove(victim.key)
                after = trial.share(name)
                ok = mine <= after if config.fair_preemption == "LessThanOrEqualToFinalShare" else mine < before
                trial.add(victim)
                if ok:
                    chosen = victim
                    break
            if chosen is not None:
                break
        if chosen is None:
            return None
        trial.remove(chosen.key)
        by_queue[chosen.queue].remove(chosen)
        victims.append(chosen)
    return _minimised(victims, trial, preemptor.queue, usage)
