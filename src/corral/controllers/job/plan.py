"""The Job controller's decisions, as a pure function of a snapshot.

``plan(job, pods, now)`` looks at one Job and the pods it controls and returns the pods to
create and delete, the status to write, whether to delete the Job (``ttlSecondsAfterFinished``)
and when to look again. As Kubernetes' job controller:

- **NonIndexed**: up to ``parallelism`` pods run at once, never more than the successes still
  missing (``completions - succeeded``), so successes never exceed ``completions``. Without
  ``completions`` (a work queue) the job is done once a pod succeeded and none is running.
- **Indexed**: each index ``0..completions-1`` needs one successful pod. A pod of index ``i`` is
  named ``<job>-<i>-<random>``, carries the ``batch.kubernetes.io/job-completion-index``
  annotation and label, ``hostname: <job>-<i>``, and gets ``JOB_COMPLETION_INDEX`` from that
  annotation through the downward API (``fieldRef``), which corral's agent resolves.
  ``status.completedIndexes`` lists the done indexes (``"0-2,5"``); extra pods of an index are
  deleted.
- Failures: with ``restartPolicy: Never`` each failed pod counts; the job fails when the
  count exceeds ``backoffLimit``. A failed pod's replacement waits 10 s after the last failure,
  doubling per failure since the last success, at most 6 minutes (Kubernetes' backoff). With ``OnFailure`` the agent restarts containers in place,
  and container restarts count too (the job fails once they reach ``backoffLimit``).
  ``activeDeadlineSeconds`` past ``startTime`` fails it too.
- Finishing follows Kubernetes 1.31: first ``SuccessCriteriaMet`` (reason CompletionsReached)
  or ``FailureTarget`` (BackoffLimitExceeded, DeadlineExceeded) while the remaining pods are
  deleted, then ``Complete`` (with ``completionTime``) or ``Failed`` once none is left.
- ``suspend: true`` deletes the active pods and sets ``Suspended``; resuming resets ``startTime``.
- Counts come from the pods the job still has (Kubernetes also keeps a tracking finalizer on
  them; corral does not, so a finished pod deleted by hand before the job finishes is
  counted again by a replacement — see docs/workloads.md). ``status.succeeded``/``failed``
  never decrease.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from corral.api.registry import Obj
from corral.controllers import podutil
from corral.util.clock import format_timestamp, parse_timestamp

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"
RETRY_BASE_SECONDS = 10.0
RETRY_MAX_SECONDS = 360.0


@dataclass
class Plan:
    create: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    delete_job: bool = False
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue_after: float | None = None


def pod_index(pod: Obj) -> int | None:
    meta = podutil.metadata(pod)
    text = (meta.get("annotations") or {}).get(INDEX_KEY) or (meta.get("labels") or {}).get(INDEX_KEY)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_indexes(text: str | None) -> set[int]:
    """``"0-2,5"`` → {0, 1, 2, 5}."""
    result: set[int] = set()
    for raw in (text or "").split(","):
        part = raw.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            result.update(range(int(low), int(high or low) + 1))
        except ValueError:
            continue
    return result


def format_indexes(indexes: set[int]) -> str:
    """{0, 1, 2, 5} → ``"0-2,5"`` (Kubernetes' compressed interval list)."""
    parts: list[str] = []
    ordered = sorted(indexes)
    start = previous = None
    for index in [*ordered, None]:
        if index is not None and previous is not None and index == previous + 1:
            previous = index
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = index
    return ",".join(parts)


def indexed_pod(job: Obj, index: int) -> Obj:
    """A pod for completion index ``index``, as Kubernetes makes it."""
    job_name = podutil.name(job)
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    pod = podutil.pod_from_template(template, job, generate_name=f"{job_name}-{index}-",
                                    labels={INDEX_KEY: str(index)}, annotations={INDEX_KEY: str(index)})
    spec = pod["spec"]
    spec.setdefault("hostname", f"{job_name}-{index}")
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        env = [e for e in container.get("env") or [] if e.get("name") != INDEX_ENV]
        env.append({"name": INDEX_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}})
        container["env"] = env
    return pod


def _finished(job: Obj) -> str | None:
    for kind in ("Complete", "Failed"):
        condition = podutil.condition(job, kind)
        if condition is not None and condition.get("status") == "True":
            return kind
    return None


def _finish_time(job: Obj) -> datetime | None:
    status = job.get("status") or {}
    if status.get("completionTime"):
        return parse_timestamp(str(status["completionTime"]))
    for kind in ("Complete", "Failed"):
        condition = podutil.condition(job, kind)
        if condition is not None and condition.get("status") == "True" and condition.get("lastTransitionTime"):
            return parse_timestamp(str(condition["lastTransitionTime"]))
    return None


