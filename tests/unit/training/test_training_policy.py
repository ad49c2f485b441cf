"""The TrainingJob controller's pure decisions, driven step by step through a tiny fake world.

``World`` applies each :class:`Plan` the way the reconciler would (create/delete pods and
the PodGroup, write status) so the tests read as a story: create, place, run, fail,
restart, succeed — with time moved by hand.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.controllers.trainingjob import policy
from corral.controllers.trainingjob.policy import Config, Plan, decide

CONFIG = Config(data_dir="/data")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_job(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "replicas": 2,
        "template": {"spec": {"containers": [{"name": "worker", "image": "python",
                                              "command": ["python", "train.py"], "args": ["--epochs", "3"]}]}},
    }
    base.update(spec)
    if "minReplicas" in spec:
        base.pop("replicas")
    return {"apiVersion": "corral.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": "ddp", "namespace": "team-a", "uid": "0123456789abcdef", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": base}


class World:
    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.pods: dict[str, dict[str, Any]] = {}
        self.podgroup: dict[str, Any] | None = None
        self.now = T0
        self.plans: list[Plan] = []
        self.ip = 0

    def step(self) -> Plan:
        plan = decide(self.job, list(self.pods.values()), self.podgroup, self.now, CONFIG)
        self.job["status"] = copy.deepcopy(plan.status)
        for name in plan.delete_pods:
            self.pods.pop(name, None)
        if plan.delete_podgroup:
            self.podgroup = None
        if plan.create_podgroup is not None:
            assert self.podgroup is None
            self.podgroup = plan.create_podgroup
        for pod in plan.create_pods:
            assert pod["metadata"]["name"] not in self.pods, "never two pods with one name"
            self.pods[pod["metadata"]["name"]] = copy.deepcopy(pod)
        self.plans.append(plan)
        return plan

    def settle(self, limit: int = 10) -> Plan:
        """Step until a plan changes nothing."""
        for _ in range(limit):
            plan = self.step()
            if not (plan.create_pods or plan.delete_pods or plan.delete_podgroup or plan.create_podgroup):
                return plan
        raise AssertionError("the decisions never settle")

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def pod(self, index: int) -> dict[str, Any]:
        return self.pods[f"ddp-worker-{index}"]

    def place_all(self) -> None:
        for pod in self.pods.values():
            pod["spec"]["nodeName"] = "node-1"

    def run_all(self) -> None:
        for pod in self.pods.values():
            pod["spec"]["nodeName"] = "node-1"
            self.ip += 1
            pod["status"] = {"phase": "Running", "podIP": f"127.0.1.{self.ip}"}

    def exit(self, index: int, code: int, reason: str | None = None) -> None:
        pod = self.pod(index)
        terminated = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error")}
        pod["status"] = {"phase": "Succeeded" if code == 0 else "Failed",
                         "containerStatuses": [{"name": "worker", "state": {"terminated": terminated}}]}

    @property
    def status(self) -> dict[str, Any]:
        return self.job["status"]

    def events(self) -> list[str]:
        return [event.reason for plan in self.plans for event in plan.events]


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "<from>") for item in pod["spec"]["containers"][0]["env"]}


def running_world(**spec: Any) -> World:
    world = World(make_job(**spec))
    world.settle()
    world.run_all()
    world.step()
    assert world.status["phase"] == "Running"
    return world


# ---------------------------------------------------------------- creation and wiring


def test_new_job_creates_one_podgroup_and_wired_worker_pods() -> None:
    world = World(make_job(queue="team-a", priorityClassName="high"))
    plan = world.step()
    assert plan.create_podgroup is not None
    assert plan.create_podgroup["spec"] == {"minMember": 2, "queue": "team-a", "priorityClassName": "high"}
    assert plan.create_podgroup["metadata"]["ownerReferences"][0]["uid"] == "0123456789abcdef"
    assert [pod["metadata"]["name"] for pod in plan.create_pods] == ["ddp-worker-0", "ddp-worker-1"]
    assert world.status["phase"] == "Pending"
    assert world.status["createdAttempt"] == 0
    assert "Created" in world.events()
    for index, pod in enumerate(plan.create_pods):
        labels = pod["metadata"]["labels"]
        assert labels["corral.dev/training-job"] == "ddp"
        assert labels["corral.dev/replica-index"] == str(index)
        assert labels["corral.dev/pod-group"] == "ddp"
        assert labels["corral.dev/queue"] == "team-a"
        assert pod["metadata"]["ownerReferences"][0]["controller"] is True
        assert pod["spec"]["restartPolicy"] == "Never"
        assert pod["spec"]["priorityClassName"] == "high"
        env = env_of(pod)
        assert env["WORLD_SIZE"] == "2" and env["RANK"] == str(index) and env["NODE_RANK"] == str(index)
        assert env["LOCAL_RANK"] == "0" and env["NPROC_PER_NODE"] == "1" and env["CORRAL_RESTART_COUNT"] == "0"
        assert env["CORRAL_CHECKPOINT_DIR"] == "/data/checkpoints/team-a/ddp-01234567"
        assert 20000 <= int(env["MASTER_PORT"]) < 40000
        assert env["CORRAL_RENDEZVOUS_FILE"].startswith(env["CORRAL_CHECKPOINT_DIR"] + "/.corral/")
        command = pod["spec"]["containers"][0]["command"]
        assert command[:2] == ["/bin/sh", "-c"] and command[4:] == ["python", "train.py", "--epochs", "3"]
        assert "args" not in pod["spec"]["containers"][0]
    # Idempotent: a second look creates nothing more.
    again = world.step()
    assert not again.create_pods and again.create_podgroup is None


def test_gpus_per_worker_become_nproc_per_node_and_world_size() -> None:
    job = make_job(template={"spec": {"containers": [{"name": "w", "command": ["torchrun", "t.py"],
                                                      "resources": {"limits": {"nvidia.com/gpu": 4}}}]}})
    pod = policy.worker_pod(job, 1, 2, 0, CONFIG)
    env = env_of(pod)
    assert env["NPROC_PER_NODE"] == "4" and env["WORLD_SIZE"] == "8" and env["RANK"] == "4"
    assert env["PET_NNODES"] == "2" and env["PET_NODE_RANK"] == "1" and env["PET_NPROC_PER_NODE"] == "4"


def test_container_without_command_gets_master_addr_from_its_pod_ip_on_rank_zero() -> None:
    job = make_job(template={"spec": {"containers": [{"name": "w", "image": "trainer"}]}})
    rank0 = policy.worker_pod(job, 0, 2, 0, CONFIG)["spec"]["containers"][0]
    assert {"name": "MASTER_ADDR", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in rank0["env"]


def test_user_env_is_kept_but_corral_wiring_wins() -> None:
    job = make_job(template={"spec": {"containers": [{"name": "w", "command": ["x"],
                                                      "env": [{"name": "EPOCHS", "value": "5"},
                                                              {"name": "RANK", "value": "9"}]}]}})
    env = env_of(policy.worker_pod(job, 1, 2, 0, CONFIG))
    assert env["EPOCHS"] == "5" and env["RANK"] == "1"


def test_explicit_checkpoint_dir_and_master_port() -> None:
    job = make_job(checkpoint={"dir": "/shared/ckpt"}, masterPort=29500)
    env = env_of(policy.worker_pod(job, 0, 2, 0, CONFIG))
    assert env["CORRAL_CHECKPOINT_DIR"] == "/shared/ckpt" and env["MASTER_PORT"] == "29500"


# ---------------------------------------------------------------- phases


def test_pending_admitted_running_succeeded() -> None:
    world = World(make_job())
    world.settle()
    assert world.status["phase"] == "Pending"
    world.advance(7)
    world.place_all()
    world.step()
    assert world.status["phase"] == "Admitted"
    assert world.status["queueWaitSeconds"] == 7.0
    world.advance(1)
    world.run_all()
    world.step()
    assert world.status["phase"] == "Running"
    assert world.status["startTime"] == "2026-01-01T00:00:08Z"
    assert world.status["masterAddr"] == "127.0.1.1"
    assert [r["phase"] for r in world.status["replicas"]] == ["Running", "Running"]
    conditions = {c["type"]: c["status"] for c in world.status["conditions"]}
    assert conditions["Admitted"] == "True" and conditions["Running"] == "True"
    world.advance(30)
    world.exit(0, 0)
    world.step()
    assert world.status["phase"] == "Running", "AllWorkers waits for every worker"
    world.exit(1, 0)
    world.step()
    assert world.status["phase"] == "Succeeded"
    assert world.status["completionTime"] == "2026-01-01T00:00:38Z"
    assert world.status["runSeconds"] == 30.0
    conditions = {c["type"]: c["status"] for c in world.status["conditions"]}
    assert conditions["Succeeded"] == "True" and conditions["Running"] == "False"
    assert world.events() == ["Created", "Admitted", "Running", "Succeeded"]


def test_rank_zero_success_policy_stops_the_others() -> None:
    world = running_world(successPolicy="RankZero")
    world.exit(0, 0)
    plan = world.step()
    assert world.status["phase"] == "Succeeded"
    assert plan.delete_pods == ["ddp-worker-1"]


# ---------------------------------------------------------------- failures and restarts


def test_worker_failure_restarts_the_gang_after_backoff() -> None:
    world = running_world(backoff={"initialSeconds": 5, "maxSeconds": 60})
    world.exit(1, 3)
    plan = world.step()
    assert world.status["phase"] == "Restarting"
    assert world.status["failures"] == 1 and world.status["restarts"] == 1 and world.status["attempt"] == 1
    assert plan.delete_pods == ["ddp-worker-0", "ddp-worker-1"] and plan.delete_podgroup
    assert "worker 1 failed with exit code 3" in plan.events[0].message
    assert plan.events[0].type == "Warning" and plan.events[0].reason == "WorkerFailed"
    # Pods and group are gone; the backoff holds the next attempt back.
    plan = world.step()
    assert not plan.create_pods and plan.requeue_after is not None and 4.9 < plan.requeue_after <= 5
    world.advance(5)
    plan = world.step()
    assert len(plan.create_pods) == 2 and plan.create_podgroup is not None
    assert env_of(plan.create_pods[0])["CORRAL_RESTART_COUNT"] == "1"
    assert plan.create_pods[0]["metadata"]["labels"]["corral.dev/attempt"] == "1"
    world.run_all()
    world.step()
    assert world.status["phase"] == "Running"
    conditions = {c["type"]: c["status"] for c in world.status["conditions"]}
    assert conditions["Restarting"] == "False"


def test_stale_pods_are_deleted_before_the_next_attempt() -> None:
    world = running_world(backoff={"initialSeconds": 0})
    world.exit(0, 1)
    world.step()
    # The deletes have not happened yet (graceful termination): the pods linger, terminating.
    job = world.job
    leftovers = [policy.worker_pod(make_job(), i, 2, 0, CONFIG) for i in range(2)]
    for pod in leftovers:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z"
    plan = decide(job, leftovers, None, world.now, CONFIG)
    assert not plan.create_pods and plan.create_podgroup is None and plan.requeue_after is not None


def test_oom_and_lost_workers_are_failures_with_clear_messages() -> None:
    world = running_world(backoff={"initialSeconds": 0})
    world.exit(0, 137, "OOMKilled")
    plan = world.step()
    assert "worker 0 ran out of memory (OOMKilled)" in plan.events[0].message
    world.settle()
    world.run_all()
    world.step()
    del world.pods["ddp-worker-1"]  # kubectl delete pod, or node loss
    plan = world.step()
    assert world.status["failures"] == 2
    assert "worker 1 was deleted" in plan.events[0].message


def test_backoff_limit_fails_the_job_with_the_reason() -> None:
    world = running_world(backoffLimit=1, backoff={"initialSeconds": 0})
    world.exit(1, 1)
    world.settle()
    world.run_all()
    world.step()
    world.exit(1, 1)
    plan = world.step()
    assert world.status["phase"] == "Failed"
    failed = next(c for c in world.status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "worker 1 failed with exit code 1" in failed["message"] and "backoffLimit is 1" in failed["message"]
    assert plan.delete_pods == ["ddp-worker-0"]
    assert world.status["completionTime"]
    # Finished stays finished.
    world.settle()
    assert world.status["phase"] == "Failed" and not world.pods.get("ddp-worker-0")


def test_restart_policy_never_fails_at_once() -> None:
    world = running_world(restartPolicy="Never")
    world.exit(0, 2)
    world.step()
    assert world.status["phase"] == "Failed" and world.status["restarts"] == 0


def test_backoff_grows_exponentially_and_is_capped() -> None:
    spec = {"backoff": {"initialSeconds": 2, "maxSeconds": 10}}
    assert [policy.backoff_seconds(spec, n) for n in range(6)] == [0, 2, 4, 8, 10, 10]


# ---------------------------------------------------------------- preemption, elasticity, suspend


def test_preemption_requeues_without_counting_a_failure_and_keeps_run_time() -> None:
    world = running_world(priorityClassName="low")
    world.advance(40)
    world.pod(0)["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:40Z"
    world.pod(0)["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True",
                                             "reason": "PreemptionByScheduler"}]
    plan = world.step()
    assert world.status["phase"] == "Restarting"
    assert world.status["preemptions"] == 1 and world.status["failures"] == 0 and world.status["restarts"] == 1
    assert world.status["runSeconds"] == 40.0
    assert plan.delete_pods == ["ddp-worker-1"], "the preempted pod is already terminating"
    assert plan.events[0].reason == "Preempted"
    del world.pods["ddp-worker-0"]
    plan = world.settle()
    assert world.podgroup is not None and world.podgroup["spec"]["priorityClassName"] == "low"
    assert len(world.pods) == 2


def test_elastic_job_shrinks_from_three_to_two_when_a_worker_is_lost() -> None:
    world = World(make_job(minReplicas=2, maxReplicas=3))
    plan = world.step()
    assert len(plan.create_pods) == 3 and plan.create_podgroup is not None
    assert plan.create_podgroup["spec"]["minMember"] == 2
    world.run_all()
    world.step()
    del world.pods["ddp-worker-2"]
    plan = world.step()
    assert plan.events[0].reason == "ElasticShrink"
    assert world.status["worldSize"] == 2 and world.status["failures"] == 0
    world.settle()
    assert sorted(world.pods) == ["ddp-worker-0", "ddp-worker-1"]
    assert env_of(world.pod(1))["WORLD_SIZE"] == "2"
    world.run_all()
    world.step()
    assert world.status["phase"] == "Running" and len(world.status["replicas"]) == 2
    # At minReplicas a loss is a failure again.
    del world.pods["ddp-worker-1"]
    world.step()
    assert world.status["failures"] == 1 and world.status["worldSize"] == 2


def test_elastic_job_goes_on_with_the_workers_that_could_be_placed() -> None:
    world = World(make_job(minReplicas=2, maxReplicas=3, scheduleTimeoutSeconds=10))
    world.settle()
    world.pod(0)["spec"]["nodeName"] = "n"
    world.pod(1)["spec"]["nodeName"] = "n"
    plan = world.step()
    assert plan.requeue_after is not None and world.status["worldSize"] == 3
    world.advance(11)
    world.step()
    assert world.status["worldSize"] == 2 and world.status["phase"] == "Restarting"


def test_elastic_non_zero_exit_is_a_failure_not_a_shrink() -> None:
    world = World(make_job(minReplicas=2, maxReplicas=3))
    world.settle()
    world.run_all()
    world.step()
    world.exit(2, 1)
    world.step()
    assert world.status["failures"] == 1 and world.status["worldSize"] == 3


def test_suspend_stops_workers_and_releases_the_group_then_resume_starts_a_new_attempt() -> None:
    world = running_world()
    world.advance(10)
    world.job["spec"]["suspend"] = True
    plan = world.step()
    assert world.status["phase"] == "Suspended" and plan.delete_podgroup
    assert sorted(plan.delete_pods) == ["ddp-worker-0", "ddp-worker-1"]
    assert world.status["runSeconds"] == 10.0 and world.status["restarts"] == 0
    assert world.settle().create_pods == []
    assert world.podgroup is None and not world.pods
    world.job["spec"]["suspend"] = False
    world.settle()
    assert world.status["phase"] == "Pending" and len(world.pods) == 2 and world.podgroup is not None
    assert world.pod(0)["metadata"]["labels"]["corral.dev/attempt"] == "1"
    assert "Suspended" in world.events() and "Resumed" in world.events()


def test_job_created_suspended_creates_nothing() -> None:
    world = World(make_job(suspend=True))
    world.settle()
    assert world.status["phase"] == "Suspended" and not world.pods and world.podgroup is None


def test_active_deadline_fails_a_running_job() -> None:
    world = running_world(activeDeadlineSeconds=60)
    world.advance(30)
    assert world.step().requeue_after == 30.0
    world.advance(30)
    plan = world.step()
    assert world.status["phase"] == "Failed" and sorted(plan.delete_pods) == ["ddp-worker-0", "ddp-worker-1"]
    assert next(c for c in world.status["conditions"] if c["type"] == "Failed")["reason"] == "DeadlineExceeded"


def test_ttl_after_finished_deletes_the_job() -> None:
    world = running_world(ttlSecondsAfterFinished=20)
    world.exit(0, 0)
    world.exit(1, 0)
    world.step()
    world.advance(5)
    plan = world.step()
    assert not plan.delete_job and plan.requeue_after == 15.0
    world.advance(15)
    plan = world.step()
    assert plan.delete_job and sorted(plan.delete_pods) == ["ddp-worker-0", "ddp-worker-1"]


def test_pods_of_filters_by_owner_uid() -> None:
    job = make_job()
    mine = policy.worker_pod(job, 0, 2, 0, CONFIG)
    other_job = make_job()
    other_job["metadata"]["uid"] = "ffff"
    theirs = policy.worker_pod(other_job, 1, 2, 0, CONFIG)
    assert policy.pods_of(job, [mine, theirs]) == [mine]


# ---------------------------------------------------------------- invariants


ACTIONS = st.lists(st.sampled_from(["place", "run", "ok0", "ok1", "fail0", "fail1", "lose1", "preempt0",
                                     "wait", "suspend", "resume"]), max_size=40)


@settings(max_examples=150, deadline=None)
@given(actions=ACTIONS, limit=st.integers(0, 3), elastic=st.booleans())
def test_invariants_hold_for_any_sequence_of_events(actions: list[str], limit: int, elastic: bool) -> None:
    spec: dict[str, Any] = {"backoffLimit": limit, "backoff": {"initialSeconds": 1, "maxSeconds": 4}}
    if elastic:
        spec.update(minReplicas=1, maxReplicas=2)
    world = World(make_job(**spec))
    world.step()
    for action in actions:
        names = sorted(world.pods)
        if action == "place":
            world.place_all()
        elif action == "run":
            world.run_all()
        elif action.startswith(("ok", "fail")) and f"ddp-worker-{action[-1]}" in world.pods:
            world.exit(int(action[-1]), 0 if action.startswith("ok") else 1)
        elif action == "lose1":
            world.pods.pop("ddp-worker-1", None)
        elif action == "preempt0" and "ddp-worker-0" in world.pods:
            pod = world.pod(0)
            pod["metadata"]["annotations"]["corral.dev/preempted-by"] = "team-b/big"
            pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        elif action == "wait":
            world.advance(2)
        elif action in ("suspend", "resume"):
            world.job["spec"]["suspend"] = action == "suspend"
        before = world.status.get("phase")
        plan = world.step()
        status = world.status
        assert status["phase"] in (*policy.PHASE_CONDITIONS, "Pending")
        assert 1 <= status["worldSize"] <= 2
        assert status["failures"] <= limit + 1
        assert status["restarts"] >= status["failures"] - 1
        if status["phase"] == "Failed" and before != "Failed":
            assert status["failures"] == limit + 1
        if before in policy.FINISHED_PHASES:
            assert status["phase"] == before, "a finished job never starts again"
        if plan.create_pods:
            assert not any(name for name in names if policy.pod_attempt(world.pods.get(name) or {}) not in
                           (None, status["attempt"])), "never two attempts at once"
            assert all(int(env_of(p)["WORLD_SIZE"]) == status["worldSize"] for p in plan.create_pods)
        if world.job["spec"].get("suspend"):
            assert not plan.create_pods
        running = [r for r in status.get("replicas") or [] if r["phase"] == "Running"]
        assert len(running) <= status["worldSize"]


def test_preemption_seen_only_through_the_schedulers_event_is_not_a_failure() -> None:
    world = running_world()
    uid = "pod-uid-1"
    world.pod(1)["metadata"]["uid"] = uid
    world.step()  # the status learns the pod's uid
    del world.pods["ddp-worker-1"]
    suspects = policy.disrupted_pods(world.job, list(world.pods.values()))
    assert suspects == ["ddp-worker-1"]
    events = [
        {"reason": "Preempted", "involvedObject": {"kind": "Pod", "name": "ddp-worker-1", "uid": uid}},
        {"reason": "Preempted", "involvedObject": {"kind": "Pod", "name": "ddp-worker-0", "uid": "x"}},
        {"reason": "Preempted", "involvedObject": {"kind": "Pod", "name": "ddp-worker-1", "uid": "older"}},
    ]
    preempted = policy.preempted_from_events(world.job, suspects, events)
    assert preempted == {"ddp-worker-1"}
    plan = decide(world.job, list(world.pods.values()), world.podgroup, world.now, CONFIG, preempted=preempted)
    assert plan.status["preemptions"] == 1 and plan.status["failures"] == 0
    assert "worker 1 was preempted" in plan.events[0].message
    # An event about an earlier pod of the same name does not count.
    assert policy.preempted_from_events(world.job, suspects, events[2:]) == set()


def test_stale_pods_stuck_terminating_are_force_deleted() -> None:
    world = running_world(backoff={"initialSeconds": 0})
    world.exit(0, 1)
    world.step()
    leftovers = [policy.worker_pod(make_job(), i, 2, 0, CONFIG) for i in range(2)]
    for pod in leftovers:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:10Z"
    leftovers[0]["spec"]["nodeName"] = "dead-node"
    plan = decide(world.job, leftovers, None, T0 + timedelta(seconds=20), CONFIG)
    assert plan.force_delete_pods == ["ddp-worker-1"], "never placed: nothing will finish it"
    plan = decide(world.job, leftovers, None, T0 + timedelta(seconds=41), CONFIG)
    assert plan.force_delete_pods == ["ddp-worker-0", "ddp-worker-1"]


def test_elastic_job_grows_back_when_capacity_frees_after_a_cooldown() -> None:
    world = World(make_job(minReplicas=2, maxReplicas=3))
    world.settle()
    world.run_all()
    world.step()
    del world.pods["ddp-worker-2"]
    world.settle()
    world.run_all()
    world.step()
    assert world.status["worldSize"] == 2 and world.status["phase"] == "Running"
    assert policy.needs_capacity_check(world.job)
    plan = decide(world.job, list(world.pods.values()), world.podgroup, world.now, CONFIG, spare_workers=1)
    assert plan.status["worldSize"] == 2 and plan.requeue_after is not None, "not before the cooldown"
    world.advance(CONFIG.grow_cooldown)
    plan = decide(world.job, list(world.pods.values()), world.podgroup, world.now, CONFIG, spare_workers=5)
    assert plan.status["worldSize"] == 3 and plan.events[0].reason == "ElasticGrow"
    assert plan.status["failures"] == 0 and sorted(plan.delete_pods) == ["ddp-worker-0", "ddp-worker-1"]
    # No room: stays as it is.
    plan = decide(world.job, list(world.pods.values()), world.podgroup, world.now, CONFIG, spare_workers=0)
    assert plan.status["worldSize"] == 2 and not plan.delete_pods


def test_spare_workers_counts_room_on_ready_nodes_by_requests() -> None:
    template = {"spec": {"containers": [{"name": "w", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}

    def node(name: str, cpu: str, ready: bool = True) -> dict[str, Any]:
        return {"metadata": {"name": name},
                "status": {"allocatable": {"cpu": cpu, "memory": "64Gi"},
                           "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}

    busy = {"spec": {"nodeName": "a", "containers": [{"name": "x", "resources": {"requests": {"cpu": "2500m"}}}]},
            "status": {"phase": "Running"}}
    done = {"spec": {"nodeName": "a", "containers": [{"name": "x", "resources": {"requests": {"cpu": "4"}}}]},
            "status": {"phase": "Succeeded"}}
    nodes = [node("a", "4"), node("b", "2", ready=False)]
    assert policy.spare_workers(template, nodes, [busy, done], 5) == 1
    assert policy.spare_workers(template, [*nodes, node("c", "8")], [busy], 5) == 5
    assert policy.spare_workers(template, [node("a", "4")], [busy], 1) == 1
    assert policy.spare_workers(template, [], [], 3) == 0


def test_stopped_workers_are_not_reported_running() -> None:
    world = running_world(backoffLimit=0)
    world.exit(1, 1)
    world.step()
    assert world.status["phase"] == "Failed"
    assert [r["phase"] for r in world.status["replicas"]] == ["Stopped", "Failed"]
