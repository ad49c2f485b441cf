"""The InferenceService controller: revisions, replica pods, traffic, rollouts and autoscaling.

A level-triggered reconciler (run by :class:`corral.controllers.runtime.Controller`)
reads an InferenceService, its ``InferenceRevision`` objects and its pods from
informers, and:

1. makes a new immutable revision when the template's hash has none;
2. asks :func:`~corral.controllers.inferenceservice.plan.plan_rollout` which
   revision is stable, which is the canary, how traffic splits, and whether to
   promote or roll back (marking the revision failed, with an Event and
   ``status.rolledBack`` saying why);
3. splits the autoscaler's desired replica count over the revisions and creates
   or deletes pods (owned by their revision, labelled with service and revision);
4. writes ``status`` — URL, traffic (which the gateway routes by), revisions,
   replica counts, conditions.

Autoscaling runs beside it: every ``tick`` the controller reads the gateway's
metrics feed (an injected coroutine — in-process from ``corral up``, or HTTP
``GET <gateway>/_corral/feed`` via :func:`http_feed`, so it works the same on a
real cluster), feeds the injected autoscaler (:class:`corral.autoscaling.autoscaler.Autoscaler`)
and enqueues the services whose desired count changed. The gateway's activator
calls :meth:`InferenceServiceController.activate` to scale a service from zero
without waiting for a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from corral.api.registry import Obj
from corral.api.v1alpha1.inferenceservice import (
    API_VERSION,
    PLURAL,
    REVISION_LABEL,
    REVISION_PLURAL,
    SERVICE_LABEL,
)
from corral.client import ApiClient, ApiError, EventRecorder, InformerFactory, split_key
from corral.controllers.inferenceservice.plan import (
    RevisionCounters,
    new_revision,
    plan_rollout,
    pod_changes,
    pod_health,
    replica_pod,
    revision_failed,
    revision_name,
    revision_number,
    split_replicas,
    start_up,
    template_hash,
    time_to_ready,
)
from corral.controllers.runtime import Controller, Result
from corral.util.clock import Clock, SystemClock, format_timestamp, parse_timestamp

log = logging.getLogger(__name__)

FeedFn = Callable[[], Awaitable[dict[str, Any]]]


class ScaleDecision(Protocol):
    @property
    def replicas(self) -> int: ...

    @property
    def reason(self) -> str: ...


class ScaleAdvisor(Protocol):
    """What the controller needs from the autoscaler (``corral.autoscaling.autoscaler.Autoscaler``).

    Injected by whoever composes the process (``corral up``), since controllers and the
    autoscaling policies are sibling layers.
    """

    revision_counters: dict[str, dict[str, dict[str, int]]]
    outstanding: dict[str, dict[str, int]]

    def observe(self, feed: dict[str, Any], services: dict[str, Obj],
                replicas: dict[str, tuple[int, int, float | None]],
                start_ups: Mapping[str, Sequence[tuple[float, bool]]] | None = None) -> Mapping[str, ScaleDecision]: ...

    def desired(self, key: str) -> ScaleDecision | None: ...

    def activate(self, key: str, service: Obj | None = None) -> object: ...

    def forget(self, key: str) -> None: ...


def http_feed(gateway_url: str, token: str | None = None) -> FeedFn:
    """Read the gateway's autoscaler feed over HTTP (the way it works on a real cluster); the gateway
    wants a bearer token the API server accepts, so the controller presents its own."""
    session: dict[str, aiohttp.ClientSession] = {}

    async def fetch() -> dict[str, Any]:
        if "s" not in session or session["s"].closed:
            session["s"] = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"} if token else None)
        async with session["s"].get(f"{gateway_url.rstrip('/')}/_corral/feed") as response:
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data

    return fetch


def _condition(conditions: list[dict[str, Any]], kind: str, value: tuple[str, str, str], *,
               now: str, generation: int | None) -> dict[str, Any]:
    status, reason, message = value
    previous = next((c for c in conditions if c.get("type") == kind), None)
    since = now
    if previous is not None and previous.get("status") == status:
        since = previous.get("lastTransitionTime", now)
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": since, "observedGeneration": generation}


class InferenceServiceReconciler:
    def __init__(self, owner: InferenceServiceController) -> None:
        self.owner = owner

    async def reconcile(self, key: str) -> Result | None:
        return await self.owner.reconcile(key)


def traffic_stats(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Request rate and mean latency between two gateway feed snapshots of one service (pure)."""
    window = float(current.get("time", 0.0)) - float(previous.get("time", 0.0))
    completions = int(current.get("completions", 0)) - int(previous.get("completions", 0))
    busy = float(current.get("serviceSeconds", 0.0)) - float(previous.get("serviceSeconds", 0.0))
    stats: dict[str, Any] = {
        "requestsPerSecond": round(completions / window, 2) if window > 0 else 0.0,
        "inFlight": int(current.get("inFlight", 0)),
        "windowSeconds": round(max(window, 0.0), 2),
    }
    if completions > 0:
        stats["meanLatencyMs"] = round(1000 * busy / completions, 1)
    return stats


