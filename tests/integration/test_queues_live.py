"""Queues through the whole control plane: a real API server in-process, corral's scheduler
with quota admission at its seam, simulated GPU nodes, pods and PodGroups created over HTTP.

Each test states a behaviour a user sees: borrowing, reclaim by preemption, gangs admitted
whole, StrictFIFO vs BestEffortFIFO, stopPolicy, and the Queue status table columns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral.cli.explain import explain
from corral.client import ApiClient
from corral.scheduler.quota.component import QueuedScheduler
from corral.scheduler.service import SchedulerConfig
from corral.sim.nodes import SimNodes, SimNodeSpec
from corral.testing.apiserver import running_apiserver

GPU = "nvidia.com/gpu"
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB"}
API = "corral.dev/v1alpha1"


@dataclass
class Cluster:
    client: ApiClient
    scheduler: QueuedScheduler


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_apiserver(tmp_path, tls=False) as server:
        client = ApiClient.from_kubeconfig(server.kubeconfig)
        for ns in ("team-a", "team-b"):
            await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        nodes = SimNodes(client, [SimNodeSpec(count=2, gpus=8, gpu_model="H100-80GB", name_prefix="h100")],
                         workers=4, lease_interval=30)
        await nodes.start()
        config = SchedulerConfig(initial_backoff=0.05, max_backoff=0.2, record_scheduled_events=False)
        scheduler = QueuedScheduler(client, config=config, status_interval=0.2)
        await scheduler.start()
        try:
            yield Cluster(client, scheduler)
        finally:
            await scheduler.stop()
            await nodes.stop()
            await client.close()


def queue(name: str, nominal: int, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cohort": "research", "namespaces": [name.replace("q-", "team-")], "default": True,
        "resourceGroups": [{"flavors": [{"name": "h100", "nodeLabels": H100,
                                         "resources": [{"name": GPU, "nominalQuota": nominal}]}]}],
    }
    body.update(spec)
    return {"apiVersion": API, "kind": "Queue", "metadata": {"name": name}, "spec": body}


def pod(name: str, ns: str, gpus: int, *, priority: int = 0, group: str | None = None,
        duration: str = "300s") -> dict[str, Any]:
    labels = {"corral.dev/pod-group": group} if group else {}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                         "annotations": {"corral.dev/sim-duration": duration}},
            "spec": {"priority": priority, "containers": [
                {"name": "main", "image": "busybox", "resources": {"limits": {GPU: str(gpus)}}}]}}


async def until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def node_of(client: ApiClient, ns: str, name: str) -> str | None:
    obj = await client.get_or_none("v1", "pods", name, ns)
    return None if obj is None else (obj.get("spec") or {}).get("nodeName")


async def scheduled_reason(client: ApiClient, ns: str, name: str) -> str:
    obj = await client.get("v1", "pods", name, ns)
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{condition.get('reason')}: {condition.get('message')}"
    return ""


async def test_borrowing_then_reclaim_by_preemption(cluster: Cluster) -> None:
    c = cluster.client
    await c.create(queue("q-a", 4, preemption={"reclaimWithinCohort": "Any"}))
    await c.create(queue("q-b", 4))
    # team-b borrows all of team-a's idle quota
    for i in range(2):
        await c.create(pod(f"b{i}", "team-b", 4))
        await until(lambda i=i: node_of(c, "team-b", f"b{i}"), what=f"b{i} bound")

    async def borrowed() -> Any:
        q = await c.get(API, "queues", "q-b")
        usage = (q.get("status") or {}).get("flavorsUsage") or []
        return usage and usage[0]["resources"][0] == {"name": GPU, "total": "8", "borrowed": "4"}

    await until(borrowed, what="q-b status to show 4 borrowed")
    # team-a comes back: its quota is reclaimed by evicting one of b's pods (not both)
    await c.create(pod("a0", "team-a", 4))
    await until(lambda: node_of(c, "team-a", "a0"), what="a0 bound after reclaim")
    remaining = [p["metadata"]["name"] for p in (await c.list("v1", "pods", namespace="team-b"))["items"]
                 if not p["metadata"].get("deletionTimestamp")]
    assert len(remaining) == 1
    events = (await c.list("v1", "events", namespace="team-b"))["items"]
    assert any(e.get("reason") == "Preempted" and "pod:team-a/a0" in e.get("message", "") for e in events)
    cluster.scheduler.admission.book.check_invariants()


async def test_gang_is_admitted_whole_or_not_at_all(cluster: Cluster) -> None:
    c = cluster.client
    await c.create(queue("q-a", 4))
    await c.create({"apiVersion": API, "kind": "PodGroup", "metadata": {"name": "ddp", "namespace": "team-a"},
                    "spec": {"minMember": 2}})
    for i in range(2):
        await c.create(pod(f"w{i}", "team-a", 3, group="ddp"))
    reason = await until(lambda: scheduled_reason(c, "team-a", "w0"), what="w0 to carry a reason")
    assert "QuotaExceeded" in reason and 'queue "q-a" flavor "h100" nvidia.com/gpu: requests 6' in reason
    await asyncio.sleep(0.5)
    assert await node_of(c, "team-a", "w0") is None and await node_of(c, "team-a", "w1") is None
    text = await explain(c, "podgroup", "ddp", "team-a")
    assert 'queue "q-a" (BestEffortFIFO, cohort "research"): position 1 of 1' in text
    assert 'blocked by quota: queue "q-a" flavor "h100" nvidia.com/gpu: requests 6' in text
    assert "it can never be admitted as it is" in text  # alone in its cohort: 4 GPUs at most
    # the quota grows: the gang is admitted and both pods bind
    await c.patch(API, "queues", "q-a", {"spec": {"resourceGroups": [{"flavors": [
        {"name": "h100", "nodeLabels": H100, "resources": [{"name": GPU, "nominalQuota": 8}]}]}]}})
    await until(lambda: node_of(c, "team-a", "w0"), what="gang bound")
    assert await node_of(c, "team-a", "w1")


@pytest.mark.parametrize("strategy", ["StrictFIFO", "BestEffortFIFO"])
async def test_strict_fifo_blocks_best_effort_passes(cluster: Cluster, strategy: str) -> None:
    c = cluster.client
    await c.create(queue("q-a", 4, cohort=None, queueingStrategy=strategy))
    await c.create(pod("run", "team-a", 2))
    await until(lambda: node_of(c, "team-a", "run"), what="first pod bound")
    await c.create(pod("big", "team-a", 4))
    await until(lambda: scheduled_reason(c, "team-a", "big"), what="big to wait")
    await c.create(pod("small", "team-a", 1))
    if strategy == "BestEffortFIFO":
        await until(lambda: node_of(c, "team-a", "small"), what="small to pass the head")
    else:
        reason = await until(lambda: scheduled_reason(c, "team-a", "small"), what="small to wait")
        assert "waiting behind pod:team-a/big" in reason
        assert await node_of(c, "team-a", "small") is None


async def test_stop_policy_hold_and_status_columns(cluster: Cluster) -> None:
    c = cluster.client
    await c.create(queue("q-a", 4, stopPolicy="Hold"))
    await c.create(pod("held", "team-a", 1))
    reason = await until(lambda: scheduled_reason(c, "team-a", "held"), what="held pod to carry a reason")
    assert reason.startswith("QueueHeld")

    async def status() -> Any:
        q = await c.get(API, "queues", "q-a")
        s = q.get("status") or {}
        return s if s.get("pending") == 1 and s.get("conditions", [{}])[0].get("reason") == "Held" else None

    await until(status, what="Queue status pending=1, Held")
    await c.patch(API, "queues", "q-a", {"spec": {"stopPolicy": "None"}})
    await until(lambda: node_of(c, "team-a", "held"), what="pod bound once the hold is lifted")


async def test_fair_share_orders_borrowers(cluster: Cluster) -> None:
    """Two teams with no GPUs of their own borrow from a third that lends 4 (weights equal).
    team-a already borrows 2 when both wait: the freed GPUs go to team-b, furthest below
    its fair share, although team-a's request is older."""
    c = cluster.client
    await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-l"}})
    await c.create(queue("q-l", 4))
    await c.create(queue("q-a", 0))
    await c.create(queue("q-b", 0))
    for i in range(2):
        await c.create(pod(f"a{i}", "team-a", 2))
        await until(lambda i=i: node_of(c, "team-a", f"a{i}"), what=f"a{i} bound")
    await c.create(pod("a-next", "team-a", 2))
    await until(lambda: scheduled_reason(c, "team-a", "a-next"), what="a-next to wait")
    await c.create(pod("b-first", "team-b", 2))
    await until(lambda: scheduled_reason(c, "team-b", "b-first"), what="b-first to wait")
    await c.delete("v1", "pods", "a1", "team-a")
    await until(lambda: node_of(c, "team-b", "b-first"), what="b-first admitted first")
    assert await node_of(c, "team-a", "a-next") is None
    reason = await until(lambda: scheduled_reason(c, "team-a", "a-next"), what="a-next's reason")
    assert reason.startswith(("FairShare", "QuotaExceeded"))

    async def metrics() -> str | None:
        text = cluster.scheduler.queues.metrics.render().decode()
        return text if 'corral_queue_usage{flavor="h100",queue="q-b",resource="nvidia.com/gpu"} 2.0' in text else None

    text = await until(metrics, what="q-b's usage in the metrics")
    assert 'corral_queue_borrowed{flavor="h100",queue="q-a",resource="nvidia.com/gpu"} 2.0' in text
    assert 'corral_queue_time_to_admission_seconds_count{queue="q-b"} 1.0' in text