def finished_at(pod: Obj) -> datetime | None:
    """When a finished pod's last container ended (``terminated.finishedAt``), else its last condition change."""
    status = pod.get("status") or {}
    times = [str(((s.get("state") or {}).get("terminated") or {}).get("finishedAt") or "")
             for s in status.get("containerStatuses") or [] if isinstance(s, dict)]
    times += [str(c.get("lastTransitionTime") or "") for c in status.get("conditions") or [] if isinstance(c, dict)]
    stamps = [parse_timestamp(t) for t in times if t]
    return max(stamps) if stamps else None


def retry_at(failed_pods: list[Obj], succeeded_pods: list[Obj]) -> datetime | None:
    """When a replacement may start after failures (Kubernetes' pod failure backoff): 10 s after the
    last failure, doubling per failure since the last success, at most 6 minutes."""
    last_success = max((t for t in (finished_at(p) for p in succeeded_pods) if t is not None), default=None)
    failures = [t for t in (finished_at(p) for p in failed_pods) if t is not None
                and (last_success is None or t > last_success)]
    if not failures:
        return None
    delay = min(RETRY_BASE_SECONDS * 2 ** (len(failures) - 1), RETRY_MAX_SECONDS)
    return max(failures) + timedelta(seconds=delay)


def _ranked_for_deletion(pods: list[Obj], now: datetime) -> list[Obj]:
    """Not-ready and unscheduled pods first (as for ReplicaSets)."""
    return sorted(pods, key=lambda p: (1 if (p.get("spec") or {}).get("nodeName") else 0,
                                       1 if podutil.is_ready(p) else 0,
                                       -(podutil.ready_for(p, now) or 0.0)))


