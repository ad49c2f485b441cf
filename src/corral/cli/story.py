"""The story ``corral demo`` tells: every step real, checked, and timed.

1. corral starts in a fresh data dir — API server, scheduler, controllers, gateway and
   this machine's agent (with simulated H100s when there is no GPU, said clearly) — and
   two simulated nodes join so that sharing is visible.
2. Two teams get Queues in one cohort with GPU quotas.
3. Team B's burst of half-GPU jobs borrows team A's idle quota; then team A's 2-worker
   PyTorch DDP job arrives, reclaims its quota by preempting B's borrowed work (B's jobs
   requeue and finish later), trains, is healed after one worker is killed on purpose,
   and finishes.
4. The trained model is served by an InferenceService that starts at zero replicas; real
   requests go through the gateway, which holds the first one while a replica starts;
   a burst of concurrent requests scales it up; idle, it scales back to zero.
5. A new revision goes out as a 20 % canary and is promoted.
6. A summary: jobs (queue wait, run time, restarts), GPU allocation over time, service
   latency p50/p99 and replica-seconds.

Each step waits for the API to show the expected state (with a deadline) and fails with
the step's name otherwise, so ``corral demo --once`` is also an end-to-end test of the
whole platform. A sampler polls the dashboard summary once a second for the GPU
allocation and replica curves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from corral.api.registry import Obj
from corral.client import ApiClient, ApiError
from corral.sim.nodes import SimNodes, SimNodeSpec
from corral.util.clock import parse_timestamp

CORRAL = "corral.dev/v1alpha1"
SIM_POOL_LABEL = "corral.dev/pool"
DDP_EPOCHS = 8


class StoryFailedError(Exception):
    """A step did not reach its expected state; the message names the step."""


@dataclass
class StepRecord:
    name: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class Samples:
    """What the sampler saw once a second: (seconds since start, value)."""

    allocation: list[tuple[float, float]] = field(default_factory=list)
    replicas: list[tuple[float, int]] = field(default_factory=list)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def queue_manifest(name: str, cohort: str, namespace: str, gpus: int, *, reclaim: str = "Any") -> Obj:
    return {"apiVersion": CORRAL, "kind": "Queue", "metadata": {"name": name},
            "spec": {"cohort": cohort, "namespaces": [namespace], "default": True,
                     "preemption": {"reclaimWithinCohort": reclaim, "withinQueue": "LowerPriority"},
                     "resourceGroups": [{"flavors": [{"name": "h100", "resources": [
                         {"name": "nvidia.com/gpu", "nominalQuota": gpus}]}]}]}}


def burst_job(index: int, seconds: int) -> Obj:
    """Team B's half-GPU job: one worker on the simulated pool, 'running' for ``seconds``."""
    return {"apiVersion": CORRAL, "kind": "TrainingJob",
            "metadata": {"name": f"sweep-{index}", "namespace": "team-b"},
            "spec": {"replicas": 1, "queue": "team-b", "restartPolicy": "RestartGang", "backoffLimit": 5,
                     "backoff": {"initialSeconds": 1, "maxSeconds": 2},
                     "template": {"metadata": {"annotations": {"corral.dev/gpu-fraction": "0.5",
                                                               "corral.dev/sim-duration": f"{seconds}s"}},
                                  "spec": {"nodeSelector": {SIM_POOL_LABEL: "sim"},
                                           "containers": [{"name": "sweep", "image": "python:3.11",
                                                           "command": ["sleep", str(seconds)]}]}}}}


