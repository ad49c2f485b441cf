"""Node agent benchmark: pod start latency and how many pods one agent keeps healthy.

- ``pod_start_ms``: 200 trivial process pods (``sleep``) are created unbound, then bound
  to the agent's node at ``BIND_RATE`` binds/s; for each, the time from the bind request
  to the watch event that shows ``status.phase=Running`` (p50/p99).
- ``pods_per_node``: more sleeping pods are added in steps; a step counts when every pod
  reaches Running and the agent's lease heartbeats stay on time (no gap between
  renewals above 1.5× the 2 s interval over three intervals at that load). The
  figure is the largest such step. The API server runs in the same process and
  event loop as the agent, as in ``corral up``; ``steady_cpu_pct`` is that process's
  CPU use while it only keeps the pods (log indexing, heartbeats), in % of one core.

It starts an in-process API server (plain HTTP) and one agent in a temp dir and prints
one JSON line. ``BENCH_AGENT_MAX_PODS`` (default 1000) caps the ramp.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from corral.agent.agent import Agent, AgentConfig
from corral.apiserver.server import start_server
from corral.client import ApiClient

BIND_RATE = 50.0
START_PODS = 200
HEARTBEAT = 2.0


def sleeping_pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def create_many(client: ApiClient, names: list[str], node: str | None) -> None:
    semaphore = asyncio.Semaphore(16)

    async def one(name: str) -> None:
        obj = sleeping_pod(name)
        if node:
            obj["spec"]["nodeName"] = node
        async with semaphore:
            await client.create(obj)

    await asyncio.gather(*(one(n) for n in names))


async def main() -> dict[str, Any]:
    load_at_start = round(os.getloadavg()[0], 2)
    root = Path(tempfile.mkdtemp(prefix="corral-bench-agent-"))
    max_pods = int(os.environ.get("BENCH_AGENT_MAX_PODS", "1000"))
    server = await start_server(root / "api", tls=False)
    client = ApiClient(server.url, server.token)
    agent = Agent(client, AgentConfig(data_dir=root / "agent", node_name="bench-node", discover_gpus=False,
                                      heartbeat_interval=HEARTBEAT, lease_duration=4, max_pods=max_pods + 10,
                                      shutdown_grace=1))
    running_at: dict[str, float] = {}
    watcher: asyncio.Task[None] | None = None
    try:
        await agent.start()

        async def watch() -> None:
            while True:
                try:
                    async for event in client.watch("v1", "pods", "default"):
                        obj = event.object
                        name = obj["metadata"]["name"]
                        if (obj.get("status") or {}).get("phase") == "Running" and name not in running_at:
                            running_at[name] = time.perf_counter()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch())
        names = [f"start-{i:04d}" for i in range(START_PODS)]
        await create_many(client, names, None)
        bound_at: dict[str, float] = {}
        binds = []
        for name in names:
            bound_at[name] = time.perf_counter()
            binds.append(asyncio.create_task(client.bind("default", name, "bench-node")))
            await asyncio.sleep(1 / BIND_RATE)
        await asyncio.gather(*binds)
        deadline = time.monotonic() + 120
        while len([n for n in names if n in running_at]) < len(names) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        latencies = [(running_at[n] - bound_at[n]) * 1000 for n in names if n in running_at]

        # ramp: how many sleeping pods stay healthy with heartbeats on time
        healthy = 0
        step_results = []
        total = START_PODS
        step = 200
        while total <= max_pods:
            await asyncio.sleep(HEARTBEAT)  # let the step's start-up burst pass before measuring
            agent.max_heartbeat_gap = 0.0
            beats_before = agent.reporter.heartbeats if agent.reporter else 0
            cpu_before, wall_before = time.process_time(), time.monotonic()
            await asyncio.sleep(HEARTBEAT * 3)  # observe heartbeats at this load
            cpu_pct = 100 * (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
            gap = agent.max_heartbeat_gap
            beats = (agent.reporter.heartbeats if agent.reporter else 0) - beats_before
            running = sum(1 for w in agent.workers.values() if w.runtime.containers[0].state == "running")
            ok = running >= total and gap <= HEARTBEAT * 1.5 and beats >= 2
            step_results.append({"pods": total, "running": running, "max_heartbeat_gap_s": round(gap, 3),
                                 "heartbeats": beats, "steady_cpu_pct": round(cpu_pct, 1), "ok": ok})
            if not ok:
                break
            healthy = total
            if total + step > max_pods:
                break
            new = [f"ramp-{total + i:05d}" for i in range(step)]
            await create_many(client, new, "bench-node")
            total += step
            wait_until = time.monotonic() + 120
            while time.monotonic() < wait_until and \
                    sum(1 for w in agent.workers.values() if w.runtime.containers[0].state == "running") < total:
                await asyncio.sleep(0.1)
        return {
            "benchmark": "agent",
            "pods": len(names),
            "bind_rate_per_s": BIND_RATE,
            "pod_start_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
            "pod_start_ms_p99": round(percentile(latencies, 0.99), 1) if latencies else None,
            "pod_start_ms_max": round(max(latencies), 1) if latencies else None,
            "pods_started": len(latencies),
            "pods_per_node": healthy,
            "pods_per_node_cap": max_pods,
            "heartbeat_interval_s": HEARTBEAT,
            "ramp": step_results,
            "status_writes": agent.status_writes,
            "cpus": len(os.sched_getaffinity(0)),
            "load_avg_1m_at_start": load_at_start,
            "python": sys.version.split()[0],
        }
    finally:
        if watcher is not None:
            watcher.cancel()
        await agent.stop()
        await client.close()
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
