"""The Queue kind: strict validation with clear messages, and its kubectl columns."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from corral.api.v1alpha1.queue import Queue, resource_type

from .helpers import queue_obj


def test_valid_queue_round_trips() -> None:
    obj = queue_obj("team-a", nominal=8, borrowing=4, lending=2, namespaces=["a"], default=True)
    model = Queue.model_validate(obj)
    dumped = model.model_dump(by_alias=True, exclude_none=True)
    assert dumped["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0] == {
        "name": "nvidia.com/gpu", "nominalQuota": 8, "borrowingLimit": 4, "lendingLimit": 2}
    assert dumped["spec"]["default"] is True


@pytest.mark.parametrize(("patch", "message"), [
    ({"spec": {"bogus": 1}}, "bogus"),
    ({"spec": {"queueingStrategy": "LIFO"}}, "queueingStrategy"),
    ({"spec": {"stopPolicy": "Pause"}}, "stopPolicy"),
    ({"spec": {"preemption": {"withinQueue": "Always"}}}, "withinQueue"),
    ({"spec": {"resourceGroups": [{"flavors": [{"name": "f", "resources": [
        {"name": "cpu", "nominalQuota": "lots"}]}]}]}}, "nominalQuota"),
    ({"spec": {"resourceGroups": [{"flavors": [{"name": "f", "resources": [
        {"name": "cpu", "nominalQuota": 2, "lendingLimit": 3}]}]}]}}, "lendingLimit 3 exceeds nominalQuota 2"),
    ({"spec": {"resourceGroups": [{"flavors": [{"name": "f", "resources": [
        {"name": "cpu", "nominalQuota": -1}]}]}]}}, "must not be negative"),
    ({"spec": {"resourceGroups": [{"flavors": [{"name": "f", "resources": []}]},
                                  {"flavors": [{"name": "f", "resources": []}]}]}}, "flavor 'f'"),
    ({"spec": {"resourceGroups": [{"flavors": [{"name": "f", "resources": [{"name": "cpu", "nominalQuota": 1}]}]},
                                  {"flavors": [{"name": "g", "resources": [{"name": "cpu", "nominalQuota": 1}]}]}]}},
     "resource 'cpu' is covered by"),
    ({"spec": {"fairSharing": {"weight": -1}}}, "weight"),
    ({"spec": {"fairSharing": {"preemptionStrategy": "Always"}}}, "preemptionStrategy"),
])
def test_bad_queue_is_rejected_naming_the_field(patch: dict[str, Any], message: str) -> None:
    obj = {"apiVersion": "corral.dev/v1alpha1", "kind": "Queue", "metadata": {"name": "q"}, **patch}
    with pytest.raises(ValidationError) as info:
        Queue.model_validate(obj)
    assert message in str(info.value)


def test_printer_columns() -> None:
    rt = resource_type()
    assert rt.namespaced is False and rt.strict and rt.plural == "queues"
    assert [c.name.upper() for c in rt.columns] == [
        "NAME", "COHORT", "PENDING", "ADMITTED", "GPU-USED", "GPU-QUOTA", "BORROWED", "FAIR-SHARE"]
    obj = queue_obj("team-a", nominal=8)
    obj["status"] = {"pending": 3, "admitted": 2, "fairSharing": {"weightedShare": 0.25},
                     "flavorsUsage": [{"name": "default", "resources": [
                         {"name": "nvidia.com/gpu", "total": "10", "borrowed": "2"}]}]}
    assert [c.value(obj) for c in rt.columns] == ["team-a", "c", 3, 2, "10", "8", "2", "0.25"]
    Queue.model_validate(obj)
