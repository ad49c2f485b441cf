"""Which user a container's process runs as: ``securityContext.runAsUser/runAsGroup/runAsNonRoot``.

The agent runs containers as processes on the host, so "the image's user" is the agent's
own uid. The fields are honoured as the kubelet honours them, where the agent can:

- the container's ``securityContext`` overrides the pod's, field by field;
- ``runAsUser``/``runAsGroup`` set: the process runs with that uid/gid (no supplementary
  groups) — the agent must be root to do that, unless they are its own uid/gid already.
  Without ``runAsGroup`` the gid is the user's primary group from the host's user
  database, or the uid's number when the host does not know the user;
- ``runAsNonRoot: true``: refused when the process would run as uid 0.

What cannot be honoured is not silently ignored: :func:`run_as` raises
:class:`IdentityError` with a message like the kubelet's, and the worker keeps the
container waiting with reason ``CreateContainerConfigError`` (``kubectl get pods`` shows
it). Pure: the agent's uid/gid and the user lookup are passed in.
"""

from __future__ import annotations

import pwd
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class IdentityError(ValueError):
    """The container's securityContext cannot be honoured here."""


@dataclass(frozen=True)
class RunAs:
    """The uid/gid to switch to in the child; ``None`` for "the agent's own" (no switch)."""

    uid: int | None = None
    gid: int | None = None

    @property
    def switches(self) -> bool:
        return self.uid is not None or self.gid is not None


def primary_gid(uid: int) -> int:
    """The user's primary group from the host's user database; the uid's number if it has none."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid


def _field(pod: Mapping[str, Any], container: Mapping[str, Any], name: str) -> Any:
    for context in (container.get("securityContext"), (pod.get("spec") or {}).get("securityContext")):
        if isinstance(context, Mapping) and context.get(name) is not None:
            return context[name]
    return None


def _int_field(pod: Mapping[str, Any], container: Mapping[str, Any], name: str) -> int | None:
    value = _field(pod, container, name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise IdentityError(f"securityContext.{name}: {value!r} is not a non-negative integer")
    return value


def run_as(pod: Mapping[str, Any], container: Mapping[str, Any], *, agent_uid: int, agent_gid: int,
           group_of: Callable[[int], int] = primary_gid) -> RunAs:
    """The identity the container's process gets, or :class:`IdentityError` saying why it cannot run."""
    meta = pod.get("metadata") or {}
    where = f'(pod: "{meta.get("name")}_{meta.get("namespace", "default")}({meta.get("uid", "")})", ' \
            f'container: {container.get("name")})'
    uid = _int_field(pod, container, "runAsUser")
    gid = _int_field(pod, container, "runAsGroup")
    non_root = _field(pod, container, "runAsNonRoot") is True
    effective_uid = agent_uid if uid is None else uid
    if non_root and effective_uid == 0:
        if uid is None:
            raise IdentityError(f"container has runAsNonRoot and image will run as root {where}")
        raise IdentityError(f"container's runAsUser breaks non-root policy {where}")
    if uid is not None and gid is None:
        gid = agent_gid if uid == agent_uid else group_of(uid)
    if agent_uid != 0:
        if uid is not None and uid != agent_uid:
            raise IdentityError(f"cannot run as user {uid}: corral's agent is not root (it runs as uid {agent_uid}) "
                                f"{where}")
        if gid is not None and gid != agent_gid:
            raise IdentityError(f"cannot run as group {gid}: corral's agent is not root (it runs as gid "
                                f"{agent_gid}) {where}")
        return RunAs()  # its own uid and gid: nothing to switch
    if uid is None and gid is None:
        return RunAs()
    return RunAs(uid, gid)
