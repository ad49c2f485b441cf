from corral.controllers.gc import dangling


def owned(*refs: tuple[str, str, str]) -> dict:
    return {"metadata": {"name": "p", "ownerReferences": [
        {"apiVersion": api_version, "kind": kind, "name": "o", "uid": uid} for api_version, kind, uid in refs]}}


JOB = ("corral.dev/v1alpha1", "TrainingJob")


def test_object_without_owners_is_never_collected() -> None:
    assert not dangling({"metadata": {"name": "p"}}, {JOB: set()})


def test_collected_when_the_only_owner_is_gone() -> None:
    assert dangling(owned((*JOB, "u1")), {JOB: {"u2"}})
    assert not dangling(owned((*JOB, "u1")), {JOB: {"u1"}})


def test_an_unwatched_owner_kind_is_never_assumed_gone() -> None:
    assert not dangling(owned(("apps/v1", "ReplicaSet", "u1")), {JOB: set()})


def test_all_owners_must_be_gone() -> None:
    refs = owned((*JOB, "u1"), (*JOB, "u2"))
    assert not dangling(refs, {JOB: {"u2"}})
    assert dangling(refs, {JOB: set()})
