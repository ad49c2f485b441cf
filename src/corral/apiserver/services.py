"""Service defaults and ClusterIP allocation, as kube-apiserver does them.

A created Service gets ``spec.clusterIP``/``clusterIPs`` from the configured service range
(``ServerConfig.service_cidr``, default ``10.96.0.0/16`` like kubeadm's clusters), picked
at random among the free addresses (the network and broadcast addresses excepted), plus
the defaults Kubernetes fills in (``type: ClusterIP``, ``sessionAffinity: None``,
``ipFamilies``, ``ipFamilyPolicy``, ``internalTrafficPolicy``, each port's ``protocol`` and
``targetPort``) and ``status: {loadBalancer: {}}``.

* ``clusterIP: None`` makes a headless Service (``clusterIPs: [None]``); ``ExternalName``
  Services get no address.
* An explicit address must lie in the range and be free, else ``422 Invalid`` on
  ``spec.clusterIPs`` ("provided IP is already allocated" / "not in the valid range").
* An update keeps the allocated address (a body without one inherits it); changing it is
  ``422`` ("field is immutable").

Which addresses are taken is read from the stored Services themselves, so allocations
survive restarts with the store and a deleted Service frees its address at once. The
functions here are pure; the handlers pass them the stored Services and a random source.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from typing import Any

from corral.apiserver import errors

DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
HEADLESS = "None"
Obj = dict[str, Any]


def used_cluster_ips(services: Iterable[Obj]) -> set[str]:
    """Every address the given Services hold."""
    used: set[str] = set()
    for service in services:
        spec = service.get("spec")
        if not isinstance(spec, dict):
            continue
        for ip in [spec.get("clusterIP"), *(spec.get("clusterIPs") or [])]:
            if isinstance(ip, str) and ip and ip != HEADLESS:
                used.add(ip)
    return used


def _invalid(name: str, value: Any, problem: str) -> errors.ApiError:
    return errors.invalid("Service", name, [("spec.clusterIPs", f"Invalid value: {value!r}: {problem}")])


def allocate(network: ipaddress.IPv4Network | ipaddress.IPv6Network, used: set[str], rng: random.Random) -> str:
    """A free address of ``network``: random tries first, then a scan (so a nearly full range still works)."""
    first, size = int(network.network_address), network.num_addresses
    usable = range(first + 1, first + size - 1) if size > 2 else range(first, first + size)
    for _ in range(32):
        candidate = str(ipaddress.ip_address(rng.choice(usable)))
        if candidate not in used:
            return candidate
    for value in usable:
        candidate = str(ipaddress.ip_address(value))
        if candidate not in used:
            return candidate
    raise errors.ApiError(500, "InternalError", f"failed to allocate a serviceIP: range {network} is full")


def default_new_service(obj: Obj, cidr: str, used: set[str], rng: random.Random) -> None:
    """Defaults, status and the cluster IP of a Service being created (in place)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    name = str(obj.get("metadata", {}).get("name", ""))
    _default_spec(spec)
    obj["status"] = obj.get("status") or {"loadBalancer": {}}
    if spec["type"] == "ExternalName":
        return
    network = ipaddress.ip_network(cidr)
    requested = spec.get("clusterIP") or ((spec.get("clusterIPs") or [None])[0])
    if requested == HEADLESS:
        spec["clusterIP"], spec["clusterIPs"] = HEADLESS, [HEADLESS]
        return
    if requested:
        try:
            address = ipaddress.ip_address(requested)
        except ValueError:
            raise _invalid(name, requested, "must be a valid IP address or 'None'") from None
        if address not in network:
            raise _invalid(name, [requested], f"failed to allocate IP {requested}: provided IP is not in the valid "
                           f"range. The range of valid IPs is {network}")
        if str(address) in used:
            raise _invalid(name, [requested], f"failed to allocate IP {requested}: provided IP is already allocated")
        ip = str(address)
    else:
        ip = allocate(network, used, rng)
    spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
    spec.setdefault("ipFamilies", ["IPv6" if network.version == 6 else "IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")


def _default_spec(spec: Obj) -> None:
    spec["type"] = spec.get("type") or "ClusterIP"
    if spec["type"] != "ExternalName":
        spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "targetPort" not in port and "port" in port:
                port["targetPort"] = port["port"]


def keep_cluster_ips(old: Obj, new: Obj) -> None:
    """An update keeps the Service's address: inherited when the body has none, ``422`` when it differs."""
    old_spec, new_spec = old.get("spec"), new.get("spec")
    if not isinstance(old_spec, dict) or not isinstance(new_spec, dict):
        return
    _default_spec(new_spec)
    if "status" not in new and "status" in old:
        new["status"] = old["status"]
    for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
        if field in old_spec and not new_spec.get(field):
            new_spec[field] = old_spec[field]
    if old_spec.get("clusterIP") and new_spec.get("clusterIP") != old_spec["clusterIP"] \
            and new_spec.get("type") != "ExternalName":
        raise errors.invalid("Service", str(old.get("metadata", {}).get("name", "")), [
            ("spec.clusterIPs[0]", f"Invalid value: {new_spec.get('clusterIP')!r}: may not change once set "
             "(field is immutable)")])
