"""Poison objects against the scheduler and the queue manager (issue 22, item 2).

Objects the API server may reject today can still be in a store written by an older version,
so the tests put them into the store past validation (:func:`store_unvalidated`), then
create good objects over HTTP, and check that the loops keep serving: the good pod is
bound, the good Queue admits, and the bad object carries a condition and an Event that name
the field. Each poison object is in the store *before* the scheduler starts too (the case
where it used to kill the loop again at every restart).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral.apiserver.server import RunningServer
from corral.client import ApiClient, ApiError
from corral.scheduler.quota.component import QueuedScheduler
from corral.scheduler.service import SchedulerConfig
from corral.sim.nodes import SimNodes, SimNodeSpec
from corral.testing.apiserver import running_apiserver, store_unvalidated

pytestmark = pytest.mark.timeout(120)

GPU = "nvidia.com/gpu"
API = "corral.dev/v1alpha1"


def pod(name: str, *, gpus: int = 1, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox",
                                            "resources": {"limits": {GPU: str(gpus)}}}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {},
                         "annotations": {"corral.dev/sim-duration": "300s"}},
            "spec": body, "status": {"phase": "Pending"}}


def with_limit(obj: dict[str, Any], resource: str, value: str) -> dict[str, Any]:
    obj["spec"]["containers"][0]["resources"]["limits"][resource] = value
    return obj


POISON_PODS = {
    "bad-overhead": (pod("bad-overhead", overhead={"cpu": "abc"}), "spec.overhead[cpu]"),
    "bad-affinity": (pod("bad-affinity", affinity={"nodeAffinity": "x"}), "spec.affinity.nodeAffinity"),
    "bad-gpus": (with_limit(pod("bad-gpus"), GPU, "1e5000"), "resources.limits[nvidia.com/gpu]"),
    "bad-tolerations": (pod("bad-tolerations", tolerations="x"), "spec.tolerations"),
    "bad-priority": (pod("bad-priority", priority="high"), "spec.priority"),
}


@dataclass
class Cluster:
    server: RunningServer
    client: ApiClient
    scheduler: QueuedScheduler

    async def until(self, check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def bound(self, name: str) -> str | None:
        obj = await self.client.get_or_none("v1", "pods", name, "default")
        return None if obj is None else (obj.get("spec") or {}).get("nodeName")

    async def condition(self, plural: str, name: str, kind: str, namespace: str | None = "default",
                        api: str = "v1") -> dict[str, Any] | None:
        obj = await self.client.get_or_none(api, plural, name, namespace)
        conditions = ((obj or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c.get("type") == kind), None)

    async def events_for(self, name: str, namespace: str = "default") -> list[dict[str, Any]]:
        events = await self.client.list("v1", "events", namespace)
        return [e for e in events["items"] if (e.get("involvedObject") or {}).get("name") == name]


@pytest.fixture
async def poisoned(tmp_path: Path) -> AsyncIterator[Cluster]:
    """A server whose store already holds every poison pod, then a scheduler started on it."""
    async with running_apiserver(tmp_path, tls=False) as server:
        for obj, _ in POISON_PODS.values():
            await store_unvalidated(server, obj)
        await store_unvalidated(server, {"apiVersion": API, "kind": "Queue", "metadata": {"name": "q-bad"},
                                         "spec": {"fairSharing": {"weight": float("inf")}}})
        client = ApiClient.from_kubeconfig(server.kubeconfig)
        nodes = SimNodes(client, [SimNodeSpec(count=1, gpus=8, gpu_model="H100-80GB", name_prefix="h100")],
                         workers=2, lease_interval=30)
        await nodes.start()
        config = SchedulerConfig(initial_backoff=0.05, max_backoff=0.2, record_scheduled_events=False)
        scheduler = QueuedScheduler(client, config=config, status_interval=0.1)
        await scheduler.start()
        try:
            yield Cluster(server, client, scheduler)
        finally:
            await scheduler.stop()
            await nodes.stop()
            await client.close()


async def test_pods_the_scheduler_cannot_parse_are_quarantined_and_the_others_scheduled(poisoned: Cluster) -> None:
    c = poisoned
    await c.client.create(pod("good-1"))
    assert await c.until(lambda: c.bound("good-1"), "the good pod bound despite the poison pods")
    for name, (_, field) in POISON_PODS.items():
        condition = await c.until(lambda name=name: c.condition("pods", name, "PodScheduled"),
                                  f"{name}: PodScheduled condition")
        assert condition["status"] == "False" and condition["reason"] == "InvalidPod", condition
        assert field in condition["message"], condition
        events = await c.until(lambda name=name: c.events_for(name), f"{name}: an Event")
        assert any(e["reason"] == "InvalidPod" and e["type"] == "Warning" and field in e["message"]
                   for e in events), events
        assert await c.bound(name) is None
    # A poison pod added while the loop runs changes nothing either.
    await store_unvalidated(c.server, pod("bad-later", overhead={"memory": "lots"}))
    await c.client.create(pod("good-2"))
    assert await c.until(lambda: c.bound("good-2"), "a good pod created after a new poison pod")
    assert c.scheduler.service.supervisor.check() is None  # nothing crashed
    # Fixed, the quarantined pod is retried and scheduled.
    await store_unvalidated(c.server, pod("bad-overhead", overhead={"cpu": "100m"}))
    assert await c.until(lambda: c.bound("bad-overhead"), "the fixed pod bound")


async def test_a_podgroup_with_a_malformed_spec_is_reported_and_other_groups_placed(poisoned: Cluster) -> None:
    c = poisoned
    await store_unvalidated(c.server, {"apiVersion": API, "kind": "PodGroup",
                                       "metadata": {"name": "g-bad", "namespace": "default"},
                                       "spec": {"minMember": 2, "scheduleTimeoutSeconds": "soon"}})
    await c.client.create({"apiVersion": API, "kind": "PodGroup", "metadata": {"name": "g-good", "namespace": "default"},
                           "spec": {"minMember": 2}})
    for name, group in (("gb-0", "g-bad"), ("gb-1", "g-bad"), ("gg-0", "g-good"), ("gg-1", "g-good")):
        await c.client.create(pod(name, labels={"corral.dev/pod-group": group}))
    assert await c.until(lambda: c.bound("gg-1"), "the good gang placed")
    assert await c.bound("gg-0")
    condition = await c.until(lambda: c.condition("pods", "gb-0", "PodScheduled"), "gb-0 condition")
    assert condition["reason"] == "InvalidPodGroup" and "scheduleTimeoutSeconds" in condition["message"]
    events = await c.until(lambda: c.events_for("g-bad"), "an Event on the PodGroup")
    assert any(e["reason"] == "InvalidPodGroup" for e in events), events
    assert await c.bound("gb-0") is None


def gpu_queue(name: str, nominal: int, namespaces: list[str], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"namespaces": namespaces, "default": True,
                            "resourceGroups": [{"flavors": [{"name": "h100", "resources": [
                                {"name": GPU, "nominalQuota": nominal}]}]}]}
    body.update(spec)
    return {"apiVersion": API, "kind": "Queue", "metadata": {"name": name}, "spec": body}


async def test_a_queue_admission_cannot_parse_is_reported_and_the_others_admit(poisoned: Cluster) -> None:
    c = poisoned
    # stored with weight .inf, which JSON keeps as null
    stored = await c.client.get(API, "queues", "q-bad")
    assert stored["spec"]["fairSharing"]["weight"] is None
    await c.client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    await c.client.create(gpu_queue("q-good", 2, ["team-a"]))
    good = pod("admitted")
    good["metadata"]["namespace"] = "team-a"
    await c.client.create(good)

    async def admitted() -> str | None:
        obj = await c.client.get_or_none("v1", "pods", "admitted", "team-a")
        return None if obj is None else (obj.get("spec") or {}).get("nodeName")

    assert await c.until(admitted, "a pod admitted by the good Queue")
    active = await c.until(lambda: c.condition("queues", "q-good", "Active", None, API), "q-good Active")
    assert active["status"] == "True"
    condition = await c.until(lambda: c.condition("queues", "q-bad", "Active", None, API), "q-bad condition")
    assert condition["status"] == "False" and condition["reason"] == "InvalidSpec"
    assert "spec.fairSharing.weight" in condition["message"], condition
    events = await c.until(lambda: c.events_for("q-bad", "default"), "an Event on q-bad")
    assert any(e["reason"] == "InvalidSpec" for e in events), events
    # Work that names the bad Queue waits and says why.
    named = pod("for-bad-queue", labels={"corral.dev/queue": "q-bad"})
    await c.client.create(named)
    waiting = await c.until(lambda: c.condition("pods", "for-bad-queue", "PodScheduled"), "a waiting pod")
    assert waiting["reason"] == "QueueInvalid" and "spec.fairSharing.weight" in waiting["message"], waiting
    # The bad Queue can be fixed through the API, and then it admits.
    await c.client.patch(API, "queues", "q-bad", {"spec": {"fairSharing": {"weight": 2}, "resourceGroups": [
        {"flavors": [{"name": "h100", "resources": [{"name": GPU, "nominalQuota": 4}]}]}]}})
    assert await c.until(lambda: c.bound("for-bad-queue"), "admitted once the Queue is fixed")
    async def active_again() -> dict[str, Any] | None:  # the False condition lingers until the manager rewrites it
        condition = await c.condition("queues", "q-bad", "Active", None, API)
        return condition if condition is not None and condition["status"] == "True" else None

    fixed = await c.until(active_again, "q-bad Active=True")
    assert fixed["reason"] != "InvalidSpec", fixed
    await c.client.delete(API, "queues", "q-bad")
    assert c.scheduler.queues.supervisor.check() is None


async def test_a_stored_object_with_a_bad_field_stays_editable(tmp_path: Path) -> None:
    """Updates ratchet: a problem the stored object already has does not block an edit of its
    labels or status (or its deletion); a problem the edit adds is still rejected."""
    async with running_apiserver(tmp_path, tls=False) as server:
        client = ApiClient.from_kubeconfig(server.kubeconfig)
        try:
            await store_unvalidated(server, {"apiVersion": API, "kind": "Queue", "metadata": {"name": "q-bad"},
                                             "spec": {"fairSharing": {"weight": float("inf")}}})
            labelled = await client.patch(API, "queues", "q-bad", {"metadata": {"labels": {"team": "a"}}})
            assert labelled["metadata"]["labels"] == {"team": "a"}
            current = await client.get(API, "queues", "q-bad")
            current["metadata"]["labels"]["owner"] = "b"
            assert (await client.update(current))["metadata"]["labels"]["owner"] == "b"
            await client.patch(API, "queues", "q-bad", {"status": {"pending": 1}}, subresource="status")
            with pytest.raises(ApiError) as rejected:
                await client.patch(API, "queues", "q-bad", {"spec": {"cohort": 5}})
            assert rejected.value.code == 422 and "spec.cohort" in str(rejected.value)
            await client.delete(API, "queues", "q-bad")
            assert await client.get_or_none(API, "queues", "q-bad") is None
        finally:
            await client.close()