def ddp_job(python: str, script: Path, gpus_per_worker: int, node: str, *, real_torch: bool) -> Obj:
    """Team A's 2-worker DDP job, pinned to this machine's agent so its workers are real processes."""
    if real_torch:
        command = [python, str(script)]
        args = ["--epochs", str(DDP_EPOCHS), "--step-delay", "0"]
    else:  # a smaller real workload: scikit-learn, with the same env contract and checkpoints
        command = [python, str(script.parent / "train_sklearn.py")]
        args = ["--epochs", str(DDP_EPOCHS)]
    return {"apiVersion": CORRAL, "kind": "TrainingJob", "metadata": {"name": "ddp", "namespace": "team-a"},
            # One process per worker pod (each holding its 4 GPUs), so WORLD_SIZE is 2; a torchrun
            # command would leave nprocPerNode at its default (the GPU count) instead.
            "spec": {"replicas": 2, "nprocPerNode": 1, "queue": "team-a", "restartPolicy": "RestartGang",
                     "backoffLimit": 3,
                     "backoff": {"initialSeconds": 1, "maxSeconds": 5},
                     "template": {"spec": {
                         "nodeSelector": {"kubernetes.io/hostname": node},
                         "terminationGracePeriodSeconds": 10,
                         "containers": [{"name": "worker", "image": "pytorch", "command": command, "args": args,
                                         "env": [{"name": "OMP_NUM_THREADS", "value": "1"},
                                                 {"name": "PYTHONUNBUFFERED", "value": "1"}],
                                         "resources": {"limits": {"nvidia.com/gpu": str(gpus_per_worker)}}}]}}}}


def digits_service(python: str, server: Path, version: str, *, canary: int | None = None,
                   model_path: Path | None = None) -> Obj:
    env = [{"name": "MODEL_VERSION", "value": version}]
    if model_path is not None:
        env.append({"name": "MODEL_PATH", "value": str(model_path)})
    spec: dict[str, Any] = {
        "minReplicas": 0, "maxReplicas": 3,
        # missCostSeconds 0: the story values no warm spare (the predictive policy would keep
        # some for minutes after a burst of hundreds of requests), so it sizes for the requests
        # in flight and shows the return to zero within seconds of the load stopping.
        "autoscaling": {"target": 2, "stableWindowSeconds": 6, "scaleToZeroGracePeriodSeconds": 6,
                        "missCostSeconds": 0},
        "route": {"pathPrefix": "/v1/models/digits"},
        "template": {"spec": {"containers": [{
            "name": "server", "image": "python:3.11", "command": [python, str(server)], "env": env,
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}}]}},
    }
    if canary is not None:
        spec["canaryTrafficPercent"] = canary
        spec["rollout"] = {"maxErrorRate": 0.1, "minRequests": 10, "promoteAfterRequests": 40,
                           "promoteAfterSeconds": 60, "readyTimeoutSeconds": 60}
    return {"apiVersion": CORRAL, "kind": "InferenceService", "metadata": {"name": "digits", "namespace": "default"},
            "spec": spec}


