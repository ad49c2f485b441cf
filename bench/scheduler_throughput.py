"""Scheduler throughput through the API, like kube-scheduler's scheduler_perf.

Separate processes on this machine: the API server (SQLite in a temp dir), simulated
nodes (``corral.sim.nodes``: 5,000 nodes x 8 GPUs, two GPU models, a slice of them in MIG
mode) and corral's scheduler (``SchedulerService``); this process is the driver. For each
case the driver creates the pods up front (64 requests in flight), watches them, and
records when each is bound. "Up front" (the default): the scheduler process, its nodes
already synced, is paused (SIGSTOP) while the pods are created and resumed (SIGCONT) once
they all exist, so the figure is how fast the scheduler drains a full queue through the
API, not how fast the driver can create pods on the same two cores; ``--overlap`` lets it
schedule while the pods are being created (session 1's method). Cases:

- ``basic``: 10,000 pods of 1 GPU;
- ``mixed``: 10,000 pods mixing whole GPUs (1, 2, 4, 8), fractions (0.25, 0.5) and MIG
  slices (1g.10gb);
- ``gang``: 1,000 PodGroups of 8 pods x 1 GPU.

Prints one JSON line: ``<case>_pods_per_s`` (bound pods per second from the first bind to
the last), ``<case>_p50_ms``/``<case>_p99_ms`` (creation — the create call returning,
or the scheduler's resumption if later — to bind, as the driver's watch sees it), ``<case>_create_per_s`` (how fast the API took
the pods), ``gpu_allocation`` (share of GPU capacity bound, per case and at the end).
Pods of a case are deleted (grace 0) before the next case.

Usage: ``python bench/scheduler_throughput.py [--nodes 5000] [--pods 10000] [--groups 1000]
[--cases basic,mixed,gang] [--overlap] [--profile DIR]``. ``--profile DIR`` writes a cProfile of the
scheduler process to ``DIR/scheduler.prof``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from corral.client import ApiClient, ApiError

ROOT = Path(__file__).resolve().parents[1]


# -- roles run as child processes --------------------------------------------------------------


async def role_apiserver(info: Path) -> None:
    from corral.apiserver.server import start_server

    server = await start_server(info.parent / "api", tls=False)
    info.write_text(json.dumps({"url": server.url, "token": server.token}))
    await _wait_for_signal()
    await server.stop()


async def role_sim(info: Path, nodes: int, ready: Path) -> None:
    from corral.sim.nodes import SimNodes

    client = _client(info)
    # Leases renewed every 300 s (17 writes/s for 5,000 nodes) rather than the default
    # count/50 s (50 writes/s): node heartbeats are not what this benchmark measures.
    sim = SimNodes(client, sim_specs(nodes), workers=32, create_concurrency=64, lease_interval=300.0)
    await sim.start()
    ready.write_text("ok")
    await _wait_for_signal()
    await sim.stop()
    await client.close()


async def role_scheduler(info: Path, ready: Path, profile: str | None) -> None:
    from corral.scheduler.service import SchedulerConfig, SchedulerService

    client = _client(info, max_connections=128)
    service = SchedulerService(client, config=SchedulerConfig(bind_concurrency=64))
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not wall: the machine is shared
        profiler.enable()
    stages = _stage_timers(service)
    await service.start()
    stages.update(dict.fromkeys(stages, 0.0))
    ready.write_text("ok")
    stages_file = ready.parent / "scheduler.stages.json"

    def dump_stages() -> None:  # SIGUSR1 from the driver: cumulative CPU seconds so far
        data = {"total": time.process_time(), "bound": service.bound,
                "events_written": getattr(service, "events_written", 0),
                "events_dropped": getattr(service, "events_dropped", 0), **stages}
        tmp = stages_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(stages_file)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_stages)
    await _wait_for_signal()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    stats = service.scheduler.stats
    ready.write_text(json.dumps({"cycles": stats.cycles, "scheduled_pods": stats.scheduled_pods,
                                 "bind_failures": stats.bind_failures, "rebuilds": stats.snapshot_rebuilds}))
    await service.stop()
    await client.close()


def _stage_timers(service: Any) -> dict[str, float]:
    """CPU seconds the scheduler process spends per stage, from timers wrapped around the
    stages' synchronous entry points (placement, watch decoding, the pod informer with its
    handlers, building binding requests); the rest of the process's CPU is the event loop,
    sockets and the HTTP exchanges of bindings, Events and status."""
    from corral.client import rest

    acc: dict[str, float] = {}

    def wrap(obj: Any, name: str, label: str) -> None:
        inner = getattr(obj, name)
        acc[label] = 0.0

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                acc[label] += time.process_time() - start

        setattr(obj, name, timed)

    wrap(service.scheduler, "schedule_group", "placement")
    wrap(rest, "_decode_event", "watch_decode")
    wrap(service.pods, "_upsert", "pod_events")
    if hasattr(service.binder, "request_bytes"):
        wrap(service.binder, "request_bytes", "bind_requests")
    return acc


async def _wait_for_signal() -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()


def _client(info: Path, **kwargs: Any) -> ApiClient:
    data = json.loads(info.read_text())
    return ApiClient(data["url"], data["token"], **kwargs)


# -- decisions alone (no API): the scheduler's own ceiling ---------------------------------------


def sim_specs(nodes: int) -> list[Any]:
    from corral.sim.nodes import SimNodeSpec

    h100 = nodes // 2
    mig = nodes // 10
    return [
        SimNodeSpec(count=h100, gpus=8, gpu_model="H100-80GB", name_prefix="h100"),
        SimNodeSpec(count=nodes - h100 - mig, gpus=8, gpu_model="A100-80GB", name_prefix="a100"),
        SimNodeSpec(count=mig, gpus=8, gpu_model="A100-80GB", name_prefix="a100-mig", mig="1g.10gb"),
    ]


def decisions(case: str, nodes: int, count: int, groups: int) -> dict[str, float]:
    """Pods placed per second by the live scheduler's brain (same code, same config), no I/O:
    the bound on throughput that the API, the network and the other processes do not set;
    with the CPU microseconds per placed pod (stable on a shared machine) and how many of the
    case's pods were placed at all."""
    from corral.scheduler.cycle import BindDecision, Scheduler
    from corral.scheduler.service import SchedulerConfig, default_framework
    from corral.sim.nodes import build_node
    from corral.util.clock import SystemClock

    config = SchedulerConfig()
    brain = Scheduler(framework=default_framework(config.profile), clock=SystemClock())
    for spec in sim_specs(nodes):
        for i in range(spec.count):
            brain.node_upsert(build_node(spec, i))
    brain.sync_nodes()
    podgroups, pods = make_pods(case, count, groups)
    for pg in podgroups:
        brain.podgroup_upsert(pg)
    for i, pod in enumerate(pods):
        pod["metadata"].update(uid=str(i), creationTimestamp="2026-01-01T00:00:00Z")
        brain.pod_upsert(pod)
    placed = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    while (decision := brain.schedule_next()) is not None:
        if isinstance(decision, BindDecision):
            for binding in decision.bindings:
                brain.bind_succeeded(binding.key)
                bound = {**binding.pod, "spec": {**binding.pod["spec"], "nodeName": binding.node},
                         "metadata": {**binding.pod["metadata"],
                                      "annotations": {**binding.pod["metadata"]["annotations"],
                                                      "corral.dev/gpu-devices": binding.devices}},
                         "status": {"phase": "Running"}}
                brain.pod_upsert(bound)
                placed += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {f"{case}_decisions_per_s": round(placed / wall, 1),
            f"{case}_decision_cpu_us_per_pod": round(cpu * 1e6 / max(1, placed)),
            f"{case}_decisions_placed": placed}