async def test_fair_share_preemption_between_borrowers(cluster: Cluster) -> None:
    """team-a borrows all 8 GPUs a third team lends; team-b (no quota of its own either,
    fairSharing.preemptionStrategy LessThanOrEqualToFinalShare) asks for 3 × 2 GPUs. Two of
    team-a's pods are preempted (shares 4/8 and 4/8: equal), the third would push team-a
    below team-b, so it waits."""
    c = cluster.client
    await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-l"}})
    await c.create(queue("q-l", 8))
    await c.create(queue("q-a", 0))
    await c.create(queue("q-b", 0, preemption={"reclaimWithinCohort": "Any"},
                         fairSharing={"preemptionStrategy": "LessThanOrEqualToFinalShare"}))
    for i in range(4):
        await c.create(pod(f"a{i}", "team-a", 2))
        await until(lambda i=i: node_of(c, "team-a", f"a{i}"), what=f"a{i} bound")
    for i in range(3):
        await c.create(pod(f"b{i}", "team-b", 2))

    async def bound_b() -> list[str]:
        return [f"b{i}" for i in range(3) if await node_of(c, "team-b", f"b{i}")]

    async def left_a() -> list[str]:
        return [f"a{i}" for i in range(4) if await c.get_or_none("v1", "pods", f"a{i}", "team-a") is not None]

    await until(lambda: _at_least(bound_b, 2), what="two of team-b's pods admitted by preemption")
    assert len(await left_a()) == 2
    await asyncio.sleep(1.0)  # and no further preemption: team-a would fall below team-b
    assert len(await bound_b()) == 2 and len(await left_a()) == 2
    bound = await bound_b()
    waiting = next(f"b{i}" for i in range(3) if f"b{i}" not in bound)
    assert (await scheduled_reason(c, "team-b", waiting)).startswith("QuotaExceeded")
    events = await c.list("v1", "events", namespace="team-a")
    assert sum(1 for e in events["items"] if e.get("reason") == "Preempted") == 2


