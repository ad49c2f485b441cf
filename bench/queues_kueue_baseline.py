"""Kueue's scheduler-performance baseline, run through corral in real time. Prints one JSON line.

The workload of ``shared/docs/kueue-baseline.md``: 5 cohorts x 6 queues; every queue has a
nominal quota of 20 CPU, a borrowing limit of 100 CPU, ``reclaimWithinCohort: Any`` and
``withinQueue: LowerPriority``; per queue three streams start together — 350 small
(1 CPU, every 100 ms, runs 200 ms, priority 50), 100 medium (5 CPU, every 500 ms, 500 ms,
priority 100), 50 large (20 CPU, every 1200 ms, 1000 ms, priority 200): 15,000 workloads.

What runs: corral's API server (in-process, SQLite), the live scheduler with queue
admission at its seam (:class:`corral.scheduler.quota.component.QueuedScheduler`, exactly
what ``corral up`` runs), simulated nodes with enough CPU that placement never limits
admission, and each workload as a bare pod (a group of one) created over HTTP with label
``corral.dev/queue``. The bench plays kubelet for the simulated nodes itself so that a
workload runs exactly its runtime after it is bound (``corral.dev/sim-duration`` is timed
from ``startTime``, which has one-second precision): it marks the pod ``Succeeded`` then,
which releases the quota. A preempted workload's pod is deleted by corral; the bench
recreates it (as a Job controller would) and it is admitted again. As in Kueue's harness a
workload finishes ``runtime`` after its *admission* (the time corral booked its quota).

Figures (Kueue's definitions):

- ``wall_s``: from the first creation until every workload has finished;
- ``usage_pct``: the mean share of the nominal quota in use over the run — Kueue's recorder
  integrates each ClusterQueue's ``status.flavorsUsage`` over time and divides by the
  nominal quota; here the Queues' ``status.flavorsUsage`` (written by corral every
  second, as ``corral up`` does) is sampled every 250 ms from first creation to last finish;
- ``tta_ms_small|medium|large``: mean time from creating a workload to its first
  admission (seen as the pod bound, so bind and watch latency count against corral).

Also ``cpu_us_per_admission``: CPU time of each process (API server, scheduler, the bench
itself) per admission — the stable figure on a machine others load. ``QUEUES_BENCH_PROFILE=DIR``
writes cProfile files of the server and the scheduler (``--processes``).

Options: ``--cohorts N`` (default 5; 1 is a fifth of the work at a fifth of the rate) and
``--time-limit S`` to run a smaller version.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.apiserver.server import start_server
from corral.client import ApiClient, ApiError, Informer
from corral.scheduler.quota.component import QueuedScheduler
from corral.scheduler.service import SchedulerConfig
from corral.sim.nodes import SimNodeSpec, build_node

NS = "bench"
API = "corral.dev/v1alpha1"
CLASSES = {  # name: (count, every_s, cpu, runtime_s, priority)
    "small": (350, 0.1, 1, 0.2, 50),
    "medium": (100, 0.5, 5, 0.5, 100),
    "large": (50, 1.2, 20, 1.0, 200),
}
STATUS_INTERVAL = 1.0  # Queue status writes (as `corral up`); usage is sampled from them
KUEUE = {"wall_s": 351.0, "usage_pct": 55.9, "tta_ms_small": 215500.0, "tta_ms_medium": 76800.0,
         "tta_ms_large": 16500.0}


@dataclass
class Workload:
    wid: str
    queue: str
    klass: str
    cpu: int
    runtime: float
    priority: int
    created: float = 0.0
    admitted: float | None = None
    finished: float | None = None
    attempt: int = 0
    pod: str = ""


@dataclass
class Run:
    workloads: dict[str, Workload] = field(default_factory=dict)
    by_pod: dict[str, Workload] = field(default_factory=dict)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    preempted: int = 0
    admissions: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    finished: int = 0


def queue_obj(name: str, cohort: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Queue", "metadata": {"name": name}, "spec": {
        "cohort": cohort,
        "resourceGroups": [{"flavors": [{"name": "default", "resources": [
            {"name": "cpu", "nominalQuota": 20, "borrowingLimit": 100}]}]}],
        "preemption": {"reclaimWithinCohort": "Any", "withinQueue": "LowerPriority"},
    }}


def pod_obj(w: Workload) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": w.pod, "namespace": NS,
                         "labels": {"corral.dev/queue": w.queue, "bench/workload": w.wid}},
            "spec": {"priority": w.priority, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": "none",
                                     "resources": {"requests": {"cpu": str(w.cpu)}}}]}}


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def profiled(role: str, coro: Any) -> None:
    """Run a child role; with ``QUEUES_BENCH_PROFILE=DIR`` under cProfile (``DIR/<role>.prof``)."""
    where = os.environ.get("QUEUES_BENCH_PROFILE")
    if not where:
        asyncio.run(coro)
        return
    import cProfile

    profile = cProfile.Profile()
    profile.enable()
    try:
        asyncio.run(coro)
    finally:
        profile.disable()
        profile.dump_stats(str(Path(where) / f"{role}.prof"))


async def serve(data: Path) -> None:
    """``--role server``: the API server alone, until terminated."""
    server = await start_server(data, tls=False)
    (data / "ready").write_text(server.url)
    try:
        await until_terminated()
    finally:
        await server.stop()


async def schedule(kubeconfig: Path) -> None:
    """``--role scheduler``: corral's scheduler with queue admission, as ``corral up`` runs it."""
    client = ApiClient.from_kubeconfig(kubeconfig)
    scheduler = QueuedScheduler(client, config=scheduler_config(), status_interval=STATUS_INTERVAL)
    await scheduler.start()
    try:
        await until_terminated()
    finally:
        await scheduler.stop()
        await client.close()


