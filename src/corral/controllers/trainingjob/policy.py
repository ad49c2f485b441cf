"""The TrainingJob controller's decisions, as pure functions of a snapshot.

``decide(job, pods, podgroup, now, config)`` looks at one job, the pods it owns and its
PodGroup, and returns a :class:`Plan`: the status to write, the objects to create or
delete, the events to record and when to look again. The reconciler only does the I/O.
Nothing here reads a clock, a file or the network, so every rule is unit-tested directly.

The model of a run:

- A job runs as a sequence of **attempts** (``status.attempt``). Each attempt is one gang:
  one PodGroup and ``worldSize`` worker pods ``<job>-worker-<i>``, labelled with the attempt.
  ``status.createdAttempt`` says the attempt's pods were created, so a pod missing from a
  created attempt was lost (deleted, evicted, preempted), not merely not yet made.
- A **gang restart** (worker failure, node loss, preemption, elastic shrink, resume after
  suspend) ends the attempt: its pods are deleted gracefully (SIGTERM, then the grace
  period, which the training script uses to checkpoint), and once they are all gone and the
  backoff has passed the next attempt starts from the checkpoint.
- Failures (non-zero exit, OOM, liveness kill, eviction, node loss, a pod deleted by hand)
  count against ``backoffLimit``; preemption and elastic shrinks do not. Preempted jobs go
  back to their queue with the same priority and keep their accumulated run time.
- Elastic jobs (``minReplicas``..``maxReplicas``) start at ``maxReplicas``; when workers are
  lost (not a plain non-zero exit) they restart with fewer workers, down to ``minReplicas``,
  instead of failing; when some workers cannot be placed within ``scheduleTimeoutSeconds``
  they restart with the placed ones.

Workers learn the master address through a rendezvous file in the checkpoint directory:
rank 0 publishes its ``POD_IP`` there and the others wait for it (see
:data:`RENDEZVOUS_SCRIPT`). That works with the agent's per-pod loopback IPs and, on a
cluster, with a shared checkpoint volume.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, Literal

from corral.api.registry import Obj
from corral.util.clock import format_timestamp, parse_timestamp
from corral.util.quantity import QuantityError, parse_quantity

API_VERSION = "corral.dev/v1alpha1"
JOB_LABEL = "corral.dev/training-job"
INDEX_LABEL = "corral.dev/replica-index"
GROUP_LABEL = "corral.dev/pod-group"
QUEUE_LABEL = "corral.dev/queue"
ATTEMPT_LABEL = "corral.dev/attempt"
PREEMPTED_ANNOTATION = "corral.dev/preempted-by"
FINISHED_PHASES = ("Succeeded", "Failed")
DEFAULT_SCHEDULE_TIMEOUT = 60.0
FORCE_AFTER = 30.0  # seconds past a pod's deletion deadline before it is force-deleted

# Rank 0 publishes its pod IP in the rendezvous file; the other ranks wait for it. Then the
# worker's own command runs with MASTER_ADDR (and torchrun's PET_MASTER_ADDR) set. No "$$" and
# no "$(NAME)" in here: Kubernetes (and the agent) expand those in commands.
RENDEZVOUS_SCRIPT = r"""f="$CORRAL_RENDEZVOUS_FILE"
if [ "$NODE_RANK" = "0" ]; then
  mkdir -p "$(dirname "$f")" && printf '%s' "${POD_IP:-127.0.0.1}" > "$f.tmp" && mv -f "$f.tmp" "$f" || exit 1
else
  n=0
  while [ ! -s "$f" ]; do
    n=$((n + 1))
    if [ "$n" -gt "${CORRAL_RENDEZVOUS_TIMEOUT_TICKS:-3000}" ]; then
      echo "corral: rank 0 never published its address in $f" >&2; exit 1
    fi
    sleep 0.1
  done