# -- the driver --------------------------------------------------------------------------------


def spawn(role: str, workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    log = (workdir / f"{role}.log").open("wb")
    return subprocess.Popen([sys.executable, __file__, "--role", role, "--workdir", str(workdir), *extra],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


async def wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[3]} exited with {proc.returncode}; see {path.parent}/{proc.args[3]}.log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {path}")
        await asyncio.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_pods(case: str, count: int, groups: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(PodGroups, pods) for a case; pod dicts carry a private ``_gpus`` weight for allocation."""
    ns = f"bench-{case}"
    pods: list[dict[str, Any]] = []
    podgroups: list[dict[str, Any]] = []

    def pod(name: str, *, gpus: int = 0, fraction: str | None = None, mig: str | None = None,
            group: str | None = None) -> dict[str, Any]:
        limits: dict[str, str] = {}
        annotations: dict[str, str] = {}
        if gpus:
            limits["nvidia.com/gpu"] = str(gpus)
        if mig:
            limits[f"nvidia.com/mig-{mig}"] = "1"
        if fraction:
            annotations["corral.dev/gpu-fraction"] = fraction
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "annotations": annotations,
                             "labels": {"corral.dev/pod-group": group} if group else {}},
                "spec": {"containers": [{"name": "main", "image": "bench",
                                         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                       "limits": limits}}]}}

    if case == "basic":
        pods = [pod(f"p-{i}", gpus=1) for i in range(count)]
    elif case == "mixed":
        kinds = ["g1"] * 40 + ["g2"] * 15 + ["g4"] * 8 + ["g8"] * 4 + ["f25"] * 12 + ["f50"] * 11 + ["mig"] * 10
        for i in range(count):
            kind = kinds[(i * 37) % len(kinds)]
            if kind.startswith("g"):
                pods.append(pod(f"p-{i}", gpus=int(kind[1:])))
            elif kind == "f25":
                pods.append(pod(f"p-{i}", fraction="0.25"))
            elif kind == "f50":
                pods.append(pod(f"p-{i}", fraction="0.5"))
            else:
                pods.append(pod(f"p-{i}", mig="1g.10gb"))
    else:
        for g in range(groups):
            podgroups.append({"apiVersion": "corral.dev/v1alpha1", "kind": "PodGroup",
                              "metadata": {"name": f"g-{g}", "namespace": ns}, "spec": {"minMember": 8}})
            pods.extend(pod(f"g-{g}-{m}", gpus=1, group=f"g-{g}") for m in range(8))
    return podgroups, pods


def gpu_weight(pod: dict[str, Any]) -> tuple[float, float]:
    """(whole-GPU equivalents, MIG slices) a pod asks for."""
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    fraction = (pod["metadata"].get("annotations") or {}).get("corral.dev/gpu-fraction")
    if fraction:
        return float(fraction), 0.0
    return float(limits.get("nvidia.com/gpu", 0)), float(limits.get("nvidia.com/mig-1g.10gb", 0))


def cpu_seconds(pid: int | None) -> float:
    """User+system CPU seconds a process has used so far (``/proc/PID/stat``; this process when None)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scheduler_stages(where: tuple[int, Path] | None) -> dict[str, float]:
    """Ask the scheduler process (SIGUSR1) for its cumulative per-stage CPU seconds."""
    if where is None:
        return {}
    pid, path = where
    before = path.stat().st_mtime_ns if path.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    for _ in range(100):
        await asyncio.sleep(0.05)
        if path.exists() and path.stat().st_mtime_ns != before:
            with contextlib.suppress(ValueError):
                return dict(json.loads(path.read_text()))
    return {}


async def run_case(client: ApiClient, case: str, count: int, groups: int, capacity: tuple[float, float],
                   timeout: float, pids: dict[str, int | None] | None = None,
                   stages: tuple[int, Path] | None = None, upfront: bool = True) -> dict[str, Any]:
    ns = f"bench-{case}"
    with contextlib.suppress(ApiError):
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    podgroups, pods = make_pods(case, count, groups)
    weights = {p["metadata"]["name"]: gpu_weight(p) for p in pods}
    created: dict[str, float] = {}
    bound: dict[str, float] = {}
    listing = await client.list("v1", "pods", ns, limit=1)
    rv = listing["metadata"]["resourceVersion"]
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal rv
        while not done.is_set():
            try:
                async for event in client.watch("v1", "pods", ns, resource_version=rv, timeout_seconds=600):
                    obj = event.object
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if event.type not in ("ADDED", "MODIFIED", "DELETED"):
                        continue
                    name = obj["metadata"]["name"]
                    if event.type in ("ADDED", "MODIFIED") and obj["spec"].get("nodeName") and name not in bound:
                        bound[name] = time.monotonic()
                        if len(bound) == len(pods):
                            done.set()
                            return
            except ApiError as error:
                print(f"watch: {error}", file=sys.stderr)
                await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    for pg in podgroups:
        await client.create(pg)
    slots = asyncio.Semaphore(64)

    async def create(p: dict[str, Any]) -> None:
        async with slots:
            await client.create(p)
            created[p["metadata"]["name"]] = time.monotonic()

    pids = pids or {}
    cpu0 = {role: cpu_seconds(pid) for role, pid in pids.items()}
    stages0 = await scheduler_stages(stages)
    paused = upfront and stages is not None
    if paused:
        assert stages is not None
        os.kill(stages[0], signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        await asyncio.gather(*(create(p) for p in pods))
    finally:
        if paused:
            assert stages is not None
            os.kill(stages[0], signal.SIGCONT)
    create_s = time.monotonic() - t0
    resumed = time.monotonic()
    last_progress, last_count = time.monotonic(), 0
    while not done.is_set() and time.monotonic() - last_progress < timeout:
        await asyncio.sleep(0.5)
        if len(bound) != last_count:
            last_progress, last_count = time.monotonic(), len(bound)
    done.set()
    cpu = {role: cpu_seconds(pid) - cpu0[role] for role, pid in pids.items()}
    stages1 = await scheduler_stages(stages)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    times = sorted(bound.values())
    # Up front, a pod waits for the scheduler to be resumed: its latency counts from then.
    latencies = sorted((bound[n] - (max(created[n], resumed) if paused else created[n])) * 1000
                       for n in bound if n in created)
    whole = sum(weights[n][0] for n in bound)
    slices = sum(weights[n][1] for n in bound)
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    result = {
        f"{case}_pods": len(pods),
        f"{case}_bound": len(bound),
        f"{case}_pods_per_s": round((len(times) - 1) / span, 1) if span > 0 else 0.0,
        f"{case}_create_per_s": round(len(pods) / create_s, 1),
        f"{case}_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        f"{case}_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1) if latencies else None,
        f"{case}_gpu_allocation": round((whole + slices / 7) / (capacity[0] + capacity[1] / 7), 4),
    }
    # CPU per bound pod, per process, from the first create to the last bind: the stable figure
    # on a shared machine (wall-clock rates depend on what else runs).
    for role, seconds in cpu.items():
        result[f"{case}_{role}_cpu_us_per_pod"] = round(seconds * 1e6 / max(1, len(bound)))
    if stages0 and stages1:
        # where the scheduler's CPU went, per bound pod (the rest: event loop, sockets, HTTP)
        n = max(1, stages1["bound"] - stages0["bound"])
        result[f"{case}_scheduler_stages_us_per_pod"] = {
            k: round((stages1[k] - stages0[k]) * 1e6 / n) for k in stages1
            if k not in ("bound", "events_written", "events_dropped") and k in stages0}
        result[f"{case}_scheduled_events"] = {"written": stages1["events_written"] - stages0["events_written"],
                                              "dropped": stages1["events_dropped"] - stages0["events_dropped"]}
    await client.request("DELETE", f"/api/v1/namespaces/{ns}/pods", params={"gracePeriodSeconds": "0"},
                         body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
    for pg in podgroups:
        with contextlib.suppress(ApiError):
            await client.delete("corral.dev/v1alpha1", "podgroups", pg["metadata"]["name"], ns)
    for _ in range(120):
        left = await client.list("v1", "pods", ns, limit=1)
        if not left["items"]:
            break
        await asyncio.sleep(0.5)
    return result


async def driver(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="corral-bench-sched-"))
    info = workdir / "api.json"
    procs: list[subprocess.Popen[bytes]] = []
    out: dict[str, Any] = {"bench": "scheduler_throughput", "nodes": args.nodes, "gpus_per_node": 8,
                           "mode": "overlap" if args.overlap else "upfront"}
    try:
        if args.decisions:
            for case in args.cases.split(","):
                figures = decisions(case, args.nodes, args.pods, args.groups)
                out.update(figures)
                print(json.dumps(figures), file=sys.stderr, flush=True)
        if args.decisions_only:
            return out
        api = spawn("apiserver", workdir)
        procs.append(api)
        await wait_file(info, api, 60)
        t0 = time.monotonic()
        sim = spawn("sim", workdir, "--nodes", str(args.nodes))
        procs.append(sim)
        await wait_file(workdir / "sim.ready", sim, 900)
        out["node_registration_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        extra = ["--profile", str(Path(args.profile).resolve() / "scheduler.prof")] if args.profile else []
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
        sched = spawn("scheduler", workdir, *extra)
        procs.append(sched)
        await wait_file(workdir / "scheduler.ready", sched, 300)
        out["scheduler_sync_s"] = round(time.monotonic() - t0, 1)
        client = _client(info, max_connections=128)
        mig_nodes = args.nodes // 10
        capacity = (float((args.nodes - mig_nodes) * 8), float(mig_nodes * 8 * 7))
        try:
            for case in args.cases.split(","):
                count = args.pods
                pids: dict[str, int | None] = {"scheduler": sched.pid, "apiserver": api.pid, "sim": sim.pid,
                                               "driver": None}
                result = await run_case(client, case, count, args.groups, capacity, args.stall_timeout, pids,
                                        (sched.pid, workdir / "scheduler.stages.json"), upfront=not args.overlap)
                print(json.dumps(result), file=sys.stderr, flush=True)  # progress, case by case
                out.update(result)
                out["gpu_allocation"] = out[f"{case}_gpu_allocation"]
        finally:
            await client.close()
        stop(sched)
        with contextlib.suppress(ValueError, OSError):
            out["scheduler"] = json.loads((workdir / "scheduler.ready").read_text())
    finally:
        for proc in reversed(procs):
            stop(proc)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out["machine"] = f"{os.cpu_count()} CPUs"
    with contextlib.suppress(OSError):
        out["load_average_1m_at_end"] = round(os.getloadavg()[0], 1)
    if args.keep:
        out["workdir"] = str(workdir)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["driver", "apiserver", "sim", "scheduler"], default="driver")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--cases", default="basic,mixed,gang")
    parser.add_argument("--stall-timeout", type=float, default=30.0,
                        help="end a case when no pod was bound for this many seconds")
    parser.add_argument("--profile", default=None, help="directory for a cProfile of the scheduler")
    parser.add_argument("--no-decisions", dest="decisions", action="store_false",
                        help="skip the in-process decision-rate measurement")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, database)")
    parser.add_argument("--overlap", action="store_true",
                        help="schedule while the driver is still creating the case's pods (default: the "
                             "scheduler is paused until all pods exist, i.e. they are created up front)")
    parser.add_argument("--decisions-only", action="store_true",
                        help="only the in-process decision rate (no API server, no processes)")
    args = parser.parse_args()
    workdir = Path(args.workdir) if args.workdir else None
    if args.role == "apiserver":
        assert workdir is not None
        asyncio.run(role_apiserver(workdir / "api.json"))
    elif args.role == "sim":
        assert workdir is not None
        asyncio.run(role_sim(workdir / "api.json", args.nodes, workdir / "sim.ready"))
    elif args.role == "scheduler":
        assert workdir is not None
        idx = sys.argv.index("--profile") if "--profile" in sys.argv else -1
        asyncio.run(role_scheduler(workdir / "api.json", workdir / "scheduler.ready",
                                   sys.argv[idx + 1] if idx >= 0 else None))
    else:
        print(json.dumps(asyncio.run(driver(args))))


if __name__ == "__main__":
    main()
