"""The TrainingJob model: strict, with errors that name the field, and its kubectl columns."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from corral.api.v1alpha1 import trainingjob
from corral.api.v1alpha1.trainingjob import TrainingJob

TEMPLATE = {"spec": {"containers": [{"name": "w", "command": ["python", "t.py"]}]}}


def job(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "corral.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "ddp"},
            "spec": {"template": TEMPLATE, **spec}}


def error_of(obj: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        TrainingJob.model_validate(obj)
    return str(caught.value)


def test_valid_job_with_defaults() -> None:
    model = TrainingJob.model_validate(job(replicas=2, queue="team-a"))
    dumped = model.model_dump(by_alias=True, exclude_none=True)
    assert dumped["spec"]["restartPolicy"] == "RestartGang"
    assert dumped["spec"]["backoffLimit"] == 3
    assert dumped["spec"]["successPolicy"] == "AllWorkers"


def test_unknown_fields_are_rejected_by_name() -> None:
    assert "replicaz" in error_of(job(replicaz=2))
    assert "bogus" in error_of({**job(), "status": {"bogus": 1}})


def test_replicas_and_elastic_range_are_exclusive_and_ordered() -> None:
    assert "exclusive" in error_of(job(replicas=2, minReplicas=1, maxReplicas=3))
    assert "spec.maxReplicas (1) must be >= spec.minReplicas (2)" in error_of(job(minReplicas=2, maxReplicas=1))
    assert "together" in error_of(job(minReplicas=2))
    TrainingJob.model_validate(job(minReplicas=2, maxReplicas=3))


def test_bad_values_name_their_field() -> None:
    assert "restartPolicy" in error_of(job(restartPolicy="Always"))
    assert "backoffLimit" in error_of(job(backoffLimit=-1))
    assert "successPolicy" in error_of(job(successPolicy="Any"))
    assert "containers" in error_of(job(template={"spec": {"containers": []}}))
    assert "spec.template.spec is required" in error_of(job(template={}))


def test_resource_type_and_printer_columns() -> None:
    resource = trainingjob.resource_type()
    assert (resource.group, resource.version, resource.plural, resource.namespaced, resource.strict) == (
        "corral.dev", "v1alpha1", "trainingjobs", True, True)
    # The server adds NAME itself: kubectl shows NAME QUEUE WORKERS PHASE RESTARTS AGE.
    assert [column.name.upper() for column in resource.columns] == ["QUEUE", "WORKERS", "PHASE", "RESTARTS", "AGE"]
    obj = job(replicas=2, queue="team-a")
    obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    obj["status"] = {"phase": "Running", "restarts": 1,
                     "replicas": [{"index": 0, "pod": "ddp-worker-0", "phase": "Running"},
                                  {"index": 1, "pod": "ddp-worker-1", "phase": "Pending"}]}
    cells = [column.value(obj) for column in resource.columns]
    assert cells == ["team-a", "1/2", "Running", 1, "2026-01-01T00:00:00Z"]
    assert trainingjob.human_duration(42) == "42s" and trainingjob.human_duration(310) == "5m10s"