class Story:
    """Runs the steps against a started corral (see the module docstring)."""

    def __init__(self, client: ApiClient, kubeconfig: Path, *, gateway_url: str, repo: Path, node: str,
                 console: Console, simulated: bool) -> None:
        self.client = client
        self.kubeconfig = kubeconfig
        self.gateway_url = gateway_url
        self.repo = repo
        self.node = node
        self.console = console
        self.simulated = simulated
        self.python = sys.executable
        self.steps: list[StepRecord] = []
        self.samples = Samples()
        self.latencies_ms: list[float] = []
        self.started = time.monotonic()
        self.notes: dict[str, Any] = {}

    # -- plumbing ------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.console.print(f"  {text}", highlight=False)

    async def kubectl(self, *args: str) -> str:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        self.console.print(f"  [dim]$ kubectl {' '.join(args)}[/dim]")
        process = await asyncio.create_subprocess_exec("kubectl", *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.STDOUT)
        out, _ = await process.communicate()
        text = out.decode()
        for line in text.rstrip().splitlines():
            self.console.print(f"    {line}", highlight=False, markup=False)
        return text

    async def step(self, name: str, action: Callable[[], Awaitable[str]]) -> None:
        self.console.rule(f"[bold]{len(self.steps) + 1}. {name}")
        started = time.monotonic()
        try:
            detail = await action()
        except StoryFailedError as error:
            self.steps.append(StepRecord(name, time.monotonic() - started, False, str(error)))
            raise StoryFailedError(f"step {len(self.steps)} ({name}) failed: {error}") from None
        except (TimeoutError, ApiError, aiohttp.ClientError, OSError) as error:
            self.steps.append(StepRecord(name, time.monotonic() - started, False, str(error)))
            raise StoryFailedError(f"step {len(self.steps)} ({name}) failed: {error!r}") from None
        self.steps.append(StepRecord(name, time.monotonic() - started, True, detail))
        self.console.print(f"  [green]✓[/green] {detail}  [dim]({time.monotonic() - started:.1f} s)[/dim]")

    async def wait_for(self, what: str, check: Callable[[], Awaitable[Any]], timeout: float,
                       interval: float = 0.25) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise StoryFailedError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(interval)

    async def job(self, namespace: str, name: str) -> Obj:
        return await self.client.get(CORRAL, "trainingjobs", name, namespace)

    async def sample_forever(self) -> None:
        while True:
            with contextlib.suppress(ApiError, aiohttp.ClientError, OSError, asyncio.TimeoutError):
                state = await self.client.request("GET", "/dashboard/api/state")
                at = time.monotonic() - self.started
                self.samples.allocation.append((at, float(state["cluster"]["allocation"])))
                ready = sum(int(s.get("readyReplicas") or 0) for s in state["inferenceServices"])
                self.samples.replicas.append((at, ready))
            await asyncio.sleep(1.0)

    # -- the steps -----------------------------------------------------------------------------

    async def run(self) -> None:
        sampler = asyncio.create_task(self.sample_forever())
        try:
            await self.step("Two teams share GPUs through queues in one cohort", self.queues)
            await self.step("Team B's burst of half-GPU jobs borrows team A's idle quota", self.burst)
            await self.step("Team A's DDP training job reclaims its quota by preemption", self.training_admitted)
            await self.step("A worker is killed on purpose; the job heals from its checkpoint", self.heal)
            await self.step("Both teams' work finishes", self.all_finished)
            await self.step("The trained model is served from zero replicas through the gateway", self.serve)
            await self.step("Under concurrent load it scales up; idle, back to zero", self.autoscale)
            await self.step("A new revision goes out as a 20 % canary and is promoted", self.canary)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        self.summary()

    async def queues(self) -> str:
        for namespace in ("team-a", "team-b"):
            with contextlib.suppress(ApiError):
                await self.client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        await self.client.create(queue_manifest("team-a", "research", "team-a", 8))
        await self.client.create(queue_manifest("team-b", "research", "team-b", 4))
        await self.kubectl("get", "queues")
        return "team-a has 8 H100s of quota, team-b 4; each may borrow what the other leaves idle"

    async def burst(self) -> str:
        for index in range(16):
            await self.client.create(burst_job(index, seconds=20))

        async def borrowing() -> Any:
            queue = await self.client.get(CORRAL, "queues", "team-b")
            borrowed = sum(float(str(r.get("borrowed") or 0)) for f in (queue.get("status") or {}).get(
                "flavorsUsage") or [] for r in f.get("resources") or [] if r.get("name") == "nvidia.com/gpu")
            return borrowed if borrowed >= 3 else None

        borrowed = await self.wait_for("team-b to borrow from team-a", borrowing, 40)
        await self.kubectl("get", "queues")
        return f"16 jobs × 0.5 GPU = 8 GPUs running for team-b, {borrowed:g} of them borrowed from team-a"

    async def training_admitted(self) -> str:
        script = self.repo / "examples" / "training" / "ddp" / "train.py"
        real = torch_available()
        if not real:
            self.say("[yellow]PyTorch is not installed[/yellow]: `pip install torch==2.13.0` (a CPU build; "
                     "`make demo` installs it from this machine's disk). Using the scikit-learn workload instead.")
        self.notes["torch"] = real
        self.ddp_submitted = time.monotonic()
        await self.client.create(ddp_job(self.python, script, 4, self.node, real_torch=real))
        self.say("team-a submits a 2-worker DDP job asking for 4 GPUs per worker (8 = team-a's whole quota)")

        async def running() -> Any:
            job = await self.job("team-a", "ddp")
            return job if (job.get("status") or {}).get("phase") == "Running" else None

        await self.wait_for("the DDP job to run", running, 90)
        events = await self.client.list("v1", "events", "team-b")
        preempted = {(e.get("involvedObject") or {}).get("name") for e in events.get("items") or []
                     if e.get("reason") in ("Preempted", "Evicted") and (e.get("involvedObject") or {}).get("kind") == "Pod"}
        self.notes["preempted"] = len(preempted)
        await self.kubectl("get", "trainingjobs", "-A")
        if not preempted:
            raise StoryFailedError("the DDP job runs but no team-b work was preempted to reclaim the quota")
        return f"admitted with its whole gang placed; {len(preempted)} borrowed team-b pods preempted (they requeue)"

    async def heal(self) -> str:
        async def checkpointed() -> Any:
            pods = await self.client.list("v1", "pods", "team-a", label_selector="corral.dev/training-job=ddp")
            names = sorted(p["metadata"]["name"] for p in pods.get("items") or [])
            if len(names) < 2:
                return None
            text = b""
            async for chunk in self.client.pod_log("team-a", names[0]):
                text += chunk
            return names if text.count(b"epoch=") >= 2 else None

        names = await self.wait_for("two epochs of training", checkpointed, 90)
        victim = names[-1]
        self.say(f"killing worker {victim} (SIGKILL via a zero-grace delete) after 2 epochs")
        await self.client.delete("v1", "pods", victim, "team-a", grace_period_seconds=0)

        async def restarted() -> Any:
            job = await self.job("team-a", "ddp")
            status = job.get("status") or {}
            return job if int(status.get("restarts") or 0) >= 1 and status.get("phase") == "Running" else None

        job = await self.wait_for("the gang to restart from the checkpoint", restarted, 60)
        return f"restart {job['status']['restarts']}: {job['status'].get('lastRestartReason') or 'worker lost'}"

    async def all_finished(self) -> str:
        async def ddp_done() -> Any:
            job = await self.job("team-a", "ddp")
            phase = (job.get("status") or {}).get("phase")
            if phase == "Failed":
                raise StoryFailedError(f"the DDP job failed: {job['status'].get('conditions')}")
            return job if phase == "Succeeded" else None

        job = await self.wait_for("the DDP job to succeed", ddp_done, 150)
        pods = await self.client.list("v1", "pods", "team-a", label_selector="corral.dev/training-job=ddp")
        accuracy = ""
        for pod in pods.get("items") or []:
            text = b""
            async for chunk in self.client.pod_log("team-a", pod["metadata"]["name"]):
                text += chunk
            for line in text.decode(errors="replace").splitlines():
                if line.startswith("final accuracy="):
                    accuracy = line.split()[1].split("=")[1]
        self.notes["accuracy"] = accuracy

        async def sweeps_done() -> Any:
            jobs = await self.client.list(CORRAL, "trainingjobs", "team-b")
            phases = [(j.get("status") or {}).get("phase") for j in jobs.get("items") or []]
            return phases if phases and all(p == "Succeeded" for p in phases) else None

        await self.wait_for("team-b's jobs to finish", sweeps_done, 90)
        await self.kubectl("get", "trainingjobs", "-A")
        self.notes["jobs"] = [job, *(await self.client.list(CORRAL, "trainingjobs", "team-b")).get("items", [])]
        return f"ddp succeeded (accuracy {accuracy or 'n/a'}); all 16 team-b jobs succeeded"

    async def predict(self, session: aiohttp.ClientSession, url: str, body: Any) -> float:
        started = time.perf_counter()
        async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=60)) as response:
            payload = await response.read()
            if response.status != 200:
                raise StoryFailedError(f"request answered {response.status}: {payload[:200]!r}")
        elapsed = (time.perf_counter() - started) * 1000
        self.latencies_ms.append(elapsed)
        return elapsed

    def request_body(self) -> tuple[str, Any]:
        sample = json.loads((self.repo / "examples" / "inference" / "digits" / "digits.request.json").read_text())
        return str(sample["path"]), sample["body"]

    async def serve(self) -> str:
        server = self.repo / "examples" / "inference" / "digits" / "server.py"
        job = await self.job("team-a", "ddp")
        checkpoints = Path(str((job.get("status") or {}).get("checkpointDir") or "."))
        candidates = sorted(checkpoints.glob("epoch-*.pt")) or sorted(checkpoints.glob("*.pkl"))
        if not candidates:
            raise StoryFailedError(f"the training job left no checkpoint in {checkpoints}")
        self.say(f"serving the trained model from {candidates[-1]}")
        await self.client.create(digits_service(self.python, server, "v1", model_path=candidates[-1]))

        async def has_url() -> Any:
            service = await self.client.get(CORRAL, "inferenceservices", "digits", "default")
            return (service.get("status") or {}).get("url")

        url = await self.wait_for("the service's URL", has_url, 30)
        path, body = self.request_body()
        self.say("a new revision first starts one replica to prove it is healthy, then idles down to zero")
        await self.wait_for("the new service to settle at zero replicas", self._at_zero, 90)
        await self.kubectl("get", "inferenceservices")
        self.say(f"POST {url}{path} with no replica running: the gateway holds it and scales up")
        async with aiohttp.ClientSession() as session:
            cold = await self.predict(session, f"{url}{path}", body)
            warm = [await self.predict(session, f"{url}{path}", body) for _ in range(20)]
        self.notes["cold_ms"] = cold
        return f"first answer after {cold:.0f} ms (cold start, no error); warm p50 {statistics.median(warm):.1f} ms"

    async def autoscale(self) -> str:
        service = await self.client.get(CORRAL, "inferenceservices", "digits", "default")
        url = service["status"]["url"]
        path, body = self.request_body()
        peak = 0
        sent = 0
        stop = asyncio.Event()

        async def load(session: aiohttp.ClientSession) -> None:
            nonlocal sent
            while not stop.is_set():
                await self.predict(session, f"{url}{path}", body)
                sent += 1

        async with aiohttp.ClientSession() as session:
            workers = [asyncio.create_task(load(session)) for _ in range(8)]
            deadline = time.monotonic() + 45
            rate = 0.0
            while peak < 2 and time.monotonic() < deadline:
                current = await self.client.get(CORRAL, "inferenceservices", "digits", "default")
                peak = max(peak, int((current.get("status") or {}).get("readyReplicas") or 0))
                await asyncio.sleep(0.5)
            for _ in range(8):  # a little load on the scaled-up service, as the gateway reports it
                current = await self.client.get(CORRAL, "inferenceservices", "digits", "default")
                stats = (current.get("status") or {}).get("trafficStats") or {}
                rate = max(rate, float(stats.get("requestsPerSecond") or 0.0))
                await asyncio.sleep(0.5)
            stop.set()
            for worker in workers:
                await worker
        await self.kubectl("get", "inferenceservices")
        if peak < 2:
            raise StoryFailedError(f"8 concurrent clients never brought more than {peak} ready replica(s)")
        self.say("the load stops; after the scale-to-zero grace period the replicas go away")
        await self.wait_for("the service to scale back to zero", self._at_zero, 60)
        await self.kubectl("get", "inferenceservices")
        return (f"{sent} requests from 8 clients (up to {rate:.0f} requests/s at the gateway): scaled to {peak} "
                "ready replicas, then back to 0 when idle")

    async def _at_zero(self) -> bool:
        current = await self.client.get(CORRAL, "inferenceservices", "digits", "default")
        status = current.get("status") or {}
        pods = await self.client.list("v1", "pods", "default", label_selector="corral.dev/inference-service=digits")
        return int(status.get("replicas") or 0) == 0 and not pods.get("items") and "readyReplicas" in status

    async def canary(self) -> str:
        server = self.repo / "examples" / "inference" / "digits" / "server.py"
        current = await self.client.get(CORRAL, "inferenceservices", "digits", "default")
        url = current["status"]["url"]
        path, body = self.request_body()
        phase = "warm-up"
        versions: dict[str, dict[str, int]] = {"warm-up": {}, "canary": {}, "promoted": {}}
        stop = asyncio.Event()

        async def traffic(session: aiohttp.ClientSession) -> None:
            while not stop.is_set():
                started = time.perf_counter()
                async with session.post(f"{url}{path}", json=body,
                                        timeout=aiohttp.ClientTimeout(total=60)) as response:
                    payload = await response.json()
                    if response.status != 200:
                        raise StoryFailedError(f"request during the rollout answered {response.status}: {payload}")
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
                version = str(payload.get("model_version"))
                counts = versions[phase]
                counts[version] = counts.get(version, 0) + 1
                await asyncio.sleep(0.02)

        async def promoted() -> Any:
            service = await self.client.get(CORRAL, "inferenceservices", "digits", "default")
            status = service.get("status") or {}
            if status.get("rolledBack"):
                raise StoryFailedError(f"the canary was rolled back: {status['rolledBack']}")
            latest = status.get("latestRevision")
            traffic_split = status.get("traffic") or []
            done = latest and status.get("stableRevision") == latest and not status.get("canaryRevision")
            return latest if done and traffic_split and traffic_split[0].get("percent") == 100 else None

        async with aiohttp.ClientSession() as session:
            clients = [asyncio.create_task(traffic(session)) for _ in range(2)]
            try:
                self.say("steady traffic brings revision 1 back from zero, then v2 is applied as a 20 % canary")
                await self.wait_for("revision 1 to serve again", self._answered(versions, "warm-up"), 60)
                current = await self.client.get(CORRAL, "inferenceservices", "digits", "default")
                updated = digits_service(self.python, server, "v2", canary=20)
                updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await self.client.update(updated)
                phase = "canary"
                await self.kubectl("get", "inferenceservices")
                revision = await self.wait_for("the canary's promotion", promoted, 120)
                phase = "promoted"
                await asyncio.sleep(1)
            finally:
                stop.set()
                results = await asyncio.gather(*clients, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise StoryFailedError(f"a client request failed during the rollout: {failures[0]}")
        await self.kubectl("get", "inferenceservices")
        during = versions["canary"]
        total = sum(during.values())
        share = 100 * during.get("v2", 0) / max(1, total)
        return (f"during the canary v2 answered {share:.0f} % of {total} requests; then it was promoted to "
                f"100 % (revision {revision}), with no failed request")

    @staticmethod
    def _answered(versions: dict[str, dict[str, int]], phase: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return sum(versions[phase].values()) >= 5
        return check

    # -- the summary ------------------------------------------------------------------------------

    def summary(self) -> None:
        self.console.rule("[bold]Summary")
        jobs = Table(title="Jobs")
        for column in ("job", "queue wait", "run time", "restarts", "preemptions", "phase"):
            jobs.add_column(column)
        for job in self.notes.get("jobs", [])[:6]:
            status = job.get("status") or {}
            created = parse_timestamp(job["metadata"]["creationTimestamp"])
            start = status.get("startTime")
            end = status.get("completionTime")
            wait = f"{(parse_timestamp(start) - created).total_seconds():.0f} s" if start else "-"
            run = f"{(parse_timestamp(end) - parse_timestamp(start)).total_seconds():.0f} s" if start and end else "-"
            jobs.add_row(f"{job['metadata']['namespace']}/{job['metadata']['name']}", wait, run,
                         str(status.get("restarts", 0)), str(status.get("preemptions", 0)), str(status.get("phase")))
        self.console.print(jobs)
        allocation = self.samples.allocation
        if allocation:
            buckets = 12
            length = max(1, len(allocation) // buckets)
            curve = [max(value for _, value in allocation[i:i + length]) for i in range(0, len(allocation), length)]
            bars = "".join(" ▁▂▃▄▅▆▇█"[min(8, round(value * 8))] for value in curve)
            self.console.print(f"GPU allocation over time: {bars}  (peak {100 * max(curve):.0f} %)")
        replica_seconds = sum(count for _, count in self.samples.replicas)
        if self.latencies_ms:
            self.console.print(
                f"Service latency: p50 {percentile(self.latencies_ms, 0.5):.1f} ms, "
                f"p99 {percentile(self.latencies_ms, 0.99):.1f} ms over {len(self.latencies_ms)} requests "
                f"(first, cold: {self.notes.get('cold_ms', 0):.0f} ms); replica-seconds ≈ {replica_seconds}")
        steps = Table(title="Steps")
        steps.add_column("step")
        steps.add_column("seconds", justify="right")
        steps.add_column("result")
        for record in self.steps:
            steps.add_row(record.name, f"{record.seconds:.1f}", "ok" if record.ok else f"FAILED: {record.detail}")
        self.console.print(steps)


async def start_sim_nodes(client: ApiClient) -> SimNodes:
    """Two simulated 8×H100 nodes labelled as the simulated pool."""
    nodes = SimNodes(client, [SimNodeSpec(count=2, gpus=8, gpu_model="H100-80GB", name_prefix="sim-h100",
                                          labels={SIM_POOL_LABEL: "sim"})], workers=4)
    await nodes.start()
    return nodes
