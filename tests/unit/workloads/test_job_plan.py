"""The Job plan: completions, parallelism, Indexed mode, backoff, deadline, suspend, TTL;
property-tested over random pod successes and failures."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.api.workloads import check_job, default_job
from corral.controllers.job.plan import INDEX_ENV, INDEX_KEY, format_indexes, parse_indexes, plan, pod_index
from tests.unit.workloads.sim import World

Obj = dict[str, Any]


def job(restart: str = "Never", **spec: Any) -> Obj:
    obj: Obj = {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid", "generation": 1},
                "spec": {"template": {"spec": {"restartPolicy": restart,
                                               "containers": [{"name": "c", "image": "i"}]}}, **spec}}
    default_job(obj)
    assert check_job(obj, None) == []
    return obj


def conditions(obj: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in obj["status"].get("conditions") or []}


def test_defaults_and_generated_selector_as_kubernetes() -> None:
    obj = job()
    spec = obj["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"], spec["completionMode"], spec["suspend"]) == (
        1, 1, 6, "NonIndexed", False)
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "job-uid"}}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == labels["job-name"] == "pi"
    assert labels["controller-uid"] == "job-uid"


def test_a_one_pod_job_succeeds_then_completes() -> None:
    world, obj = World(), job()
    todo = world.sync_job(obj)
    assert len(todo.create) == 1 and obj["status"]["active"] == 1 and "startTime" in obj["status"]
    pod = next(iter(world.pods))
    assert world.pods[pod]["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
    world.finish(pod, "Succeeded")
    world.sync_job(obj)
    found = conditions(obj)
    assert found["SuccessCriteriaMet"]["reason"] == "CompletionsReached"
    assert found["Complete"]["status"] == "True"
    assert obj["status"]["succeeded"] == 1 and obj["status"]["completionTime"]


def test_backoff_limit_fails_the_job_after_limit_plus_one_failures() -> None:
    world, obj = World(), job(backoffLimit=1)
    for _ in range(2):
        world.tick(11)  # past the retry backoff
        world.sync_job(obj)
        assert "Failed" not in conditions(obj)
        for name, pod in list(world.pods.items()):
            if pod["status"]["phase"] == "Pending":
                world.finish(name, "Failed")
    world.sync_job(obj)
    found = conditions(obj)
    assert found["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert found["Failed"]["reason"] == "BackoffLimitExceeded"
    assert obj["status"]["failed"] == 2 and "completionTime" not in obj["status"]


def test_replacements_of_failed_pods_back_off_exponentially_and_reset_after_a_success() -> None:
    world, obj = World(), job(completions=3, backoffLimit=10)
    world.sync_job(obj)
    world.finish(next(iter(world.pods)), "Failed")
    todo = world.sync_job(obj)
    assert not todo.create and todo.requeue_after is not None and 9.9 < todo.requeue_after <= 10.1
    world.tick(10)
    assert len(world.sync_job(obj).create) == 1
    world.finish(next(n for n, p in world.pods.items() if p["status"]["phase"] == "Pending"), "Failed")
    todo = world.sync_job(obj)
    assert not todo.create and todo.requeue_after is not None and 19.9 < todo.requeue_after <= 20.1  # doubled
    world.tick(20)
    assert len(world.sync_job(obj).create) == 1
    world.finish(next(n for n, p in world.pods.items() if p["status"]["phase"] == "Pending"), "Succeeded")
    world.tick()
    assert len(world.sync_job(obj).create) == 1, "a success resets the backoff"


def test_on_failure_counts_container_restarts() -> None:
    world, obj = World(), job(restart="OnFailure", backoffLimit=2)
    world.sync_job(obj)
    pod = next(iter(world.pods.values()))
    pod["status"]["containerStatuses"] = [{"name": "c", "restartCount": 2}]
    todo = world.sync_job(obj)
    assert conditions(obj)["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert todo.delete == [pod["metadata"]["name"]]


def test_active_deadline() -> None:
    world, obj = World(), job(activeDeadlineSeconds=10)
    todo = world.sync_job(obj)
    assert todo.requeue_after is not None and 9 < todo.requeue_after <= 10.1
    world.tick(11)
    todo = world.sync_job(obj)
    assert conditions(obj)["FailureTarget"]["reason"] == "DeadlineExceeded"
    assert "Failed" not in conditions(obj) and len(todo.delete) == 1  # Failed once its pods are gone
    world.sync_job(obj)
    assert conditions(obj)["Failed"]["reason"] == "DeadlineExceeded"
    assert conditions(obj)["Failed"]["message"] == "Job was active longer than specified deadline"
    assert not world.active_pods()


def test_suspend_deletes_active_pods_and_resume_restarts() -> None:
    world, obj = World(), job(parallelism=2, completions=4)
    world.sync_job(obj)
    assert len(world.active_pods()) == 2
    obj["spec"]["suspend"] = True
    world.sync_job(obj)
    assert not world.active_pods()
    assert conditions(obj)["Suspended"]["status"] == "True"
    assert obj["status"]["active"] == 0
    obj["spec"]["suspend"] = False
    world.tick()
    world.sync_job(obj)
    assert conditions(obj)["Suspended"]["status"] == "False"
    assert conditions(obj)["Suspended"]["reason"] == "JobResumed"
    assert len(world.active_pods()) == 2


def test_ttl_after_finished_deletes_the_job() -> None:
    world, obj = World(), job(ttlSecondsAfterFinished=5)
    world.sync_job(obj)
    world.finish(next(iter(world.pods)), "Succeeded")
    world.sync_job(obj)
    todo = world.sync_job(obj)
    assert not todo.delete_job and todo.requeue_after is not None
    world.tick(6)
    assert world.sync_job(obj).delete_job


def test_indexed_pods_carry_their_index_and_the_downward_api_env() -> None:
    world, obj = World(), job(completionMode="Indexed", completions=3, parallelism=3)
    world.sync_job(obj)
    pods = sorted(world.pods.values(), key=lambda p: pod_index(p) or 0)
    assert [pod_index(p) for p in pods] == [0, 1, 2]
    for index, pod in enumerate(pods):
        assert pod["metadata"]["name"].startswith(f"pi-{index}-")
        assert pod["metadata"]["annotations"][INDEX_KEY] == pod["metadata"]["labels"][INDEX_KEY] == str(index)
        assert pod["spec"]["hostname"] == f"pi-{index}"
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env[INDEX_ENV]["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{INDEX_KEY}']"
    world.finish(pods[1]["metadata"]["name"], "Succeeded")
    world.sync_job(obj)
    assert obj["status"]["completedIndexes"] == "1"


def test_index_ranges_round_trip() -> None:
    assert format_indexes({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert parse_indexes("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert format_indexes(set()) == ""


def test_work_queue_job_without_completions_finishes_when_one_succeeded_and_none_runs() -> None:
    world, obj = World(), job(parallelism=2)
    assert "completions" not in obj["spec"]  # as Kubernetes: only defaulted when parallelism is not given either
    world.sync_job(obj)
    first, second = list(world.pods)
    world.finish(first, "Succeeded")
    world.sync_job(obj)
    assert "Complete" not in conditions(obj) and len(world.active_pods()) == 1
    world.finish(second, "Succeeded")
    world.sync_job(obj)
    assert conditions(obj)["Complete"]["status"] == "True"


def test_validation_names_the_fields() -> None:
    bad = job()
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    bad["spec"]["parallelism"] = -1
    fields = dict(check_job(bad, None))
    assert fields["spec.parallelism"] == "Invalid value: -1: must be greater than or equal to 0"
    assert fields["spec.template.spec.restartPolicy"].startswith('Unsupported value: "Always"')
    changed = job()
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    assert [f for f, _ in check_job(changed, job())] == ["spec.template"]
    chosen = job()
    chosen["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    assert "`selector` not auto-generated" in dict(check_job(chosen, None))["spec.selector"]


@settings(max_examples=80, deadline=None)
@given(completions=st.integers(1, 6), parallelism=st.integers(1, 4), indexed=st.booleans(),
       outcomes=st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["Succeeded", "Failed", "sync"])), max_size=40))
def test_job_never_over_succeeds_or_over_runs(completions: int, parallelism: int, indexed: bool,
                                              outcomes: list[tuple[int, str]]) -> None:
    obj = job(completions=completions, parallelism=parallelism, backoffLimit=100,
              completionMode="Indexed" if indexed else "NonIndexed")
    world = World()
    for choice, outcome in [*outcomes, *[(0, "Succeeded")] * (completions * 2)]:
        world.sync_job(obj)
        active = world.active_pods()
        assert len(active) <= parallelism
        assert obj["status"]["active"] <= parallelism
        assert obj["status"]["succeeded"] <= completions
        if indexed:
            indexes = [pod_index(p) for p in active]
            assert len(indexes) == len(set(indexes)), "one running pod per index"
            assert all(i is not None and 0 <= i < completions for i in indexes)
        if active and outcome != "sync":
            world.finish(sorted(active, key=lambda p: p["metadata"]["name"])[choice % len(active)]["metadata"]["name"],
                         outcome)
        world.tick(400)  # past any retry backoff
    world.sync_job(obj)
    world.sync_job(obj)
    assert conditions(obj)["Complete"]["status"] == "True"
    assert obj["status"]["succeeded"] == completions
    if indexed:
        assert obj["status"]["completedIndexes"] == format_indexes(set(range(completions)))


def test_plan_ignores_pods_it_does_not_control() -> None:
    foreign = {"metadata": {"name": "x", "labels": {}, "ownerReferences": [{"uid": "other", "controller": True}]},
               "spec": {}, "status": {"phase": "Succeeded"}}
    assert plan(job(), [foreign], World().now).status["succeeded"] == 0