def scheduler_config() -> SchedulerConfig:
    return SchedulerConfig(initial_backoff=0.0, max_backoff=0.0, record_scheduled_events=False,
                           bind_concurrency=128, unschedulable_retry=5.0)


async def main(cohorts: int, time_limit: float, processes: bool) -> dict[str, Any]:
    logging.basicConfig(level=logging.ERROR)
    data = Path(tempfile.mkdtemp(prefix="corral-bench-queues-"))
    children: list[subprocess.Popen[bytes]] = []
    server = None
    if processes:
        children.append(subprocess.Popen([sys.executable, __file__, "--role", "server", "--data", str(data)]))  # noqa: ASYNC220
        while not (data / "ready").exists():
            if children[0].poll() is not None:
                raise SystemExit("the API server did not start")
            await asyncio.sleep(0.05)
        kubeconfig = data / "kubeconfig"
    else:
        server = await start_server(data, tls=False)
        kubeconfig = server.kubeconfig
    client = ApiClient.from_kubeconfig(kubeconfig)
    run = Run()
    loop = asyncio.get_running_loop()
    try:
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        spec = SimNodeSpec(count=max(2, cohorts), gpus=0, gpu_model="none", name_prefix="cpu", cpu="512", pods=2000)
        for i in range(spec.count):
            await client.create(build_node(spec, i))
        queues = [(f"c{c}-q{q}", f"c{c}") for c in range(cohorts) for q in range(6)]
        for name, cohort in queues:
            await client.create(queue_obj(name, cohort))
        scheduler: QueuedScheduler | None = None
        if processes:
            children.append(subprocess.Popen([sys.executable, __file__, "--role", "scheduler",  # noqa: ASYNC220
                                              "--kubeconfig", str(kubeconfig)]))
        else:
            scheduler = QueuedScheduler(client, config=scheduler_config(), status_interval=STATUS_INTERVAL)
            await scheduler.start()
        queue_informer = Informer(client, API, "queues")
        await queue_informer.start()
        await queue_informer.wait_synced()
        pods = Informer(client, "v1", "pods", NS)
        creates = asyncio.Semaphore(96)
        background: set[asyncio.Task[Any]] = set()

        def spawn(coro: Any) -> None:
            task = asyncio.ensure_future(coro)
            background.add(task)
            task.add_done_callback(background.discard)

        async def create(w: Workload) -> None:
            w.attempt += 1
            w.pod = f"{w.wid}-{w.attempt}"
            run.by_pod[w.pod] = w
            async with creates:
                for _ in range(20):
                    try:
                        await client.create(pod_obj(w))
                        return
                    except ApiError as error:
                        if error.conflict:
                            return
                        await asyncio.sleep(0.05)

        async def succeed(name: str) -> None:
            with contextlib.suppress(ApiError):
                await client.patch("v1", "pods", name, {"status": {"phase": "Succeeded"}}, namespace=NS,
                                   subresource="status")

        def finish(w: Workload, name: str) -> None:
            run.timers.pop(name, None)
            if w.finished is None and w.pod == name:
                w.finished = time.monotonic()
                run.finished += 1
                spawn(succeed(name))
                if run.finished == len(run.workloads):
                    run.done.set()

        def on_pod(pod: dict[str, Any]) -> None:
            name = pod["metadata"]["name"]
            w = run.by_pod.get(name)
            if w is None or w.pod != name:
                return
            if pod["metadata"].get("deletionTimestamp"):
                on_delete(pod)
                spawn(client.delete_if_exists("v1", "pods", name, NS, grace_period_seconds=0))
                return
            if (pod.get("spec") or {}).get("nodeName") and name not in run.timers and w.finished is None \
                    and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                run.admissions += 1
                if w.admitted is None:
                    w.admitted = time.monotonic()
                # Kueue's rule: a workload finishes `runtime` after it is *admitted* (not after the
                # bind reached us): take the admission time from corral's quota booking.
                booked = scheduler.admission.book.admitted.get(f"pod:{NS}/{name}") if scheduler else None
                since = time.time() - booked.admitted_at if booked is not None else 0.0
                run.timers[name] = loop.call_later(max(0.0, w.runtime - since), finish, w, name)

        def on_delete(pod: dict[str, Any]) -> None:
            name = pod["metadata"]["name"]
            w = run.by_pod.get(name)
            if w is None or w.pod != name or w.finished is not None:
                return
            timer = run.timers.pop(name, None)
            if timer is not None:
                timer.cancel()
            run.preempted += 1
            spawn(create(w))  # preempted: the owner recreates it; it is admitted again later

        pods.add_handler(on_pod, lambda _old, new: on_pod(new), on_delete)
        await pods.start()
        await pods.wait_synced()

        plan: list[tuple[float, Workload]] = []
        for name, _ in queues:
            for klass, (count, every, cpu, runtime, priority) in CLASSES.items():
                for i in range(count):
                    w = Workload(f"{name}-{klass}-{i}", name, klass, cpu, runtime, priority)
                    run.workloads[w.wid] = w
                    plan.append((i * every, w))
        plan.sort(key=lambda item: item[0])
        samples: list[float] = []
        nominal = 20_000 * len(queues)

        async def sample() -> None:
            # corral's own account of quota in use: the Queues' status
            while not run.done.is_set():
                used = 0.0
                for obj in queue_informer.list():
                    for flavor in (obj.get("status") or {}).get("flavorsUsage") or []:
                        for resource in flavor.get("resources") or []:
                            used += float(resource.get("total") or 0) * 1000
                samples.append(used / nominal)
                await asyncio.sleep(0.25)

        start = time.monotonic()
        cpu0 = time.process_time()
        child_cpu0 = [proc_cpu(child.pid) for child in children]
        sampler = asyncio.ensure_future(sample())
        for offset, w in plan:
            delay = start + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            w.created = time.monotonic()
            spawn(create(w))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.done.wait(), timeout=max(1.0, time_limit - (time.monotonic() - start)))
        end = time.monotonic()
        run.done.set()
        cpu_s = {"driver" if children else "all": time.process_time() - cpu0}
        for role, child, before in zip(("server", "scheduler"), children, child_cpu0, strict=False):
            after = proc_cpu(child.pid)
            if before is not None and after is not None:
                cpu_s[role] = after - before
        await sampler
        for timer in run.timers.values():
            timer.cancel()
        await pods.stop()
        await queue_informer.stop()
        if scheduler is not None:
            await scheduler.stop()
        for task in list(background):
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        finished = [w for w in run.workloads.values() if w.finished is not None]
        last = max((w.finished for w in finished if w.finished is not None), default=end)

        def tta(klass: str) -> float | None:
            values = [w.admitted - w.created for w in run.workloads.values()
                      if w.klass == klass and w.admitted is not None]
            return round(statistics.fmean(values) * 1000, 1) if values else None

        if os.environ.get("QUEUES_BENCH_DEBUG"):
            with open("/tmp/qbench-trace.json", "w") as f:
                json.dump([(w.klass, w.created - start, (w.admitted or 0) - start, (w.finished or 0) - start)
                           for w in run.workloads.values()], f)
            print(json.dumps({"cpu_s": round(time.process_time() - cpu0, 1), "span_s": round(end - start, 1),
                              "sched": vars(scheduler.service.scheduler.stats) if scheduler else None},
                             default=str), file=sys.stderr)
        result: dict[str, Any] = {
            "bench": "queues_kueue_baseline",
            "workloads": len(run.workloads),
            "finished": len(finished),
            "complete": len(finished) == len(run.workloads),
            "wall_s": round((last if len(finished) == len(run.workloads) else end) - start, 1),
            "usage_pct": round(100 * statistics.fmean(samples), 1) if samples else 0.0,
            "tta_ms_small": tta("small"),
            "tta_ms_medium": tta("medium"),
            "tta_ms_large": tta("large"),
            "preempted": run.preempted,
            "admissions": run.admissions,
            # CPU per admission (every bind seen, re-admissions after preemption included), per
            # process: the stable figure when the machine is shared.
            "cpu_us_per_admission": {role: round(seconds * 1e6 / max(1, run.admissions))
                                     for role, seconds in cpu_s.items()},
            "queues": len(queues),
            "processes": 3 if processes else 1,
            "admission_from": "booking" if scheduler else "bind",
            "kueue": KUEUE,
            "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_implementation()} "
                       f"{platform.python_version()}",
        }
        return result
    finally:
        await client.close()
        if server is not None:
            await server.stop()
        for child in reversed(children):
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cohorts", type=int, default=5)
    parser.add_argument("--time-limit", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--processes", action="store_true",
                        help="API server, scheduler and the driver in three processes (for machines with cores to spare)")
    parser.add_argument("--role", choices=["driver", "server", "scheduler"], default="driver", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        profiled("server", serve(args.data))
    elif args.role == "scheduler":
        profiled("scheduler", schedule(args.kubeconfig))
    else:
        print(json.dumps(asyncio.run(main(args.cohorts, args.time_limit, args.processes))))
    sys.stdout.flush()
