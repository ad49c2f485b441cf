"""Queue admission policy: quota, flavors, fair share, ordering, preemption, explanations.

Pure policy, no I/O. (``corral.scheduler.admission`` is the scheduler's seam that calls it.) The live scheduler builds a :class:`QuotaBook` from its Queue and
PodGroup caches, calls :func:`plan_cycle` (or :func:`candidates` + ``QuotaBook.add`` from its
own cycle) with a placement function, and applies the decisions: admit and bind together,
evict victims, write conditions. The simulator and the benchmark call the same functions.

- :mod:`.quota`: Queue config, amounts, the lending/borrowing accounting, fair share.
- :mod:`.workload`: a PodGroup or pod as a workload; which queue it belongs to.
- :mod:`.assign`: flavor assignment within quota.
- :mod:`.preemption`: minimal, gang-aware, policy-respecting victim selection.
- :mod:`.cycle`: ordering (priority, age, fair share, StrictFIFO/BestEffortFIFO, ageing).
"""

from corral.scheduler.quota.assign import Assignment, Candidates, candidates
from corral.scheduler.quota.cycle import (
    ADMIT,
    BLOCKED,
    HELD,
    NO_QUEUE,
    PREEMPT,
    UNPLACEABLE,
    WAIT,
    CycleResult,
    Decision,
    Policy,
    plan_cycle,
)
from corral.scheduler.quota.preemption import find_victims
from corral.scheduler.quota.quota import (
    FR,
    Admitted,
    Fit,
    Mode,
    QueueConfig,
    QuotaBook,
    milli,
    parse_queue,
)
from corral.scheduler.quota.workload import PodSet, Workload, pod_sets_of, resolve_queue

__all__ = [
    "ADMIT", "BLOCKED", "FR", "HELD", "NO_QUEUE", "PREEMPT", "UNPLACEABLE", "WAIT",
    "Admitted", "Assignment", "Candidates", "CycleResult", "Decision", "Fit", "Mode", "PodSet", "Policy",
    "QueueConfig", "QuotaBook", "Workload", "candidates", "find_victims", "milli", "parse_queue",
    "plan_cycle", "pod_sets_of", "resolve_queue",
]