fi
MASTER_ADDR="$(cat "$f")"; PET_MASTER_ADDR="$MASTER_ADDR"; export MASTER_ADDR PET_MASTER_ADDR
exec "$@"
"""

ReplicaState = Literal["Missing", "Pending", "Placed", "Running", "Succeeded", "Failed", "Terminating", "Lost"]


@dataclass(frozen=True)
class Config:
    """Controller settings that are not on the spec."""

    data_dir: str = "/tmp/corral"
    grow_cooldown: float = 30.0  # seconds an elastic job runs at one size before it may grow


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Plan:
    """What the reconciler must do for one job."""

    status: Obj
    now: datetime
    generation: int | None = None
    create_podgroup: Obj | None = None
    delete_podgroup: bool = False
    create_pods: list[Obj] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    force_delete_pods: list[str] = field(default_factory=list)
    delete_job: bool = False
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None

    def requeue(self, seconds: float) -> None:
        seconds = max(seconds, 0.05)
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


@dataclass(frozen=True)
class Replica:
    """One worker of the current attempt, as the pods say."""

    index: int
    state: ReplicaState
    pod: Obj | None
    exit_code: int | None = None
    reason: str | None = None
    preempted: bool = False

    @property
    def lost(self) -> bool:
        """Gone for a reason other than its own exit code: deleted, evicted, node lost, preempted."""
        return self.state in ("Lost", "Terminating") or self.reason in ("Evicted", "NodeLost", "Preempted")


# ---------------------------------------------------------------- spec helpers


def world_bounds(spec: Obj) -> tuple[int, int]:
    """(min, max) workers: equal for a fixed ``replicas`` job."""
    if spec.get("minReplicas") is not None:
        return int(spec["minReplicas"]), int(spec["maxReplicas"])
    replicas = int(spec.get("replicas") or 1)
    return replicas, replicas


def is_elastic(spec: Obj) -> bool:
    low, high = world_bounds(spec)
    return spec.get("minReplicas") is not None and low < high


def backoff_seconds(spec: Obj, failures: int) -> float:
    """Wait before the attempt after the ``failures``-th failure: initial * 2**(failures-1), capped."""
    if failures <= 0:
        return 0.0
    backoff = spec.get("backoff") or {}
    initial = float(backoff.get("initialSeconds", 1.0))
    cap = float(backoff.get("maxSeconds", 60.0))
    return float(min(cap, initial * 2 ** min(failures - 1, 30)))


def master_port(job: Obj) -> int:
    """``spec.masterPort``, or a port in 20000..39999 derived from the job's uid (jobs rarely collide)."""
    port = (job.get("spec") or {}).get("masterPort")
    if port:
        return int(port)
    uid = str((job.get("metadata") or {}).get("uid") or job["metadata"]["name"])
    return 20000 + zlib.crc32(uid.encode()) % 20000


def checkpoint_dir(job: Obj, config: Config) -> str:
    """``spec.checkpoint.dir``, or ``<data dir>/checkpoints/<namespace>/<name>-<uid prefix>``."""
    explicit = ((job.get("spec") or {}).get("checkpoint") or {}).get("dir")
    if explicit:
        return str(explicit)
    metadata = job["metadata"]
    uid = str(metadata.get("uid") or "")[:8]
    name = f"{metadata['name']}-{uid}" if uid else str(metadata["name"])
    return f"{config.data_dir.rstrip('/')}/checkpoints/{metadata.get('namespace') or 'default'}/{name}"


