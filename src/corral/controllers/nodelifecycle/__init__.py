"""The node lifecycle controller: notice dead nodes and move their pods away.

A node's agent renews its Lease (``kube-node-lease/<node>``) every heartbeat.
When the lease has not been renewed for ``grace_period`` (40 s by default, or the
lease's own ``leaseDurationSeconds`` when that is longer), the controller sets every node condition to ``Unknown`` (``NodeStatusUnknown``) and
taints the node ``node.kubernetes.io/unreachable:NoExecute``. Pods on a tainted
node are evicted once their toleration for that taint runs out —
``tolerationSeconds`` of a matching toleration, or ``default_toleration``
(300 s, what Kubernetes' admission adds) when the pod has none; a toleration
without ``tolerationSeconds`` keeps the pod forever. Eviction records an Event
and deletes the pod with ``gracePeriodSeconds=0`` (nobody is left on the node
to carry out a graceful stop), so that owners recreate it elsewhere. When the
lease is renewed again, the taint is removed and the agent reports ``Ready``.

Decisions are pure functions (:func:`lease_expired`, :func:`eviction_time`);
:class:`NodeLifecycleReconciler` applies them per node key, level-triggered, and
asks to be called again at the next deadline.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from corral.api.registry import Obj
from corral.client import ApiClient, ApiError, EventRecorder, Informer, InformerFactory
from corral.controllers.runtime import Controller, Result
from corral.util.clock import Clock, SystemClock, format_timestamp, parse_timestamp

UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
LEASE_NAMESPACE = "kube-node-lease"


@dataclass(frozen=True)
class NodeLifecycleConfig:
    grace_period: float = 40.0
    default_toleration: float = 300.0
    resync: float = 30.0  # a safety net: lease events and deadlines drive reconciles


def last_heartbeat(node: Obj, lease: Obj | None) -> datetime:
    """The newest sign of life: the lease's ``renewTime``, else the node's creation."""
    if lease is not None:
        renew = (lease.get("spec") or {}).get("renewTime")
        if renew:
            return parse_timestamp(str(renew))
    created = (node.get("metadata") or {}).get("creationTimestamp")
    if created:
        return parse_timestamp(str(created))
    return datetime.min.replace(tzinfo=None)


def effective_grace(lease: Obj | None, grace: float) -> float:
    """The controller's grace period, or the lease's own ``leaseDurationSeconds`` when longer.

    Holders that renew slowly on purpose (simulated nodes at scale renew every
    ``N/50`` seconds) declare it in their lease and are not declared dead early.
    """
    declared = ((lease or {}).get("spec") or {}).get("leaseDurationSeconds")
    try:
        return max(grace, float(declared)) if declared is not None else grace
    except (TypeError, ValueError):
        return grace


def lease_expired(node: Obj, lease: Obj | None, now: datetime, grace: float) -> bool:
    beat = last_heartbeat(node, lease)
    if beat.tzinfo is None:
        return True
    return (now - beat).total_seconds() > effective_grace(lease, grace)


def unreachable_taint(node: Obj) -> dict[str, Any] | None:
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("key") == UNREACHABLE_TAINT and taint.get("effect") == "NoExecute":
            return dict(taint)
    return None


def toleration_seconds(pod: Obj, default: float) -> float | None:
    """How long the pod tolerates the unreachable taint (None: forever)."""
    for toleration in (pod.get("spec") or {}).get("tolerations") or []:
        key = toleration.get("key")
        operator = toleration.get("operator", "Equal")
        effect = toleration.get("effect")
        key_matches = (key == UNREACHABLE_TAINT) or (not key and operator == "Exists")
        if key_matches and effect in (None, "", "NoExecute"):
            seconds = toleration.get("tolerationSeconds")
            return None if seconds is None else max(0.0, float(seconds))
    return default


def eviction_time(pod: Obj, taint_added: datetime, default: float) -> datetime | None:
    seconds = toleration_seconds(pod, default)
    return None if seconds is None else taint_added + timedelta(seconds=seconds)


def unknown_conditions(node: Obj, now: datetime) -> list[dict[str, Any]]:
    stamp = format_timestamp(now)
    out = []
    for condition in (node.get("status") or {}).get("conditions") or []:
        updated = dict(condition)
        if condition.get("type") in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
            if condition.get("status") != "Unknown":
                updated["lastTransitionTime"] = stamp
            updated["status"] = "Unknown"
            updated["reason"] = "NodeStatusUnknown"
            updated["message"] = "corral agent stopped posting node status (its lease expired)"
        out.append(updated)
    if not any(c.get("type") == "Ready" for c in out):
        out.append({"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                    "message": "corral agent never posted node status", "lastTransitionTime": stamp,
                    "lastHeartbeatTime": stamp})
    return out


class NodeLifecycleReconciler:
    def __init__(self, client: ApiClient, *, nodes: Informer, leases: Informer, pods: Informer,
                 config: NodeLifecycleConfig, clock: Clock, events: EventRecorder) -> None:
        self.client = client
        self.nodes = nodes
        self.leases = leases
        self.pods = pods
        self.config = config
        self.clock = clock
        self.events = events
        self.evicted = 0

    async def reconcile(self, key: str) -> Result | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        name = node["metadata"]["name"]
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
        now = self.clock.now()
        taint = unreachable_taint(node)
        if not lease_expired(node, lease, now, self.config.grace_period):
            if taint is not None:
                await self._set_taints(name, [t for t in node.get("spec", {}).get("taints") or []
                                              if t.get("key") != UNREACHABLE_TAINT])
                await self.events.record(node, "Normal", "NodeReachable", f"node {name}'s lease is renewed again")
            deadline = last_heartbeat(node, lease) + timedelta(seconds=effective_grace(lease, self.config.grace_period))
            return Result(requeue_after=max(0.05, (deadline - now).total_seconds() + 0.05))
        ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
                     None)
        if ready is None or ready.get("status") != "Unknown":
            await self.client.patch("v1", "nodes", name, {"status": {"conditions": unknown_conditions(node, now)}},
                                    subresource="status")
            await self.events.record(node, "Warning", "NodeNotReady",
                                     f"node {name} stopped renewing its lease; marked Ready=Unknown")
        if taint is None:
            taint = {"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": format_timestamp(now)}
            await self._set_taints(name, [*(node.get("spec", {}).get("taints") or []), taint])
        added = parse_timestamp(str(taint.get("timeAdded") or format_timestamp(now)))
        next_deadline: float | None = None
        for pod in self.pods.by_index("node", name):
            if pod["metadata"].get("deletionTimestamp") and pod["metadata"].get("deletionGracePeriodSeconds") == 0:
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            when = eviction_time(pod, added, self.config.default_toleration)
            if when is None:
                continue
            remaining = (when - now).total_seconds()
            if remaining <= 0:
                await self._evict(pod, name)
            else:
                next_deadline = remaining if next_deadline is None else min(next_deadline, remaining)
        return Result(requeue_after=next_deadline + 0.05 if next_deadline is not None else self.config.resync)

    async def _set_taints(self, name: str, taints: list[dict[str, Any]]) -> None:
        await self.client.patch("v1", "nodes", name, {"spec": {"taints": taints or None}})

    async def _evict(self, pod: Obj, node: str) -> None:
        meta = pod["metadata"]
        await self.events.record(pod, "Warning", "TaintManagerEviction",
                                 f"Marking for deletion Pod {meta.get('namespace')}/{meta['name']}: node {node} is "
                                 "unreachable and the pod's toleration ran out")
        with contextlib.suppress(ApiError):
            await self.client.patch("v1", "pods", meta["name"], {"status": {"conditions": [
                *[c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "DisruptionTarget"],
                {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                 "message": "Taint manager: deleting due to NoExecute taint",
                 "lastTransitionTime": format_timestamp(self.clock.now())}]}},
                namespace=meta.get("namespace"), subresource="status")
        try:
            await self.client.delete("v1", "pods", meta["name"], meta.get("namespace"), grace_period_seconds=0,
                                     uid=meta.get("uid"))
            self.evicted += 1
        except ApiError as error:
            if not error.not_found and not error.conflict:
                raise


class NodeLifecycleController:
    """A ``corral up`` component: informers on nodes, leases and pods plus the reconciler."""

    def __init__(self, client: ApiClient, config: NodeLifecycleConfig | None = None,
                 clock: Clock | None = None, factory: InformerFactory | None = None) -> None:
        self.client = client
        self.config = config or NodeLifecycleConfig()
        self.clock = clock or SystemClock()
        self.factory = factory or InformerFactory(client)
        self.nodes = self.factory.informer("v1", "nodes")
        self.leases = self.factory.informer("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE)
        self.pods = self.factory.informer("v1", "pods")
        self.pods.add_indexer("node", lambda p: [str(p.get("spec", {}).get("nodeName"))]
                              if (p.get("spec") or {}).get("nodeName") else [])
        self.reconciler = NodeLifecycleReconciler(
            client, nodes=self.nodes, leases=self.leases, pods=self.pods, config=self.config, clock=self.clock,
            events=EventRecorder(client, "node-lifecycle-controller", clock=self.clock))
        self.controller = Controller("node-lifecycle", self.reconciler, resync_seconds=self.config.resync)
        self.controller.watch(self.nodes)
        self.controller.watch(self.leases, lambda lease: [str(lease["metadata"]["name"])])

    async def start(self) -> None:
        await self.factory.start()
        await self.factory.wait_synced(60)
        await self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        await self.factory.stop()