def plan(job: Obj, pods: list[Obj], now: datetime) -> Plan:
    spec = job.get("spec") or {}
    old = job.get("status") or {}
    result = Plan()
    stamp = format_timestamp(now)
    owned = [p for p in pods if podutil.is_controlled_by(p, job)]
    active = [p for p in owned if podutil.is_active(p)]
    terminating = [p for p in owned if podutil.is_terminating(p) and podutil.phase(p) not in podutil.FINISHED_PHASES]
    succeeded_pods = [p for p in owned if podutil.phase(p) == "Succeeded"]
    failed_pods = [p for p in owned if podutil.phase(p) == "Failed"]
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism") or 0) if spec.get("parallelism") is not None else 1
    conditions: list[dict[str, Any]] = [dict(c) for c in old.get("conditions") or [] if isinstance(c, dict)]
    status: dict[str, Any] = dict(old)

    completed: set[int] = set()
    if indexed:
        completed = parse_indexes(old.get("completedIndexes"))
        completed |= {i for i in (pod_index(p) for p in succeeded_pods) if i is not None and i < int(completions or 0)}
        succeeded = len(completed)
        status["completedIndexes"] = format_indexes(completed)
    else:
        succeeded = max(int(old.get("succeeded") or 0), len(succeeded_pods))
    failed = max(int(old.get("failed") or 0), len(failed_pods))

    finished = _finished(job)
    if finished is not None:
        result.delete = [podutil.name(p) for p in active]
        ttl = spec.get("ttlSecondsAfterFinished")
        finish = _finish_time(job)
        if ttl is not None and finish is not None:
            expires = finish + timedelta(seconds=int(ttl))
            if now >= expires:
                result.delete_job = True
            else:
                result.requeue_after = (expires - now).total_seconds() + 0.05
        status.update(active=0, ready=0, terminating=len(terminating))
        result.status = status
        return result

    suspended = bool(spec.get("suspend"))
    was_suspended = (podutil.condition(job, "Suspended") or {}).get("status") == "True"
    if suspended:
        result.delete = [podutil.name(p) for p in active]
        if not was_suspended:
            conditions = podutil.set_condition(conditions, "Suspended", "True", "JobSuspended", "Job suspended", now=stamp)
            result.events.append(("Normal", "Suspended", "Job suspended"))
        status.update(active=0, ready=0, succeeded=succeeded, failed=failed, terminating=len(terminating) + len(active),
                      conditions=conditions)
        result.status = status
        return result
    if was_suspended:
        conditions = podutil.set_condition(conditions, "Suspended", "False", "JobResumed", "Job resumed", now=stamp)
        status["startTime"] = stamp
        result.events.append(("Normal", "Resumed", "Job resumed"))
    status.setdefault("startTime", stamp)
    started = parse_timestamp(str(status["startTime"]))

    failure_target = podutil.condition(job, "FailureTarget")
    success_target = podutil.condition(job, "SuccessCriteriaMet")
    backoff_limit = int(spec.get("backoffLimit") or 0) if spec.get("backoffLimit") is not None else 6
    restart_policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    deadline = spec.get("activeDeadlineSeconds")
    if failure_target is None and success_target is None:
        reason = message = None
        if restart_policy == "OnFailure":
            restarts = failed + sum(podutil.restarts(p) for p in active)
            over = restarts > 0 if backoff_limit == 0 else restarts >= backoff_limit
        else:
            over = failed > backoff_limit
        if over:
            reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        elif deadline is not None and now >= started + timedelta(seconds=int(deadline)):
            reason, message = "DeadlineExceeded", "Job was active longer than specified deadline"
        elif deadline is not None:
            result.requeue_after = (started + timedelta(seconds=int(deadline)) - now).total_seconds() + 0.05
        if reason is not None and message is not None:
            conditions = podutil.set_condition(conditions, "FailureTarget", "True", reason, message, now=stamp)
            failure_target = conditions[-1]
            result.events.append(("Warning", reason, message))
        else:
            done = (succeeded >= int(completions) if completions is not None
                    else succeeded > 0 and not active)
            if done:
                conditions = podutil.set_condition(conditions, "SuccessCriteriaMet", "True", "CompletionsReached",
                                                   "Reached expected number of succeeded pods", now=stamp)
                success_target = conditions[-1]

    if failure_target is not None or success_target is not None:
        result.delete = [podutil.name(p) for p in active]
        if not active and not terminating:
            target = failure_target or success_target or {}
            if failure_target is not None:
                conditions = podutil.set_condition(conditions, "Failed", "True", str(target.get("reason")),
                                                   str(target.get("message")), now=stamp)
            else:
                conditions = podutil.set_condition(conditions, "Complete", "True", "CompletionsReached",
                                                   "Reached expected number of succeeded pods", now=stamp)
                status["completionTime"] = stamp
                result.events.append(("Normal", "Completed", "Job completed"))
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None:
                result.requeue_after = float(ttl) + 0.05
        status.update(active=0, ready=0, succeeded=succeeded, failed=failed,
                      terminating=len(terminating) + len(active), conditions=conditions)
        result.status = status
        return result

    # running: bring the active pods to what is wanted; replacements of failed pods wait for the backoff
    wait_until = retry_at(failed_pods, succeeded_pods)
    may_create = wait_until is None or now >= wait_until
    if indexed:
        total = int(completions or 0)
        by_index: dict[int, list[Obj]] = {}
        for pod in active:
            index = pod_index(pod)
            if index is None or index >= total or index in completed:
                result.delete.append(podutil.name(pod))
            else:
                by_index.setdefault(index, []).append(pod)
        for extra in by_index.values():
            result.delete.extend(podutil.name(p) for p in _ranked_for_deletion(extra, now)[1:])
        running = len(by_index)
        missing = [i for i in range(total) if i not in completed and i not in by_index]
        if running > parallelism:
            surplus = _ranked_for_deletion([pods[0] for pods in by_index.values()], now)[:running - parallelism]
            result.delete.extend(podutil.name(p) for p in surplus)
        room = max(parallelism - running, 0) if may_create else 0
        result.create = [indexed_pod(job, index) for index in missing[:room]]
    else:
        if completions is not None:
            wanted = min(parallelism, max(int(completions) - succeeded, 0))
        else:
            # a work queue: after the first success no new pod starts, the running ones finish
            wanted = min(len(active), parallelism) if succeeded > 0 else parallelism
        if len(active) > wanted:
            result.delete = [podutil.name(p) for p in _ranked_for_deletion(active, now)[:len(active) - wanted]]
        elif len(active) < wanted and may_create:
            result.create = [podutil.pod_from_template(spec.get("template"), job, generate_name=f"{podutil.name(job)}-")
                             for _ in range(wanted - len(active))]
    if not may_create and wait_until is not None:
        result.requeue_after = min(result.requeue_after or float("inf"), (wait_until - now).total_seconds() + 0.05)
    deleted = set(result.delete)
    still = [p for p in active if podutil.name(p) not in deleted]
    status.update(active=len(still) + len(result.create), ready=sum(1 for p in still if podutil.is_ready(p)),
                  succeeded=succeeded, failed=failed, terminating=len(terminating) + len(deleted))
    if conditions:
        status["conditions"] = conditions
    result.status = status
    return result