def gpus_per_worker(template: Obj) -> int:
    total = 0
    for container in (template.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        value = (resources.get("limits") or {}).get("nvidia.com/gpu") or (resources.get("requests") or {}).get(
            "nvidia.com/gpu"
        )
        if value is not None:
            total += int(str(value))
    return total


def pod_name(job_name: str, index: int) -> str:
    return f"{job_name}-worker-{index}"


# ---------------------------------------------------------------- objects the controller creates


def owner_reference(job: Obj) -> Obj:
    return {"apiVersion": API_VERSION, "kind": "TrainingJob", "name": job["metadata"]["name"],
            "uid": job["metadata"].get("uid", ""), "controller": True, "blockOwnerDeletion": True}


def desired_podgroup(job: Obj, world: int) -> Obj:
    metadata = job["metadata"]
    spec = job.get("spec") or {}
    low, _ = world_bounds(spec)
    labels = {JOB_LABEL: metadata["name"]}
    if spec.get("queue"):
        labels[QUEUE_LABEL] = spec["queue"]
    group_spec: Obj = {"minMember": min(low, world) if is_elastic(spec) else world}
    for key in ("queue", "priorityClassName", "priority", "scheduleTimeoutSeconds"):
        if spec.get(key) is not None:
            group_spec[key] = spec[key]
    return {"apiVersion": API_VERSION, "kind": "PodGroup",
            "metadata": {"name": metadata["name"], "namespace": metadata.get("namespace") or "default",
                         "labels": labels, "ownerReferences": [owner_reference(job)]},
            "spec": group_spec}


def worker_pod(job: Obj, index: int, world: int, attempt: int, config: Config) -> Obj:
    """Worker ``index`` of a ``world``-worker gang, wired for torch.distributed and torchrun."""
    metadata = job["metadata"]
    spec = job["spec"]
    status = job.get("status") or {}
    template = copy.deepcopy(spec["template"])
    template_meta = template.get("metadata") or {}
    pod_spec = template["spec"]
    name = metadata["name"]
    labels = dict(template_meta.get("labels") or {})
    labels.update({JOB_LABEL: name, INDEX_LABEL: str(index), GROUP_LABEL: name, ATTEMPT_LABEL: str(attempt)})
    if spec.get("queue"):
        labels[QUEUE_LABEL] = spec["queue"]
    nproc = int(spec.get("nprocPerNode") or gpus_per_worker(template) or 1)
    ckpt = checkpoint_dir(job, config)
    uid = str(metadata.get("uid") or "")[:8] or "job"
    env = {
        "MASTER_PORT": str(master_port(job)), "WORLD_SIZE": str(world * nproc), "RANK": str(index * nproc),
        "NODE_RANK": str(index), "LOCAL_RANK": "0", "NPROC_PER_NODE": str(nproc), "NNODES": str(world),
        "PET_NNODES": str(world), "PET_NODE_RANK": str(index), "PET_NPROC_PER_NODE": str(nproc),
        "PET_MASTER_PORT": str(master_port(job)),
        "CORRAL_RESTART_COUNT": str(int(status.get("restarts") or 0)), "CORRAL_ATTEMPT": str(attempt),
        "CORRAL_CHECKPOINT_DIR": ckpt, "CORRAL_TRAINING_JOB": name,
        "CORRAL_RENDEZVOUS_FILE": f"{ckpt}/.corral/rendezvous-{uid}-{attempt}",
    }
    for container in pod_spec["containers"]:
        existing = [item for item in container.get("env") or [] if item.get("name") not in env]
        ours = [{"name": key, "value": value} for key, value in env.items()]
        command = list(container.get("command") or [])
        if command:
            container["command"] = ["/bin/sh", "-c", RENDEZVOUS_SCRIPT, "corral-rendezvous",
                                    *command, *(container.get("args") or [])]
            container.pop("args", None)
        elif index == 0:
            ours.append({"name": "MASTER_ADDR", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        container["env"] = ours + existing
    pod_spec["restartPolicy"] = "Never"
    if spec.get("priorityClassName") and not pod_spec.get("priorityClassName"):
        pod_spec["priorityClassName"] = spec["priorityClassName"]
    if spec.get("priority") is not None and pod_spec.get("priority") is None:
        pod_spec["priority"] = spec["priority"]
    annotations = dict(template_meta.get("annotations") or {})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name(name, index), "namespace": metadata.get("namespace") or "default",
                         "labels": labels, "annotations": annotations, "ownerReferences": [owner_reference(job)]},
            "spec": pod_spec}


# ---------------------------------------------------------------- reading pods


def pod_attempt(pod: Obj) -> int | None:
    value = ((pod.get("metadata") or {}).get("labels") or {}).get(ATTEMPT_LABEL)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def pod_index(pod: Obj) -> int | None:
    value = ((pod.get("metadata") or {}).get("labels") or {}).get(INDEX_LABEL)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def was_preempted(pod: Obj) -> bool:
    """The scheduler's mark: a DisruptionTarget condition about preemption, or corral's annotation."""
    if PREEMPTED_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {}):
        return True
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True" and "Preempt" in str(
            condition.get("reason") or ""
        ):
            return True
    return str((pod.get("status") or {}).get("reason") or "") in ("Preempted", "PreemptionByScheduler")


def terminated_state(pod: Obj) -> tuple[int | None, str | None]:
    """Exit code and reason of the first container that failed (or the last terminated)."""
    found: tuple[int | None, str | None] = (None, None)
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        terminated = state.get("terminated") or (status.get("lastState") or {}).get("terminated")
        if terminated:
            code = terminated.get("exitCode")
            found = (int(code) if code is not None else None, terminated.get("reason"))
            if code not in (0, None):
                return found
    return found


