"""A container's environment, command line and pod IP, computed from the pod alone.

Pure functions: given the pod JSON, the container, the pod IP, the node name and
the node's allocatable resources, they return what the process gets, exactly as
the kubelet would: ``env`` entries in order with ``$(VAR)`` expansion,
``valueFrom.fieldRef`` (``metadata.name``, ``metadata.namespace``,
``metadata.uid``, ``metadata.labels['k']``, ``metadata.annotations['k']``,
``status.podIP``, ``spec.nodeName``, ``spec.serviceAccountName``,
``status.hostIP``) and ``valueFrom.resourceFieldRef`` (``limits.cpu``,
``requests.memory``, … with ``divisor``; an unset limit falls back to the node's
allocatable, as in Kubernetes).

Pod IPs are loopback addresses: each pod gets its own ``127.A.B.C`` from a
per-node block, so two pods can both listen on the same port. Linux routes all
of ``127.0.0.0/8`` to the loopback interface, so no setup is needed; servers
must bind to ``$POD_IP`` (not ``0.0.0.0``) for the separation to hold. Which block
an agent gets — one no other agent on the machine holds — is :mod:`corral.agent.ipblocks`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from corral.util.quantity import QuantityError, parse_quantity

if TYPE_CHECKING:  # the runtime core stays free of pydantic (the GPU check runs it bare)
    from corral.api.registry import Obj

# Host variables a process inherits (containers have no image filesystem here).
INHERITED_HOST_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "TMPDIR", "SHELL")

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class EnvError(ValueError):
    """An env entry that cannot be resolved; the message names the field."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names are replaced, ``$$`` is a literal ``$``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REF.sub(replace, text)


def field_ref(pod: Obj, path: str, pod_ip: str, node_name: str) -> str:
    metadata = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", "default"),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path])
    match = _LABEL_REF.match(path)
    if match:
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    raise EnvError(f"valueFrom.fieldRef.fieldPath: unsupported value {path!r}")


def resource_ref(pod: Obj, container_name: str, ref: Mapping[str, Any],
                 allocatable: Mapping[str, str]) -> str:
    resource = str(ref.get("resource", ""))
    target = ref.get("containerName") or container_name
    container = next((c for c in pod.get("spec", {}).get("containers", []) if c.get("name") == target), None)
    if container is None:
        container = next((c for c in pod.get("spec", {}).get("initContainers", []) if c.get("name") == target), None)
    if container is None:
        raise EnvError(f"valueFrom.resourceFieldRef.containerName: no container {target!r}")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not name:
        raise EnvError(f"valueFrom.resourceFieldRef.resource: unsupported value {resource!r}")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(name)
    if value is None:
        value = allocatable.get(name, "0")
    try:
        amount = parse_quantity(value)
        divisor = parse_quantity(ref.get("divisor", "1") or "1")
    except QuantityError as error:
        raise EnvError(f"valueFrom.resourceFieldRef: {error}") from None
    if divisor == 0:
        raise EnvError("valueFrom.resourceFieldRef.divisor: must not be zero")
    return str(math.ceil(Fraction(amount) / divisor))


def container_env(pod: Obj, container: Mapping[str, Any], *, pod_ip: str, node_name: str,
                  base: Mapping[str, str], allocatable: Mapping[str, str]) -> dict[str, str]:
    """The full environment of one container process.

    ``base`` holds what the agent provides (host variables, ``POD_IP``, GPU
    variables); the container's own ``env`` comes after and may override it,
    except that GPU visibility is re-applied by the caller.
    """
    env = dict(base)
    for entry in container.get("env") or []:
        name = entry.get("name")
        if not name:
            raise EnvError(f"containers[{container.get('name')}].env: an entry has no name")
        if "value" in entry and entry.get("value") is not None:
            env[name] = expand(str(entry["value"]), env)
            continue
        source = entry.get("valueFrom") or {}
        if "fieldRef" in source:
            env[name] = field_ref(pod, str(source["fieldRef"].get("fieldPath", "")), pod_ip, node_name)
        elif "resourceFieldRef" in source:
            env[name] = resource_ref(pod, str(container.get("name")), source["resourceFieldRef"], allocatable)
        elif source:
            kind = next(iter(source))
            raise EnvError(f"containers[{container.get('name')}].env[{name}].valueFrom.{kind}: not supported "
                           "by the corral agent")
        else:
            env[name] = ""
    return env


def command_line(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """``command`` + ``args`` with ``$(VAR)`` expansion; without an image there is no entrypoint."""
    command = [expand(str(a), env) for a in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    argv = command + args
    if not argv:
        raise EnvError(f"containers[{container.get('name')}].command: required, since the corral agent runs "
                       "processes on the host and has no image entrypoint")
    return argv


class PodIPAllocator:
    """Hands out loopback addresses from a block; never ``.0``/``.255`` host parts."""

    def __init__(self, block: ipaddress.IPv4Network) -> None:
        self._block = block
        self._used: set[str] = set()
        self._next = 1

    @property
    def block(self) -> ipaddress.IPv4Network:
        return self._block

    def reserve(self, address: str) -> bool:
        """Mark an address taken (re-adoption after an agent restart); False if outside the block."""
        try:
            if ipaddress.IPv4Address(address) not in self._block:
                return False
        except ValueError:
            return False
        self._used.add(address)
        return True

    def allocate(self) -> str:
        size = self._block.num_addresses
        for _ in range(size):
            offset = self._next
            self._next = self._next + 1 if self._next + 1 < size - 1 else 1
            address = self._block.network_address + offset
            if int(address) & 0xFF in (0, 255):
                continue
            text = str(address)
            if text not in self._used:
                self._used.add(text)
                return text
        raise RuntimeError(f"no free pod IP left in {self._block}")

    def release(self, address: str) -> None:
        self._used.discard(address)

    def in_use(self) -> Iterable[str]:
        return frozenset(self._used)
