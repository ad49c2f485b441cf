"""TrainingJob through the real stack: API server, scheduler, agent (real processes), controller.

Everything runs in-process on free ports (the pods are real child processes of the agent):
the 2-worker DDP example trains to its target and survives a SIGKILL of one worker with a
gang restart from its checkpoint; an always-failing job stops after ``backoffLimit``;
suspend/resume; preemption by a higher-priority job; elastic shrink from 3 to 2; TTL
cleanup; and ``corral logs trainingjob/NAME`` prefixes each rank's lines.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral.agent.agent import Agent, AgentConfig
from corral.apiserver.server import RunningServer, start_server
from corral.cli.logs import job_logs
from corral.client import ApiClient
from corral.controllers.trainingjob.controller import TrainingJobController
from corral.scheduler.quota.component import QueuedScheduler
from corral.util.quantity import parse_quantity
from tests.conftest import require_tool

API = "corral.dev/v1alpha1"
SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "training" / "ddp" / "train.py"
FAST_ENV = [{"name": "OMP_NUM_THREADS", "value": "1"}, {"name": "PYTHONUNBUFFERED", "value": "1"}]


def job_manifest(name: str, command: list[str], *, args: list[str] | None = None, grace: int = 5,
                 resources: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "worker", "image": "python", "command": command, "env": list(FAST_ENV)}
    if args:
        container["args"] = args
    if resources:
        container["resources"] = resources
    body: dict[str, Any] = {"template": {"spec": {"terminationGracePeriodSeconds": grace,
                                                   "containers": [container]}}}
    body.update(spec)
    if "replicas" not in body and "minReplicas" not in body:
        body["replicas"] = 2
    return {"apiVersion": API, "kind": "TrainingJob", "metadata": {"name": name, "namespace": "default"},
            "spec": body}


async def get_job(client: ApiClient, name: str) -> dict[str, Any] | None:
    return await client.get_or_none(API, "trainingjobs", name, "default")


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float, what: str, poll: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


async def wait_phase(client: ApiClient, name: str, phases: tuple[str, ...], timeout: float) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job = await get_job(client, name)
        return job if job and (job.get("status") or {}).get("phase") in phases else None

    try:
        result: dict[str, Any] = await wait_until(check, timeout, f"{name} to be {phases}")
    except AssertionError:
        job = await get_job(client, name)
        raise AssertionError(f"{name} never reached {phases}: {(job or {}).get('status')}") from None
    return result


async def pod_log(client: ApiClient, pod: str) -> str:
    chunks = [chunk async for chunk in client.pod_log("default", pod)]
    return b"".join(chunks).decode(errors="replace")


async def events_of(client: ApiClient, name: str) -> list[dict[str, Any]]:
    listed = await client.list("v1", "events", "default")
    return [event for event in listed.get("items") or []
            if (event.get("involvedObject") or {}).get("kind") == "TrainingJob"
            and (event.get("involvedObject") or {}).get("name") == name]


pytestmark = pytest.mark.timeout(420)


@dataclass
class Stack:
    server: RunningServer
    client: ApiClient
    data_dir: Path
    node_cpus: float


@pytest.fixture
async def stack(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    options: dict[str, Any] = getattr(request, "param", {})
    server = await start_server(tmp_path / "api")
    assert server.kubeconfig is not None
    client = ApiClient.from_kubeconfig(server.kubeconfig)
    agent = Agent(client, AgentConfig(data_dir=tmp_path / "agent", node_name="node-a", discover_gpus=False,
                                      heartbeat_interval=0.5, lease_duration=5, status_interval=5,
                                      backoff_initial=0.2, backoff_max=1.0, log_index_period=0.05,
                                      shutdown_grace=1))
    scheduler = QueuedScheduler(client)
    controller = TrainingJobController(client, data_dir=str(tmp_path), resync_seconds=2.0, **options)
    started: list[Any] = []
    try:
        for component in (agent, scheduler, controller):
            await component.start()
            started.append(component)

        async def node_ready() -> dict[str, Any] | None:
            node = await client.get_or_none("v1", "nodes", "node-a")
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in ((node or {}).get("status") or {}).get("conditions") or [])
            return node if ready else None

        node = await wait_until(node_ready, 30, "the agent's node to be Ready")
        cpus = float(parse_quantity(node["status"]["allocatable"]["cpu"]))
        yield Stack(server, client, tmp_path, cpus)
    finally:
        for component in reversed(started):
            await component.stop()
        await client.close()
        await server.stop()


# ---------------------------------------------------------------- real PyTorch


async def test_ddp_job_survives_sigkill_of_a_worker_and_reaches_its_target(stack: Stack) -> None:
    pytest.importorskip("torch", reason="PyTorch is optional: `make venv` installs the CPU wheel")
    client = stack.client
    await client.create(job_manifest(
        "ddp", [sys.executable, str(SCRIPT)], args=["--epochs", "8", "--step-delay", "0.015"], backoffLimit=2,
        backoff={"initialSeconds": 0.5, "maxSeconds": 1}))

    async def rank1_at_epoch_two() -> str | None:
        try:
            text = await pod_log(client, "ddp-worker-1")
        except Exception:
            return None
        return text if re.search(r"^epoch=2 ", text, re.M) else None

    text = await wait_until(rank1_at_epoch_two, 180, "rank 1 to finish epoch 2")
    pid = int(re.search(r"pid=(\d+)", text).group(1))  # type: ignore[union-attr]
    rank0_before = await pod_log(client, "ddp-worker-0")
    os.kill(pid, signal.SIGKILL)
    done_before = max(int(m) for m in re.findall(r"^epoch=(\d+) ", rank0_before, re.M))

    job = await wait_phase(client, "ddp", ("Succeeded", "Failed"), 180)
    status = job["status"]
    assert status["phase"] == "Succeeded", status
    assert status["restarts"] == 1 and status["failures"] == 1
    assert status["lastRestartReason"] == "WorkerFailed"
    log0 = await pod_log(client, "ddp-worker-0")
    resumed = re.search(r"resumed from checkpoint epoch=(\d+) step=(\d+)", log0)
    assert resumed, log0
    assert int(resumed.group(1)) >= done_before, "the restart recomputes at most the epoch in flight"
    final = re.search(r"final accuracy=([\d.]+) target=([\d.]+)", log0)
    assert final and float(final.group(1)) >= float(final.group(2))
    assert "restart=1" in log0, "the new attempt knows it is a restart (CORRAL_RESTART_COUNT)"
    reasons = [event["reason"] for event in await events_of(client, "ddp")]
    assert "WorkerFailed" in reasons and "Succeeded" in reasons
    assert Path(status["checkpointDir"]).is_dir()


# ---------------------------------------------------------------- policies, with light processes


async def test_always_failing_job_stops_after_backoff_limit(stack: Stack) -> None:
    client = stack.client
    await client.create(job_manifest("broken", ["sh", "-c", "echo rank $RANK of $WORLD_SIZE; exit 3"],
                                     backoffLimit=1, backoff={"initialSeconds": 0.2, "maxSeconds": 0.2}))
    job = await wait_phase(client, "broken", ("Failed",), 60)
    status = job["status"]
    assert status["failures"] == 2 and status["restarts"] == 1
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert "exit code 3" in failed["message"] and "backoffLimit is 1" in failed["message"]
    kubectl = require_tool("kubectl")
    # Not subprocess.run: the API server runs on this very event loop.
    # The failed job's last worker may still be terminating for a moment: poll until it is gone.
    for _ in range(60):
        proc = await asyncio.create_subprocess_exec(kubectl, "--kubeconfig", str(stack.server.kubeconfig), "get",
                                                    "trainingjobs", stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0
        shown = out.decode().splitlines()
        assert shown[0].split() == ["NAME", "QUEUE", "WORKERS", "PHASE", "RESTARTS", "AGE"], shown
        if shown[1].split()[2] == "0/2":
            break
        await asyncio.sleep(0.5)
    assert shown[1].split()[:5] == ["broken", "<default>", "0/2", "Failed", "1"], shown
    lines: list[str] = []
    await job_logs(client, "default", "broken", follow=False, write=lines.append)
    assert "[rank 0] rank 0 of 2" in lines, lines  # rank 1's last pod may be stopped before it ran


SAVE_ON_TERM = (
    'mkdir -p "$CORRAL_CHECKPOINT_DIR"; '
    'if [ -f "$CORRAL_CHECKPOINT_DIR/saved-$RANK" ]; then echo "resumed rank $RANK"; exit 0; fi; '
    'trap \'echo saved > "$CORRAL_CHECKPOINT_DIR/saved-$RANK"; exit 143\' TERM; '
    'echo "started rank $RANK"; while true; do sleep 0.1; done'
)


async def test_suspend_checkpoints_and_releases_then_resume_finishes(stack: Stack) -> None:
    client = stack.client
    await client.create(job_manifest("pausable", ["sh", "-c", SAVE_ON_TERM]))
    job = await wait_phase(client, "pausable", ("Running",), 60)
    await client.patch(API, "trainingjobs", "pausable", {"spec": {"suspend": True}}, namespace="default")
    await wait_phase(client, "pausable", ("Suspended",), 30)

    async def released() -> bool:
        pods = await client.list("v1", "pods", "default", label_selector="corral.dev/training-job=pausable")
        group = await client.get_or_none(API, "podgroups", "pausable", "default")
        return not pods.get("items") and group is None

    await wait_until(released, 30, "the pods and PodGroup to be gone")
    checkpoint = Path(job["status"]["checkpointDir"])
    assert (checkpoint / "saved-0").is_file() and (checkpoint / "saved-1").is_file(), "SIGTERM let them checkpoint"
    await client.patch(API, "trainingjobs", "pausable", {"spec": {"suspend": False}}, namespace="default")
    job = await wait_phase(client, "pausable", ("Succeeded",), 60)
    assert job["status"]["failures"] == 0
    assert "resumed rank 0" in await pod_log(client, "pausable-worker-0")
    reasons = [event["reason"] for event in await events_of(client, "pausable")]
    assert "Suspended" in reasons and "Resumed" in reasons


async def test_preemption_by_a_higher_priority_job_checkpoints_requeues_and_finishes(stack: Stack) -> None:
    client = stack.client
    cpus = stack.node_cpus
    # One queue for both jobs, its CPU quota exactly the node: the high-priority job can only
    # start by preempting the low one (within the queue, and on the node).
    await client.create({"apiVersion": API, "kind": "Queue", "metadata": {"name": "team"},
                         "spec": {"namespaces": ["default"], "preemption": {"withinQueue": "LowerPriority"},
                                  "resourceGroups": [{"coveredResources": ["cpu"], "flavors": [{
                                      "name": "any", "resources": [{"name": "cpu", "nominalQuota": str(cpus)}]}]}]}})
    low = job_manifest("low", ["sh", "-c", SAVE_ON_TERM], priority=10, replicas=2, queue="team",
                       resources={"requests": {"cpu": str(cpus / 2)}, "limits": {"cpu": str(cpus / 2)}})
    await client.create(low)
    low_job = await wait_phase(client, "low", ("Running",), 60)
    high = job_manifest("high", ["sh", "-c", "echo high $RANK; sleep 1"], priority=1000, replicas=1, queue="team",
                        resources={"requests": {"cpu": str(cpus)}, "limits": {"cpu": str(cpus)}})
    await client.create(high)
    high_job = await wait_phase(client, "high", ("Succeeded",), 90)
    assert high_job["status"]["restarts"] == 0
    low_job = await wait_phase(client, "low", ("Succeeded",), 90)
    status = low_job["status"]
    assert status["preemptions"] >= 1 and status["failures"] == 0, status
    checkpoint = Path(status["checkpointDir"])
    assert (checkpoint / "saved-0").is_file(), "the preempted workers saved a checkpoint on SIGTERM"
    assert "resumed rank 0" in await pod_log(client, "low-worker-0")
    reasons = [event["reason"] for event in await events_of(client, "low")]
    assert "Preempted" in reasons


async def test_elastic_job_shrinks_from_three_to_two_when_a_worker_is_lost(stack: Stack) -> None:
    client = stack.client
    script = 'echo "world=$WORLD_SIZE rank=$RANK"; if [ "$WORLD_SIZE" = 2 ]; then exit 0; fi; sleep 60'
    await client.create(job_manifest("elastic", ["sh", "-c", script], minReplicas=2, maxReplicas=3))
    job = await wait_phase(client, "elastic", ("Running",), 60)
    assert job["status"]["worldSize"] == 3
    group = await client.get(API, "podgroups", "elastic", "default")
    assert group["spec"]["minMember"] == 2
    await client.delete("v1", "pods", "elastic-worker-2", "default")
    job = await wait_phase(client, "elastic", ("Succeeded",), 60)
    status = job["status"]
    assert status["worldSize"] == 2 and status["failures"] == 0 and status["restarts"] == 1
    assert "world=2 rank=1" in await pod_log(client, "elastic-worker-1")
    assert "ElasticShrink" in [event["reason"] for event in await events_of(client, "elastic")]


@pytest.mark.parametrize("stack", [{"grow_cooldown": 1.0}], indirect=True)
async def test_elastic_job_grows_back_when_capacity_frees(stack: Stack) -> None:
    client = stack.client
    script = ('echo "world=$WORLD_SIZE attempt=$CORRAL_ATTEMPT"; '
              'if [ "$WORLD_SIZE" = 3 ] && [ "$CORRAL_ATTEMPT" != 0 ]; then exit 0; fi; sleep 60')
    await client.create(job_manifest("grows", ["sh", "-c", script], minReplicas=2, maxReplicas=3))
    await wait_phase(client, "grows", ("Running",), 60)
    await client.delete("v1", "pods", "grows-worker-2", "default")  # shrink to 2, then room for 3 again
    job = await wait_phase(client, "grows", ("Succeeded",), 60)
    status = job["status"]
    assert status["worldSize"] == 3 and status["failures"] == 0 and status["restarts"] == 2, status
    reasons = [event["reason"] for event in await events_of(client, "grows")]
    assert "ElasticShrink" in reasons and "ElasticGrow" in reasons
    assert "world=3 attempt=2" in await pod_log(client, "grows-worker-2")


async def test_ttl_after_finished_deletes_the_job_and_its_pods(stack: Stack) -> None:
    client = stack.client
    await client.create(job_manifest("brief", ["sh", "-c", "exit 0"], replicas=1, ttlSecondsAfterFinished=1))

    async def gone() -> bool:
        pods = await client.list("v1", "pods", "default", label_selector="corral.dev/training-job=brief")
        return await get_job(client, "brief") is None and not pods.get("items")

    await wait_until(gone, 60, "the finished job and its pods to be deleted")
    assert "TTLExpired" in [event["reason"] for event in await events_of(client, "brief")]