def replica_from_pod(index: int, pod: Obj | None, created: bool, preempted: bool = False) -> Replica:
    """The state of worker ``index``; ``preempted`` when the scheduler's events say so."""
    if pod is None:
        return Replica(index, "Lost" if created else "Missing", None, reason="Preempted" if preempted else None,
                       preempted=preempted)
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    preempted = preempted or was_preempted(pod)
    code, reason = terminated_state(pod)
    if phase == "Succeeded":
        return Replica(index, "Succeeded", pod, code if code is not None else 0, reason)
    if phase == "Failed":
        pod_reason = status.get("reason")
        return Replica(index, "Failed", pod, code, pod_reason or reason or "Error", preempted)
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return Replica(index, "Terminating", pod, code, "Preempted" if preempted else "Deleted", preempted)
    if phase == "Running":
        return Replica(index, "Running", pod)
    if (pod.get("spec") or {}).get("nodeName"):
        return Replica(index, "Placed", pod)
    return Replica(index, "Pending", pod)


def describe(replica: Replica) -> str:
    what = f"worker {replica.index}"
    if replica.preempted:
        return f"{what} was preempted"
    if replica.state == "Lost":
        return f"{what} was deleted"
    if replica.state == "Terminating":
        return f"{what} is being deleted"
    if replica.reason == "OOMKilled":
        return f"{what} ran out of memory (OOMKilled)"
    if replica.exit_code is not None:
        return f"{what} failed with exit code {replica.exit_code} ({replica.reason or 'Error'})"
    return f"{what} failed ({replica.reason or 'Error'})"


# ---------------------------------------------------------------- conditions


def set_condition(status: Obj, kind: str, value: bool, reason: str, message: str, *, now: datetime,
                  generation: int | None) -> None:
    """Set a condition; ``lastTransitionTime`` moves only when the status flips."""
    conditions: list[Obj] = status.setdefault("conditions", [])
    text = "True" if value else "False"
    for condition in conditions:
        if condition.get("type") == kind:
            if condition.get("status") != text:
                condition["lastTransitionTime"] = format_timestamp(now)
            condition.update(status=text, reason=reason, message=message)
            if generation is not None:
                condition["observedGeneration"] = generation
            return
    new: Obj = {"type": kind, "status": text, "reason": reason, "message": message,
                "lastTransitionTime": format_timestamp(now)}
    if generation is not None:
        new["observedGeneration"] = generation
    conditions.append(new)


PHASE_CONDITIONS = ("Admitted", "Running", "Restarting", "Suspended", "Succeeded", "Failed")


def set_phase(plan: Plan, phase: str, reason: str, message: str,
              event_type: Literal["Normal", "Warning"] = "Normal") -> None:
    """Move to ``phase``, keep the conditions consistent with it, and record an event when it changes."""
    status, now, generation = plan.status, plan.now, plan.generation
    previous = status.get("phase")
    status["phase"] = phase
    for kind in ("Running", "Restarting", "Suspended", "Succeeded", "Failed"):
        if kind == phase:
            set_condition(status, kind, True, reason, message, now=now, generation=generation)
        elif any(c.get("type") == kind for c in status.get("conditions") or []):
            set_condition(status, kind, False, reason, message, now=now, generation=generation)
    if phase in ("Admitted", "Running"):
        set_condition(status, "Admitted", True, "Admitted", "the gang is admitted and placed", now=now,
                      generation=generation)
    elif phase in ("Pending", "Restarting", "Suspended"):
        set_condition(status, "Admitted", False, reason, message, now=now, generation=generation)
    if previous != phase:
        plan.events.append(Event(event_type, reason, message))


# ---------------------------------------------------------------- the decision


def _seconds_since(text: str | None, now: datetime) -> float | None:
    if not text:
        return None
    return (now - parse_timestamp(text)).total_seconds()


def _credit_run_time(status: Obj, now: datetime) -> None:
    """Add the time since ``runningSince`` to ``runSeconds`` (time the gang actually trained)."""
    since = _seconds_since(status.pop("runningSince", None), now)
    if since is not None and since > 0:
        status["runSeconds"] = round(float(status.get("runSeconds") or 0.0) + since, 3)


def _end_attempt(plan: Plan, pods: list[Obj], phase: str, reason: str, message: str, *,
                 event_type: Literal["Normal", "Warning"] = "Warning") -> None:
    status, now = plan.status, plan.now
    _credit_run_time(status, now)
    status["attempt"] = int(status.get("attempt") or 0) + 1
    status["createdAttempt"] = None
    status["lastRestartTime"] = format_timestamp(now)
    status["lastRestartReason"] = reason
    plan.delete_pods = sorted(_names(pods))
    plan.delete_podgroup = True
    _mark_stopped(status, plan.delete_pods)
    set_phase(plan, phase, reason, message, event_type)


