"""Flavor assignment: which flavor of each resource group a workload's requests use.

For each resource group that covers something the workload requests, flavors are tried in
the queue's order; a flavor is skipped when it conflicts with a pod's ``nodeSelector``.
The first flavor where the request fits (borrowing if the cohort allows) wins, as Kueue's
default flavor fungibility does; if none fits now, the first flavor where it would fit
after preemption is offered; otherwise the workload cannot be admitted and the reasons of
every flavor are kept for the explanation. Resources that no group of the queue covers
are not limited by the queue.

:func:`candidates` returns every assignment in preference order, so the scheduler can try
the next flavor when the first has quota but no feasible placement.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from corral.scheduler.quota.quota import FR, Fit, Flavor, Mode, QuotaBook
from corral.scheduler.quota.workload import Workload

MAX_COMBINATIONS = 16


@dataclass(frozen=True)
class Assignment:
    """A flavor per resource group, the usage it books, and how it fits."""

    flavors: tuple[Flavor, ...]
    usage: Mapping[FR, int]
    fit: Fit

    @property
    def mode(self) -> Mode:
        return self.fit.mode

    def node_labels(self) -> dict[str, str] | None:
        """Labels every pod's node must carry for this assignment; None when flavors conflict."""
        labels: dict[str, str] = {}
        for flavor in self.flavors:
            for key, value in flavor.node_labels.items():
                if labels.setdefault(key, value) != value:
                    return None
        return labels

    def describe(self) -> str:
        return ", ".join(flavor.name for flavor in self.flavors) or "(no quota'd resources)"


@dataclass(frozen=True)
class Candidates:
    assignments: tuple[Assignment, ...]
    reasons: tuple[str, ...] = field(default=())
    summaries: tuple[str, ...] = field(default=())
    """The reasons without live figures (see ``Fit.summary``)."""

    @property
    def best(self) -> Assignment | None:
        return self.assignments[0] if self.assignments else None


def candidates(book: QuotaBook, workload: Workload) -> Candidates:
    """Assignments of the workload in its queue, best first (FIT/BORROW before PREEMPT)."""
    config = book.queues.get(workload.queue)
    if config is None:
        missing = (f'queue "{workload.queue}" does not exist',)
        return Candidates((), missing, missing)
    total = workload.total()
    per_group: list[list[tuple[Flavor, dict[FR, int]]]] = []
    reasons: list[str] = []
    summaries: list[str] = []
    for group in config.groups:
        wanted = {resource: amount for resource, amount in total.items() if resource in group.resources and amount > 0}
        if not wanted:
            continue
        options: list[tuple[Flavor, dict[FR, int]]] = []
        for flavor in group.flavors:
            conflicts = [pod_set for pod_set in workload.pod_sets if not flavor.compatible(pod_set.node_selector)]
            if conflicts:
                reasons.append(f'flavor "{flavor.name}" does not match the pods\' nodeSelector')
                summaries.append(reasons[-1])
                continue
            options.append((flavor, {(flavor.name, resource): amount for resource, amount in wanted.items()}))
        if not options:
            why = tuple(reasons) or (f'queue "{config.name}" has no flavor for {sorted(wanted)}',)
            return Candidates((), why, why)
        per_group.append(options)
    out: list[Assignment] = []
    for combo in itertools.islice(itertools.product(*per_group), MAX_COMBINATIONS):
        usage: dict[FR, int] = {}
        for _, part in combo:
            usage.update(part)
        fit = book.fits(config.name, usage)
        assignment = Assignment(tuple(flavor for flavor, _ in combo), usage, fit)
        if assignment.node_labels() is None:
            reasons.append(f"flavors {assignment.describe()} need conflicting node labels")
            summaries.append(reasons[-1])
            continue
        if fit.mode in (Mode.NOFIT, Mode.PREEMPT):
            reasons.append(fit.reason)
            summaries.append(fit.stable)
        if fit.mode == Mode.NOFIT:
            continue
        out.append(assignment)
    out.sort(key=lambda a: a.mode)  # stable: the queue's flavor order within a mode
    return Candidates(tuple(out), tuple(reasons), tuple(summaries))
