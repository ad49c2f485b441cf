"""The live scheduler against a real in-process API server with simulated nodes.

Everything goes through HTTP: the API server (SQLite in a temp dir), ``SimNodes`` playing
kubelet for simulated GPU nodes, and ``SchedulerService`` with its informers and binder.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from corral.apiserver.server import start_server
from corral.client import ApiClient, ApiError
from corral.scheduler.cycle import Binding
from corral.scheduler.service import ApiBinder, SchedulerConfig, SchedulerService
from corral.sim.nodes import SimNodes, SimNodeSpec

pytestmark = pytest.mark.timeout(120)


class Cluster:
    def __init__(self, client: ApiClient, scheduler: SchedulerService | None, sim: SimNodes) -> None:
        self.client = client
        self.scheduler = scheduler
        self.sim = sim

    async def create_pod(self, name: str, *, gpus: int = 0, fraction: str | None = None, mig: str | None = None,
                         group: str | None = None, priority_class: str | None = None, scheduler: str | None = None,
                         cpu: str = "100m", annotations: dict[str, str] | None = None) -> dict[str, Any]:
        limits: dict[str, str] = {}
        if gpus:
            limits["nvidia.com/gpu"] = str(gpus)
        if mig:
            limits[f"nvidia.com/mig-{mig}"] = "1"
        ann = dict(annotations or {})
        if fraction:
            ann["corral.dev/gpu-fraction"] = fraction
        spec: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox",
                                                "resources": {"requests": {"cpu": cpu}, "limits": limits}}]}
        if priority_class:
            spec["priorityClassName"] = priority_class
        if scheduler:
            spec["schedulerName"] = scheduler
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "annotations": ann,
                            "labels": {"corral.dev/pod-group": group} if group else {}},
               "spec": spec}
        return await self.client.create(pod)

    async def pod(self, name: str) -> dict[str, Any]:
        return await self.client.get("v1", "pods", name, "default")

    async def wait(self, what: Callable[[], Any], timeout: float = 20.0, message: str = "") -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await what()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting: {message}")
            await asyncio.sleep(0.05)

    async def wait_running(self, *names: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        async def check() -> list[dict[str, Any]] | None:
            pods = [await self.pod(n) for n in names]
            return pods if all((p.get("status") or {}).get("phase") == "Running" for p in pods) else None

        return list(await self.wait(check, timeout, f"pods {names} running"))


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path, specs: list[SimNodeSpec], *, binder_factory: Callable[[ApiClient], Any] | None = None,
                  start_scheduler: bool = True) -> AsyncIterator[Cluster]:
    server = await start_server(tmp_path / "api", tls=False)
    client = ApiClient(server.url, server.token)
    sim = SimNodes(client, specs, workers=4)
    scheduler = None
    try:
        await sim.start()
        if start_scheduler:
            config = SchedulerConfig(initial_backoff=0.2, max_backoff=1.0, record_scheduled_events=True)
            binder = binder_factory(client) if binder_factory else None
            scheduler = SchedulerService(client, config=config, binder=binder)
            await scheduler.start()
        yield Cluster(client, scheduler, sim)
    finally:
        if scheduler is not None:
            await scheduler.stop()
        await sim.stop()
        await client.close()
        await server.stop()


def devices_of(pod: dict[str, Any]) -> str:
    return str((pod["metadata"].get("annotations") or {}).get("corral.dev/gpu-devices", ""))


async def test_whole_gpus_mig_and_fractions_land_on_exact_devices(tmp_path: Path) -> None:
    specs = [SimNodeSpec(count=2, gpus=8, gpu_model="H100-80GB", name_prefix="h100"),
             SimNodeSpec(count=1, gpus=2, gpu_model="A100-40GB", name_prefix="mig", mig="1g.5gb")]
    async with cluster(tmp_path, specs) as c:
        await c.create_pod("two", gpus=2)
        await c.create_pod("half-a", fraction="0.5")
        await c.create_pod("half-b", fraction="0.5")
        await c.create_pod("slice", mig="1g.5gb")
        two, half_a, half_b, slc = await c.wait_running("two", "half-a", "half-b", "slice")
        assert two["spec"]["nodeName"].startswith("h100-")
        assert len(devices_of(two).split(",")) == 2
        assert devices_of(half_a).endswith(":0.5") and devices_of(half_b).endswith(":0.5")
        # shares are packed: both halves on one device of one node
        assert (half_a["spec"]["nodeName"], devices_of(half_a).split(":")[0]) == \
            (half_b["spec"]["nodeName"], devices_of(half_b).split(":")[0])
        assert slc["spec"]["nodeName"] == "mig-0" and ":mig-1g.5gb:" in devices_of(slc)
        scheduled = [p for p in (two, half_a) if any(
            cond.get("type") == "PodScheduled" and cond.get("status") == "True"
            for cond in p["status"].get("conditions") or [])]
        assert len(scheduled) == 2

        async def scheduled_event() -> bool:  # Scheduled Events are written once the scheduler is idle
            events = (await c.client.list("v1", "events", "default"))["items"]
            return any(e["reason"] == "Scheduled" and e["involvedObject"]["name"] == "two" for e in events)

        await c.wait(scheduled_event, message="a Scheduled Event for two")


async def test_unschedulable_message_and_explain(tmp_path: Path) -> None:
    from corral.cli.explain import explain

    specs = [SimNodeSpec(count=3, gpus=4, gpu_model="H100-80GB", name_prefix="n")]
    async with cluster(tmp_path, specs) as c:
        await c.create_pod("fill-a", gpus=3)
        await c.create_pod("fill-b", gpus=3)
        await c.create_pod("wide", gpus=4)
        await c.create_pod("huge", gpus=6)
        await c.wait_running("fill-a", "fill-b", "wide")

        async def condition(name: str) -> dict[str, Any] | None:
            pod = await c.pod(name)
            return next((x for x in pod["status"].get("conditions") or []
                         if x["type"] == "PodScheduled" and x["status"] == "False"), None)

        cond = await c.wait(lambda: condition("huge"), message="huge gets PodScheduled=False")
        assert cond["reason"] == "Unschedulable"
        assert cond["message"] == "0/3 nodes are available: no node has 6 nvidia.com/gpu."
        await c.create_pod("two", gpus=2)
        cond = await c.wait(lambda: condition("two"), message="two gets PodScheduled=False")
        assert cond["message"] == "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
        events = (await c.client.list("v1", "events", "default"))["items"]
        assert any(e["reason"] == "FailedScheduling" and e["involvedObject"]["name"] == "two" for e in events)
        text = await explain(c.client, "pod", "two", "default")
        assert "scheduler says: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu." in text
        assert "nearest misses:" in text and "1 whole GPU(s) free, needs 2" in text
        assert "what would change it:" in text


async def test_scheduler_name_is_respected(tmp_path: Path) -> None:
    async with cluster(tmp_path, [SimNodeSpec(count=1, gpus=2, gpu_model="L4", name_prefix="n")]) as c:
        await c.create_pod("theirs", gpus=1, scheduler="default-scheduler")
        await c.create_pod("ours", gpus=1)
        await c.wait_running("ours")
        await asyncio.sleep(0.3)
        assert not (await c.pod("theirs"))["spec"].get("nodeName")


async def test_gang_is_placed_whole_or_not_at_all(tmp_path: Path) -> None:
    async with cluster(tmp_path, [SimNodeSpec(count=2, gpus=4, gpu_model="H100-80GB", name_prefix="n")]) as c:
        group = {"apiVersion": "corral.dev/v1alpha1", "kind": "PodGroup",
                 "metadata": {"name": "train", "namespace": "default"}, "spec": {"minMember": 3}}
        await c.client.create(group)
        await c.create_pod("train-0", gpus=2, group="train")
        await c.create_pod("train-1", gpus=2, group="train")
        await asyncio.sleep(0.5)
        assert not (await c.pod("train-0"))["spec"].get("nodeName"), "a gang waits for minMember pods"
        await c.create_pod("train-2", gpus=2, group="train")
        await c.wait_running("train-0", "train-1", "train-2")
        # a second gang of 3 x 2 GPUs cannot fit in the 2 GPUs left: none of it binds
        await c.client.create({**group, "metadata": {"name": "big", "namespace": "default"}})
        for i in range(3):
            await c.create_pod(f"big-{i}", gpus=2, group="big")

        async def group_status() -> dict[str, Any] | None:
            obj = await c.client.get("corral.dev/v1alpha1", "podgroups", "big", "default")
            return obj if (obj.get("status") or {}).get("phase") == "Unschedulable" else None

        status = (await c.wait(group_status, message="PodGroup big Unschedulable"))["status"]
        assert status["scheduled"] == 0 and "0/2 nodes are available" in status["conditions"][0]["message"]
        big = [await c.pod(f"big-{i}") for i in range(3)]
        assert all(not p["spec"].get("nodeName") for p in big), "no member of a gang that does not fit is bound"
        train = await c.wait(lambda: _phase(c, "train", "Running"), message="PodGroup train Running")
        assert train["status"]["running"] == 3


async def _phase(c: Cluster, name: str, phase: str) -> dict[str, Any] | None:
    obj = await c.client.get("corral.dev/v1alpha1", "podgroups", name, "default")
    return obj if (obj.get("status") or {}).get("phase") == phase else None


class FlakyBinder:
    """Fails the binding of one chosen pod ``failures`` times with a 500, then binds."""

    def __init__(self, client: ApiClient, victim: str, failures: int) -> None:
        self.inner = ApiBinder(client)
        self.victim = victim
        self.failures = failures
        self.calls: list[str] = []

    async def bind(self, binding: Binding) -> None:
        self.calls.append(binding.name)
        if binding.name == self.victim and self.failures > 0:
            self.failures -= 1
            raise ApiError(500, "InternalError", "injected bind failure")
        await self.inner.bind(binding)


async def test_gang_bind_failure_midway_unreserves_and_retries(tmp_path: Path) -> None:
    binders: list[FlakyBinder] = []

    def make(client: ApiClient) -> FlakyBinder:
        binders.append(FlakyBinder(client, "g-2", failures=5))  # more than bindRetries: the member is unreserved
        return binders[0]

    async with cluster(tmp_path, [SimNodeSpec(count=1, gpus=8, gpu_model="H100-80GB", name_prefix="n")],
                       binder_factory=make) as c:
        await c.client.create({"apiVersion": "corral.dev/v1alpha1", "kind": "PodGroup",
                               "metadata": {"name": "g", "namespace": "default"}, "spec": {"minMember": 4}})
        for i in range(4):
            await c.create_pod(f"g-{i}", gpus=2, group="g")
        pods = await c.wait_running("g-0", "g-1", "g-2", "g-3", timeout=30)
        assert binders[0].calls.count("g-2") == 6
        used = [d for p in pods for d in devices_of(p).split(",")]
        assert sorted(used, key=int) == [str(i) for i in range(8)], "every GPU given exactly once"
        assert c.scheduler is not None and c.scheduler.scheduler.stats.bind_failures == 1


async def test_preemption_takes_cheapest_victims_once(tmp_path: Path) -> None:
    async with cluster(tmp_path, [SimNodeSpec(count=1, gpus=4, gpu_model="H100-80GB", name_prefix="n")]) as c:
        for name, value in (("low", 1), ("mid", 5), ("high", 10)):
            await c.client.create({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                   "metadata": {"name": name}, "value": value})
        await asyncio.sleep(0.2)
        await c.create_pod("low-a", gpus=1, priority_class="low")
        await c.create_pod("low-b", gpus=1, priority_class="low")
        await c.create_pod("mid", gpus=2, priority_class="mid")
        await c.wait_running("low-a", "low-b", "mid")
        await c.create_pod("urgent-1", gpus=1, priority_class="high")
        await c.create_pod("urgent-2", gpus=1, priority_class="high")
        await c.wait_running("urgent-1", "urgent-2", timeout=30)
        names = {p["metadata"]["name"] for p in (await c.client.list("v1", "pods", "default"))["items"]}
        assert names == {"mid", "urgent-1", "urgent-2"}, "each urgent pod took one low pod; mid survived"
        events = (await c.client.list("v1", "events", "default"))["items"]
        preempted = [e for e in events if e["reason"] == "Preempted"]
        assert sorted(e["involvedObject"]["name"] for e in preempted) == ["low-a", "low-b"]
        assert any(e["reason"] == "Preempting" for e in events)
        urgent = await c.pod("urgent-1")
        assert urgent["status"].get("nominatedNodeName") == "n-0"
        assert c.scheduler is not None and c.scheduler.scheduler.stats.preemptions == 2


async def test_live_decisions_equal_the_in_process_brain(tmp_path: Path) -> None:
    """The same inputs give the same placements live (over HTTP) and in-process (the simulator's path)."""
    from corral.scheduler.cycle import BindDecision, Scheduler
    from corral.scheduler.service import default_framework
    from corral.testing import FakeClock

    specs = [SimNodeSpec(count=6, gpus=4, gpu_model="H100-80GB", name_prefix="h"),
             SimNodeSpec(count=2, gpus=2, gpu_model="A100-80GB", name_prefix="m", mig="1g.10gb")]
    async with cluster(tmp_path, specs, start_scheduler=False) as c:
        kinds = [{"gpus": 1}, {"gpus": 2}, {"fraction": "0.5"}, {"mig": "1g.10gb"}, {"gpus": 3}, {"fraction": "0.25"}]
        names = [f"p-{i:02d}" for i in range(30)]
        for i, name in enumerate(names):
            await c.create_pod(name, **kinds[(i * 7) % len(kinds)])  # type: ignore[arg-type]
        pending = [await c.pod(n) for n in names]
        nodes = (await c.client.list("v1", "nodes"))["items"]
        service = SchedulerService(c.client, config=SchedulerConfig())
        await service.start()
        try:
            def decided(p: dict[str, Any]) -> bool:
                return bool(p["spec"].get("nodeName")) or any(
                    x["type"] == "PodScheduled" and x["status"] == "False" for x in p["status"].get("conditions") or [])

            async def all_decided() -> list[dict[str, Any]] | None:
                pods = [await c.pod(n) for n in names]
                return pods if all(decided(p) for p in pods) else None

            live = await c.wait(all_decided, 30, "a decision for every pod")
        finally:
            await service.stop()
    brain = Scheduler(framework=default_framework(SchedulerConfig().profile), clock=FakeClock())
    for node in nodes:
        brain.node_upsert(node)
    for pod in pending:
        brain.pod_upsert(pod)
    expected: dict[str, tuple[str, str]] = {}
    while (decision := brain.schedule_next()) is not None:
        if isinstance(decision, BindDecision):
            for b in decision.bindings:
                expected[b.name] = (b.node, b.devices)
    assert 0 < len(expected) < len(names), "some pods fit and some do not"
    assert {p["metadata"]["name"]: (p["spec"]["nodeName"], devices_of(p)) for p in live
            if p["spec"].get("nodeName")} == expected