def stuck_pods(pods: list[Obj], now: datetime) -> list[str]:
    """Terminating pods nobody will finish: never placed, or past their deadline by FORCE_AFTER seconds.

    A node that died takes its agent with it; without a force delete the next attempt
    (same pod names) would wait for ever.
    """
    stuck = []
    for pod in pods:
        deleting = (pod.get("metadata") or {}).get("deletionTimestamp")
        if not deleting:
            continue
        unplaced = not (pod.get("spec") or {}).get("nodeName")
        if unplaced or (now - parse_timestamp(deleting)).total_seconds() > FORCE_AFTER:
            stuck.append(pod["metadata"]["name"])
    return sorted(stuck)


def _names(pods: list[Obj]) -> list[str]:
    return [pod["metadata"]["name"] for pod in pods if not (pod.get("metadata") or {}).get("deletionTimestamp")]


def _finish(plan: Plan, pods: list[Obj], phase: str, reason: str, message: str) -> None:
    status, now = plan.status, plan.now
    _credit_run_time(status, now)
    status["completionTime"] = format_timestamp(now)
    plan.delete_pods = sorted(_names([pod for pod in pods if (pod.get("status") or {}).get("phase")
                                      not in ("Succeeded", "Failed")]))
    _mark_stopped(status, plan.delete_pods)
    set_phase(plan, phase, reason, message, "Normal" if phase == "Succeeded" else "Warning")


def _mark_stopped(status: Obj, names: list[str]) -> None:
    """Workers the plan stops are no longer Running (kubectl's WORKERS column counts Running)."""
    for entry in status.get("replicas") or []:
        if entry.get("pod") in names and entry.get("phase") not in ("Succeeded", "Failed"):
            entry["phase"] = "Stopped"


