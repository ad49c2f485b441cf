"""securityContext.runAsUser/runAsGroup/runAsNonRoot → the identity a container process gets (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.agent.identity import IdentityError, RunAs, run_as


def pod(context: dict[str, Any] | None = None, container: dict[str, Any] | None = None) -> tuple[dict[str, Any],
                                                                                                 dict[str, Any]]:
    spec: dict[str, Any] = {"containers": [{"name": "main", **({"securityContext": container} if container else {})}]}
    if context:
        spec["securityContext"] = context
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": spec}, spec["containers"][0]


def decide(context: dict[str, Any] | None = None, container: dict[str, Any] | None = None, *, uid: int = 0,
           gid: int = 0) -> RunAs:
    obj, c = pod(context, container)
    return run_as(obj, c, agent_uid=uid, agent_gid=gid, group_of=lambda user: user + 1)


def test_nothing_asked_runs_as_the_agent() -> None:
    assert decide() == RunAs() and not decide().switches
    assert decide(uid=1000, gid=1000) == RunAs()


def test_root_agent_switches_to_the_asked_user_and_group() -> None:
    assert decide({"runAsUser": 65534, "runAsGroup": 65534}) == RunAs(65534, 65534)
    assert decide({"runAsUser": 1000}) == RunAs(1000, 1001)  # the user's primary group
    assert decide({"runAsGroup": 5}) == RunAs(None, 5)


def test_the_container_overrides_the_pod_field_by_field() -> None:
    assert decide({"runAsUser": 1, "runAsGroup": 2}, {"runAsUser": 3}) == RunAs(3, 2)


def test_run_as_non_root() -> None:
    with pytest.raises(IdentityError, match="runAsNonRoot and image will run as root"):
        decide({"runAsNonRoot": True})
    with pytest.raises(IdentityError, match="runAsUser breaks non-root policy"):
        decide({"runAsNonRoot": True, "runAsUser": 0})
    assert decide({"runAsNonRoot": True, "runAsUser": 7}) == RunAs(7, 8)
    assert decide({"runAsNonRoot": True}, uid=1000, gid=1000) == RunAs()  # the agent is not root: fine


def test_a_non_root_agent_cannot_become_someone_else() -> None:
    with pytest.raises(IdentityError, match="cannot run as user 1000: corral's agent is not root"):
        decide({"runAsUser": 1000}, uid=500, gid=500)
    with pytest.raises(IdentityError, match="cannot run as group 9"):
        decide({"runAsGroup": 9}, uid=500, gid=500)
    assert decide({"runAsUser": 500, "runAsGroup": 500}, uid=500, gid=500) == RunAs()


@pytest.mark.parametrize("value", [-1, "1000", 1.5, True])
def test_malformed_ids_are_refused(value: Any) -> None:
    with pytest.raises(IdentityError, match="runAsUser"):
        decide({"runAsUser": value})


@given(st.integers(0, 2**31), st.integers(0, 2**31), st.integers(1, 2**31), st.booleans())
def test_a_decision_never_runs_a_non_root_policy_as_root(user: int, group: int, agent: int, root_agent: bool) -> None:
    agent_uid = 0 if root_agent else agent
    try:
        result = decide({"runAsUser": user, "runAsGroup": group, "runAsNonRoot": True}, uid=agent_uid, gid=agent_uid)
    except IdentityError:
        return
    effective = agent_uid if result.uid is None else result.uid
    assert effective != 0 and effective == user