def stats_changed(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Worth a status write: traffic started or stopped, or the rate moved by more than 10 %."""
    if old is None:
        return True
    before, after = float(old.get("requestsPerSecond", 0.0)), float(new.get("requestsPerSecond", 0.0))
    if (before == 0) != (after == 0):
        return True
    return abs(after - before) > 0.1 * max(before, after)


class InferenceServiceController:
    """A corral component: ``await start()`` / ``await stop()``."""

    def __init__(
        self,
        client: ApiClient,
        autoscaler: ScaleAdvisor,
        *,
        gateway_url: str = "",
        feed: FeedFn | None = None,
        clock: Clock | None = None,
        tick: float = 2.0,
        namespace: str | None = None,
    ) -> None:
        self.client = client
        self.gateway_url = gateway_url.rstrip("/")
        self.feed = feed or (http_feed(gateway_url, client.token) if gateway_url else None)
        self.clock = clock or SystemClock()
        self.tick = tick
        self.factory = InformerFactory(client)
        self.services = self.factory.informer(API_VERSION, PLURAL, namespace)
        self.revisions = self.factory.informer(API_VERSION, REVISION_PLURAL, namespace)
        self.pods = self.factory.informer("v1", "pods", namespace, label_selector=SERVICE_LABEL)
        self.autoscaler = autoscaler
        self.recorder = EventRecorder(client, "inferenceservice-controller", clock=self.clock)
        self.controller = Controller("inferenceservice", InferenceServiceReconciler(self), workers=2,
                                     resync_seconds=30)
        self.controller.watch(self.services)
        self.controller.watch_owned(self.revisions, "InferenceService")
        self.controller.watch(self.pods, self._pod_keys)
        self._suffixes = secrets.SystemRandom()
        self._feed_snapshots: dict[str, dict[str, Any]] = {}
        self._traffic: dict[str, dict[str, Any]] = {}
        self._starting: dict[str, tuple[str, datetime]] = {}
        """Replica pods still starting: uid → (service key, creation time)."""
        self._started: set[str] = set()
        """Uids of the pods whose start-up was already reported (forgotten once the pod is gone)."""

    @staticmethod
    def _pod_keys(pod: Obj) -> list[str]:
        metadata = pod.get("metadata") or {}
        name = (metadata.get("labels") or {}).get(SERVICE_LABEL)
        return [f"{metadata.get('namespace') or 'default'}/{name}"] if name else []

    async def start(self) -> None:
        await self.factory.start()
        await self.factory.wait_synced(60)
        await self.controller.start()
        self.controller.supervisor.spawn("autoscaler", self._autoscale_loop)  # stopped with the controller

    async def stop(self) -> None:
        await self.controller.stop()
        await self.factory.stop()

    # ---- activation & autoscaling ------------------------------------------------------------

    def activate(self, key: str) -> None:
        """The gateway holds a request for ``key`` and it has no ready replica: scale up now."""
        self.autoscaler.activate(key, self.services.get(key))
        self.controller.enqueue(key)

    def _replica_counts(self) -> dict[str, tuple[int, int, float | None]]:
        grouped: dict[str, list[Obj]] = {}
        for pod in self.pods.list():
            for key in self._pod_keys(pod):
                grouped.setdefault(key, []).append(pod)
        out: dict[str, tuple[int, int, float | None]] = {}
        for key, pods in grouped.items():
            healths = [pod_health(p) for p in pods]
            ready = sum(1 for h in healths if h.ready)
            current = sum(1 for h in healths if not h.terminating and not h.finished)
            out[key] = (ready, current, time_to_ready(pods))
        return out

    def take_start_ups(self) -> dict[str, list[tuple[float, bool]]]:
        """The replica start-ups that ended since the last call, per service, each reported once.

        A pod that became Ready reports (ready − created, True); one terminating, finished or
        already gone without having become ready reports (age, False).
        """
        now = self.clock.now()
        out: dict[str, list[tuple[float, bool]]] = {}
        seen: set[str] = set()
        for pod in self.pods.list():
            metadata = pod.get("metadata") or {}
            uid = metadata.get("uid")
            keys = self._pod_keys(pod)
            if not uid or not keys:
                continue
            seen.add(uid)
            if uid in self._started:
                continue
            ended = start_up(pod, now)
            if ended is None:
                if uid not in self._starting and metadata.get("creationTimestamp"):
                    self._starting[uid] = (keys[0], parse_timestamp(metadata["creationTimestamp"]))
                continue
            self._starting.pop(uid, None)
            self._started.add(uid)
            out.setdefault(keys[0], []).append(ended)
        for uid in [u for u in self._starting if u not in seen]:  # deleted between two looks
            key, created = self._starting.pop(uid)
            out.setdefault(key, []).append((max(0.0, (now - created).total_seconds()), False))
        self._started &= seen
        return out

    async def autoscale_once(self) -> None:
        if self.feed is None:
            return
        feed = await self.feed()
        services = {f"{(s['metadata'].get('namespace') or 'default')}/{s['metadata']['name']}": s
                    for s in self.services.list()}
        decisions = self.autoscaler.observe(feed, services, self._replica_counts(), self.take_start_ups())
        for key, decision in decisions.items():
            status = services[key].get("status") or {}
            if decision.replicas != status.get("desiredReplicas") or status.get("canaryRevision"):
                self.controller.enqueue(key)
        for key, snapshot in (feed.get("services") or {}).items():
            previous = self._feed_snapshots.get(key)
            self._feed_snapshots[key] = snapshot
            if previous is None or key not in services:
                continue
            stats = traffic_stats(previous, snapshot)
            if stats_changed((services[key].get("status") or {}).get("trafficStats"), stats):
                self._traffic[key] = stats
                self.controller.enqueue(key)

    async def _autoscale_loop(self) -> None:
        while True:
            await self.clock.sleep(self.tick)
            try:
                await self.autoscale_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the gateway may be restarting; try again next tick
                log.warning("autoscaler: reading the gateway feed failed: %s", error)

    # ---- reconcile ---------------------------------------------------------------------------

    def url_for(self, service: Obj) -> str:
        spec = service.get("spec") or {}
        route = spec.get("route") or {}
        prefix = route.get("pathPrefix") or f"/v1/models/{service['metadata']['name']}"
        base = self.gateway_url
        if route.get("host"):
            port = base.rsplit(":", 1)[1] if base.count(":") >= 2 else ""
            base = f"http://{route['host']}" + (f":{port}" if port else "")
        return f"{base}{prefix}"

    async def reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        namespace = namespace or "default"
        service = self.services.get(key)
        if service is None:
            self.autoscaler.forget(key)
            return None
        metadata = service["metadata"]
        if metadata.get("deletionTimestamp"):
            return None
        spec = service.get("spec") or {}
        uid = metadata.get("uid")
        revisions = [
            r for r in self.revisions.list()
            if (r["metadata"].get("namespace") or "default") == namespace
            and any(o.get("uid") == uid for o in r["metadata"].get("ownerReferences") or [])
        ]
        current_hash = template_hash(spec.get("template") or {})
        if not any((r.get("spec") or {}).get("templateHash") == current_hash for r in revisions):
            number = max((revision_number(r) for r in revisions), default=0) + 1
            try:
                created = await self.client.create(new_revision(service, number))
            except ApiError as error:
                if error.code == 409:
                    return Result(requeue_after=0.2)  # our cache is behind; look again
                raise
            revisions.append(created)
            await self.recorder.record(service, "Normal", "RevisionCreated",
                                       f"revision {revision_name(created)} for template {current_hash}")
        pods = [p for p in self.pods.list()
                if (p["metadata"].get("namespace") or "default") == namespace
                and (p["metadata"].get("labels") or {}).get(SERVICE_LABEL) == name]
        pods_by_revision: dict[str, list[Obj]] = {}
        for pod in pods:
            pods_by_revision.setdefault((pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""), []).append(pod)
        raw_counters = self.autoscaler.revision_counters.get(key, {})
        counters = {rev: RevisionCounters(int(c.get("requests", 0)), int(c.get("errors", 0)))
                    for rev, c in raw_counters.items()}
        now = self.clock.now()
        plan = plan_rollout(service, revisions, pods_by_revision, counters, now)
        status = dict(service.get("status") or {})

        if plan.rolled_back is not None:
            failed = next(r for r in revisions if revision_name(r) == plan.rolled_back["revision"])
            failed_status = dict(failed.get("status") or {})
            failed_status.update({"failed": True, "failureReason": plan.rolled_back["reason"],
                                  "failureMessage": plan.rolled_back["message"]})
            with contextlib.suppress(ApiError):
                updated = await self.client.update_status({**failed, "status": failed_status})
                revisions = [updated if revision_name(r) == revision_name(updated) else r for r in revisions]
            status["rolledBack"] = {**plan.rolled_back, "time": format_timestamp(now)}
        for event_type, reason, message in plan.events:
            await self.recorder.record(service, event_type, reason, message)  # type: ignore[arg-type]

        decision = self.autoscaler.desired(key)
        min_replicas = int(spec.get("minReplicas", 1))
        max_replicas = int(spec.get("maxReplicas", 10))
        if decision is not None:
            total = decision.replicas
            reason = decision.reason
        else:
            total = int(status.get("desiredReplicas", min_replicas))
            reason = status.get("autoscalerReason") or "Initial"
        total = max(min_replicas, min(max_replicas, total))
        wanted = split_replicas(total, plan)
        revision_entries = []
        for revision in sorted(revisions, key=revision_number):
            rev_name = revision_name(revision)
            want = 0 if revision_failed(revision) else wanted.get(rev_name, 0)
            rev_pods = pods_by_revision.get(rev_name, [])
            changes = pod_changes(rev_pods, want, self.autoscaler.outstanding.get(key))
            for pod_name in changes.delete:
                with contextlib.suppress(ApiError):
                    await self.client.delete("v1", "pods", pod_name, namespace)
            for _ in range(changes.create):
                suffix = "".join(self._suffixes.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(5))
                await self.client.create(replica_pod(service, revision, suffix))
            healths = [pod_health(p) for p in rev_pods]
            if want or rev_pods or rev_name in (plan.stable, plan.canary):
                entry: dict[str, Any] = {
                    "name": rev_name,
                    "replicas": sum(1 for h in healths if not h.terminating and not h.finished),
                    "readyReplicas": sum(1 for h in healths if h.ready),
                    "desiredReplicas": want,
                }
                if revision_failed(revision):
                    entry["failed"] = True
                revision_entries.append(entry)

        ready_total = sum(1 for p in pods if pod_health(p).ready)
        live_total = sum(1 for p in pods if not pod_health(p).terminating and not pod_health(p).finished)
        previous_desired = status.get("desiredReplicas")
        stamp = format_timestamp(now)
        if previous_desired is not None and previous_desired != total:
            await self.recorder.record(service, "Normal", "Scaled",
                                       f"desired replicas {previous_desired} → {total} ({reason})")
            status["lastScaleTime"] = stamp
        status.update({
            "url": self.url_for(service),
            "latestRevision": plan.latest,
            "stableRevision": plan.stable,
            "canaryRevision": plan.canary,
            "canarySince": plan.canary_since,
            "canaryBaseline": plan.canary_baseline,
            "traffic": plan.traffic,
            "revisions": revision_entries,
            "replicas": live_total,
            "readyReplicas": ready_total,
            "desiredReplicas": total,
            "autoscalerReason": reason,
            "observedGeneration": metadata.get("generation"),
        })
        if key in self._traffic:
            status["trafficStats"] = self._traffic[key]
        conditions = list(status.get("conditions") or [])
        generation = metadata.get("generation")
        stable_ready = sum(1 for p in pods_by_revision.get(plan.stable or "", []) if pod_health(p).ready)
        if plan.stable is None:
            ready_cond = ("False", "NoHealthyRevision",
                          "no revision is healthy" + (f": {status['rolledBack']['message']}"
                                                      if status.get("rolledBack") else ""))
        elif stable_ready > 0:
            ready_cond = ("True", "Serving", f"{stable_ready} ready replica(s) of {plan.stable}")
        elif total == 0:
            ready_cond = ("True", "ScaledToZero", "no replicas; the gateway activates one on the first request")
        else:
            ready_cond = ("False", "ReplicasStarting", f"waiting for a ready replica of {plan.stable}")
        if plan.canary:
            rollout_cond = ("False", "CanaryInProgress", plan.waiting or f"canary {plan.canary}")
        elif status.get("rolledBack") and status["rolledBack"].get("revision") == plan.latest:
            rb = status["rolledBack"]
            rollout_cond = ("False", rb["reason"], f"revision {rb['revision']} was rolled back: {rb['message']}")
        else:
            rollout_cond = ("True", "RolledOut", f"all traffic on {plan.stable}" if plan.stable else "no revision")
        new_conditions = [
            _condition(conditions, "Ready", ready_cond, now=stamp, generation=generation),
            _condition(conditions, "RolloutComplete", rollout_cond, now=stamp, generation=generation),
        ]
        status["conditions"] = new_conditions
        status = {k: v for k, v in status.items() if v is not None}
        if status != (service.get("status") or {}):
            try:
                await self.client.update_status({**service, "status": status})
            except ApiError as error:
                if error.code == 409:
                    return Result(requeue_after=0.1)
                raise
        if plan.canary or plan.waiting or live_total != total or ready_total < total:
            return Result(requeue_after=1.0)
        return None