def decide(job: Obj, pods: list[Obj], podgroup: Obj | None, now: datetime, config: Config, *,
           preempted: Collection[str] = (), spare_workers: int = 0) -> Plan:
    """Everything the controller should do for ``job`` right now.

    ``preempted`` names worker pods the scheduler preempted (it records a ``Preempted``
    event before it deletes them), so their loss is not counted as a failure.
    ``spare_workers``: how many more workers the nodes have room for (see
    :func:`spare_workers`); a running elastic job below ``maxReplicas`` grows by that
    many, at most once per ``config.grow_cooldown`` seconds.
    """
    metadata = job["metadata"]
    spec = job.get("spec") or {}
    generation = metadata.get("generation")
    status: Obj = copy.deepcopy(job.get("status") or {})
    plan = Plan(status=status, now=now, generation=generation)
    status.setdefault("restarts", 0)
    status.setdefault("failures", 0)
    status.setdefault("preemptions", 0)
    status.setdefault("attempt", 0)
    status.setdefault("createTime", metadata.get("creationTimestamp") or format_timestamp(now))
    status["checkpointDir"] = checkpoint_dir(job, config)
    if generation is not None:
        status["observedGeneration"] = generation
    low, high = world_bounds(spec)
    world = int(status.get("worldSize") or high)
    world = max(low, min(high, world))
    status["worldSize"] = world
    attempt = int(status["attempt"])

    current = [pod for pod in pods if pod_attempt(pod) == attempt]
    stale = [pod for pod in pods if pod_attempt(pod) != attempt]
    # Pods of the attempt beyond the world size (a shrink) are stale too.
    stale += [pod for pod in current if (pod_index(pod) or 0) >= world or pod_index(pod) is None]
    current = [pod for pod in current if pod not in stale]

    # ---- finished: keep the record, clean up, and honour ttlSecondsAfterFinished.
    if status.get("phase") in FINISHED_PHASES:
        plan.delete_pods = sorted(_names([pod for pod in pods if (pod.get("status") or {}).get("phase")
                                          not in ("Succeeded", "Failed")]))
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is not None:
            age = _seconds_since(status.get("completionTime"), now) or 0.0
            if age >= float(ttl):
                plan.delete_job = True
                plan.delete_pods = sorted(_names(pods))
                plan.delete_podgroup = podgroup is not None
                plan.events.append(Event("Normal", "TTLExpired",
                                         f"deleting the job {ttl}s after it finished (ttlSecondsAfterFinished)"))
            else:
                plan.requeue(float(ttl) - age)
        return plan

    # ---- activeDeadlineSeconds counts from the first start.
    deadline = spec.get("activeDeadlineSeconds")
    started = _seconds_since(status.get("startTime"), now)
    if deadline is not None and started is not None:
        if started >= float(deadline):
            _finish(plan, pods, "Failed", "DeadlineExceeded",
                    f"the job ran longer than activeDeadlineSeconds ({deadline}s)")
            return plan
        plan.requeue(float(deadline) - started)

    # ---- suspend: stop every worker gracefully (they checkpoint on SIGTERM) and release the queue.
    if spec.get("suspend"):
        if status.get("phase") != "Suspended":
            _end_attempt(plan, pods, "Suspended", "Suspended",
                         "the job is suspended: its workers are stopped and it holds no quota",
                         event_type="Normal")
            return plan
        plan.delete_pods = sorted(_names(pods))
        plan.delete_podgroup = podgroup is not None
        return plan
    if status.get("phase") == "Suspended":
        set_phase(plan, "Pending", "Resumed", "resumed from the last checkpoint; waiting for the queue to admit the gang")

    # ---- the previous attempt must be gone before the next one starts (same pod names, same port).
    if stale:
        plan.delete_pods = sorted(_names(stale))
        plan.force_delete_pods = stuck_pods(stale, now)
        plan.requeue(1.0)
        if status.get("createdAttempt") != attempt:
            return plan
    if status.get("createdAttempt") != attempt:
        if podgroup is not None and (podgroup.get("metadata") or {}).get("labels", {}).get(ATTEMPT_LABEL) not in (
            None, str(attempt)
        ):
            plan.delete_podgroup = True
            plan.requeue(0.5)
            return plan
        if stale:
            return plan
        since_restart = _seconds_since(status.get("lastRestartTime"), now)
        wait = backoff_seconds(spec, int(status.get("failures") or 0)) - (since_restart or 0.0)
        if since_restart is not None and wait > 0 and status.get("lastRestartReason") == "WorkerFailed" \
                and status.get("phase") == "Restarting":
            plan.requeue(wait)
            return plan
        if podgroup is None or podgroup.get("metadata", {}).get("deletionTimestamp"):
            if podgroup is not None:
                plan.requeue(0.5)
                return plan
            group = desired_podgroup(job, world)
            group["metadata"]["labels"][ATTEMPT_LABEL] = str(attempt)
            plan.create_podgroup = group
        existing = {pod_index(pod) for pod in current}
        plan.create_pods = [worker_pod(job, index, world, attempt, config)
                            for index in range(world) if index not in existing]
        status["createdAttempt"] = attempt
        status["replicas"] = [{"index": index, "pod": pod_name(metadata["name"], index), "phase": "Pending"}
                              for index in range(world)]
        if not status.get("phase"):
            set_phase(plan, "Pending", "Created",
                      f"created {world} worker pod(s) and PodGroup {metadata['name']}; waiting for admission",
                      )
        return plan

    # ---- the attempt is running: read the workers.
    by_index = {pod_index(pod): pod for pod in current}
    replicas = [replica_from_pod(index, by_index.get(index), True, pod_name(metadata["name"], index) in preempted)
                for index in range(world)]
    status["replicas"] = [_replica_status(metadata["name"], replica) for replica in replicas]

    success_policy = spec.get("successPolicy") or "AllWorkers"
    if success_policy == "RankZero" and replicas[0].state == "Succeeded":
        _finish(plan, pods, "Succeeded", "Succeeded", "rank 0 exited 0 (successPolicy RankZero)")
        return plan
    if all(replica.state == "Succeeded" for replica in replicas):
        _finish(plan, pods, "Succeeded", "Succeeded", f"all {world} workers exited 0")
        return plan

    broken = [replica for replica in replicas if replica.state in ("Failed", "Lost", "Terminating")]
    if broken:
        return _handle_broken(plan, job, pods, broken, world)

    # ---- healthy: Pending -> Admitted -> Running.
    placed = [replica for replica in replicas if replica.state in ("Placed", "Running", "Succeeded")]
    if placed and not status.get("admittedTime"):
        status["admittedTime"] = format_timestamp(now)
        created = _seconds_since(status.get("createTime"), now)
        if created is not None:
            status["queueWaitSeconds"] = round(max(created, 0.0), 3)
    if all(replica.state in ("Running", "Succeeded") for replica in replicas):
        status.setdefault("startTime", format_timestamp(now))
        if not status.get("runningSince"):
            status["runningSince"] = format_timestamp(now)
        master = replicas[0].pod and (replicas[0].pod.get("status") or {}).get("podIP")
        if master:
            status["masterAddr"] = master
        set_phase(plan, "Running", "Running",
                  f"all {world} workers are running (attempt {attempt}, restarts {status['restarts']})")
        if is_elastic(spec) and world < high and spare_workers:
            since = _seconds_since(status.get("lastRestartTime") or status.get("runningSince"), now) or 0.0
            if since >= config.grow_cooldown:
                grown = min(high, world + spare_workers)
                status["worldSize"] = grown
                status["restarts"] = int(status["restarts"]) + 1
                _end_attempt(plan, pods, "Restarting", "ElasticGrow",
                             f"capacity for {grown - world} more worker(s) is free; restarting with {grown} "
                             f"workers from the last checkpoint", event_type="Normal")
                return plan
            plan.requeue(config.grow_cooldown - since)
    elif len(placed) == world:
        set_phase(plan, "Admitted", "Admitted", f"all {world} workers are placed; starting")
    elif placed and is_elastic(spec):
        # Partly placed elastic gang: give the scheduler a while, then go on with what fits.
        waited = _seconds_since(status.get("admittedTime"), now) or 0.0
        timeout = float(spec.get("scheduleTimeoutSeconds") or DEFAULT_SCHEDULE_TIMEOUT)
        if len(placed) >= low and waited >= timeout:
            status["worldSize"] = len(placed)
            _end_attempt(plan, pods, "Restarting", "ElasticShrink",
                         f"only {len(placed)} of {world} workers could be placed in {timeout:.0f}s; "
                         f"restarting with {len(placed)} workers", event_type="Normal")
            status["restarts"] = int(status["restarts"]) + 1
            return plan
        plan.requeue(max(timeout - waited, 0.5))
    elif status.get("phase") not in ("Pending", "Restarting"):
        set_phase(plan, "Pending", "Queued", "waiting for the queue to admit and place the gang")
    if status.get("phase") == "Restarting" and not all(r.state == "Running" for r in replicas):
        set_condition(status, "Restarting", True, status.get("lastRestartReason") or "Restarting",
                      f"attempt {attempt} is starting from the last checkpoint", now=now, generation=generation)
    return plan