async def _at_least(items: Callable[[], Any], n: int) -> bool:
    return len(await items()) >= n


async def test_hold_and_drain_evicts_admitted_work(cluster: Cluster) -> None:
    c = cluster.client
    await c.create(queue("q-a", 4))
    await c.create(pod("runner", "team-a", 2))
    await until(lambda: node_of(c, "team-a", "runner"), what="runner bound")
    await c.patch(API, "queues", "q-a", {"spec": {"stopPolicy": "HoldAndDrain"}})

    async def gone() -> bool:
        return await c.get_or_none("v1", "pods", "runner", "team-a") is None

    await until(gone, what="the admitted pod to be drained")
    events = (await c.list("v1", "events", namespace="team-a"))["items"]
    assert any("stopPolicy HoldAndDrain" in e.get("message", "") for e in events)
    await c.create(pod("later", "team-a", 1))
    reason = await until(lambda: scheduled_reason(c, "team-a", "later"), what="new work to be held")
    assert reason.startswith("QueueHeld")


async def test_corral_up_serves_queue_metrics_on_the_api_servers_metrics(tmp_path: Path) -> None:
    from corral.cli.up import start_corral

    running = await asyncio.wait_for(start_corral(tmp_path / "data", port=0, tls=False, agent=False,
                                                  gateway_port=None), 30)
    client = ApiClient(running.context.url, running.context.token)
    nodes = SimNodes(client, [SimNodeSpec(count=1, gpus=8, gpu_model="H100-80GB", name_prefix="h100")], workers=2)
    try:
        await nodes.start()
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        await client.create(queue("q-a", 4))
        await client.create(pod("a0", "team-a", 2))
        await until(lambda: node_of(client, "team-a", "a0"), what="a0 bound")

        async def metrics() -> str:
            async with client.session.get("/metrics") as response:
                assert response.status == 200
                text = await response.text()
            return text if 'corral_queue_usage{flavor="h100",queue="q-a",resource="nvidia.com/gpu"} 2.0' in text else ""

        text = await until(metrics, what="queue metrics on /metrics")
        assert 'corral_queue_admitted_workloads{queue="q-a"} 1.0' in text
        assert "corral_queue_time_to_admission_seconds_bucket" in text
        assert "apiserver_request_total" in text  # the API server's own are still there
        anonymous = ApiClient(running.context.url, "")
        try:
            async with anonymous.session.get("/metrics") as response:
                assert response.status == 401  # like every API path: a token is needed
        finally:
            await anonymous.close()
    finally:
        await nodes.stop()
        await client.close()
        await running.stop()