def _replica_status(job_name: str, replica: Replica) -> Obj:
    entry: Obj = {"index": replica.index, "pod": pod_name(job_name, replica.index), "phase": replica.state}
    pod = replica.pod or {}
    uid = (pod.get("metadata") or {}).get("uid")
    if uid:
        entry["uid"] = uid
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        entry["node"] = node
    ip = (pod.get("status") or {}).get("podIP")
    if ip:
        entry["podIP"] = ip
    if replica.exit_code is not None:
        entry["exitCode"] = replica.exit_code
    if replica.reason:
        entry["reason"] = replica.reason
    return entry


def _handle_broken(plan: Plan, job: Obj, pods: list[Obj], broken: list[Replica], world: int) -> Plan:
    spec = job.get("spec") or {}
    status = plan.status
    low, _ = world_bounds(spec)
    what = "; ".join(describe(replica) for replica in broken)
    preempted = [replica for replica in broken if replica.preempted]
    lost = [replica for replica in broken if replica.lost and not replica.preempted]

    if preempted and len(preempted) == len(broken):
        # Preemption: not the job's fault. Requeue with the same priority, keep the run time.
        status["restarts"] = int(status["restarts"]) + 1
        status["preemptions"] = int(status["preemptions"]) + 1
        if is_elastic(spec) and world - len(preempted) >= low:
            status["worldSize"] = world - len(preempted)
        _end_attempt(plan, pods, "Restarting", "Preempted",
                     f"{what}; the workers save a checkpoint on SIGTERM and the job goes back to its queue "
                     f"(run time so far is kept)")
        return plan

    if is_elastic(spec) and len(lost) == len(broken) and world - len(lost) >= low:
        # Elastic: shrink instead of failing.
        status["restarts"] = int(status["restarts"]) + 1
        status["worldSize"] = world - len(lost)
        _end_attempt(plan, pods, "Restarting", "ElasticShrink",
                     f"{what}; restarting with {world - len(lost)} workers from the last checkpoint")
        return plan

    failures = int(status["failures"]) + 1
    status["failures"] = failures
    limit = int(spec.get("backoffLimit", 3))
    if spec.get("restartPolicy") == "Never":
        _finish(plan, pods, "Failed", "WorkerFailed", f"{what} (restartPolicy Never)")
        return plan
    if failures > limit:
        _finish(plan, pods, "Failed", "BackoffLimitExceeded",
                f"{what}; the gang failed {failures} times and backoffLimit is {limit}")
        return plan
    status["restarts"] = int(status["restarts"]) + 1
    wait = backoff_seconds(spec, failures)
    _end_attempt(plan, pods, "Restarting", "WorkerFailed",
                 f"{what}; restarting the gang from the last checkpoint in {wait:g}s "
                 f"(failure {failures} of backoffLimit {limit})")
    plan.requeue(wait)
    return plan


def pods_of(job: Obj, pods: list[Obj]) -> list[Obj]:
    """The pods ``job`` controls (by owner uid when the job has one, else by label)."""
    uid = job["metadata"].get("uid")
    name = job["metadata"]["name"]
    mine = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get(JOB_LABEL) != name:
            continue
        owners = meta.get("ownerReferences") or []
        if uid and owners and not any(owner.get("uid") == uid for owner in owners):
            continue
        mine.append(pod)
    return mine


def summary(status: Obj) -> dict[str, Any]:
    """A compact view for logs and the CLI."""
    return {key: status.get(key) for key in ("phase", "attempt", "worldSize", "restarts", "failures", "preemptions")}


def disrupted_pods(job: Obj, pods: list[Obj]) -> list[str]:
    """Workers of the running attempt that are terminating or gone: were they preempted? (see events)."""
    status = job.get("status") or {}
    attempt = int(status.get("attempt") or 0)
    if status.get("createdAttempt") != attempt or status.get("phase") in FINISHED_PHASES:
        return []
    name = job["metadata"]["name"]
    current = {pod["metadata"]["name"]: pod for pod in pods if pod_attempt(pod) == attempt}
    world = int(status.get("worldSize") or world_bounds(job.get("spec") or {})[1])
    names = []
    for index in range(world):
        pod = current.get(pod_name(name, index))
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            names.append(pod_name(name, index))
    return names


def preempted_from_events(job: Obj, suspects: Collection[str], events: list[Obj]) -> set[str]:
    """The suspects that have a ``Preempted`` event (matched by pod uid when the status knows it)."""
    uids = {entry.get("pod"): entry.get("uid") for entry in (job.get("status") or {}).get("replicas") or []}
    found = set()
    for event in events:
        involved = event.get("involvedObject") or {}
        name = involved.get("name")
        if event.get("reason") != "Preempted" or involved.get("kind") != "Pod" or name not in suspects:
            continue
        known = uids.get(name)
        if known and involved.get("uid") and involved.get("uid") != known:
            continue
        found.add(str(name))
    return found


def needs_capacity_check(job: Obj) -> bool:
    """Only a running elastic job below ``maxReplicas`` can grow."""
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    return (is_elastic(spec) and status.get("phase") == "Running"
            and int(status.get("worldSize") or 0) < world_bounds(spec)[1])


def _requests(template: Obj) -> dict[str, Fraction]:
    total: dict[str, Fraction] = {}
    for container in (template.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, value in wanted.items():
            try:
                total[name] = total.get(name, Fraction(0)) + parse_quantity(value)
            except QuantityError:
                continue
    return total


def spare_workers(template: Obj, nodes: list[Obj], pods: list[Obj], limit: int) -> int:
    """How many more workers like ``template`` fit on ready nodes, by requests vs allocatable (≤ ``limit``).

    A coarse check (no device-level placement, no taints): the scheduler has the last word,
    and an elastic gang that cannot be placed whole goes on with what fits.
    """
    need = _requests(template)
    used: dict[str, dict[str, Fraction]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        bucket = used.setdefault(node, {})
        for name, amount in _requests(pod).items():
            bucket[name] = bucket.get(name, Fraction(0)) + amount
    free_slots = 0
    for node in nodes:
        conditions = (node.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            continue
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        name = node["metadata"]["name"]
        fits = limit
        for resource, amount in need.items():
            if amount <= 0:
                continue
            try:
                have = parse_quantity(allocatable.get(resource, 0)) - used.get(name, {}).get(resource, Fraction(0))
            except QuantityError:
                have = Fraction(0)
            fits = min(fits, max(0, int(have // amount)))
        free_slots += fits
        if free_slots >= limit:
            return limit
    return free_slots
