"""API server benchmark: creates/s, watch events/s, restart time and memory at 100,000 pods.

The server runs in its own process (`corral up --no-tls`); clients run in this process.
Prints one JSON line. Sizes: `--creates`, `--watch-pods`, `--watchers`, `--restart-pods`.

- creates_per_s: pods created over HTTP by 8 concurrent clients (target ≥ 3000/s).
- watch_events_per_s: events delivered to 50 concurrent watchers while pods are created,
  summed over watchers (target ≥ 50,000/s).
- restart_s: time from starting `corral up` on a data dir holding 100,000 pods until it
  prints its ready line (target < 5 s), of which store_load_s rebuilds the index from
  SQLite; rss_mb: the server's resident memory then, and after listing every pod.
- server_cpu_us_per_create: CPU the server process spent per create (user + system),
  a figure that depends less on how busy the shared machine is than the rates do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from corral.store import Store


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.token = ""

    def start(self) -> float:
        corral = str(Path(sys.executable).parent / "corral")
        started = time.perf_counter()
        self.process = subprocess.Popen([corral, "up", "--data-dir", str(self.data_dir), "--port", "0", "--no-tls", "--apiserver-only"],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        elapsed = time.perf_counter() - started
        if not line.startswith("corral is ready: "):
            raise RuntimeError(f"corral up did not start: {line!r}")
        self.url = line.split()[3]
        self.token = (self.data_dir / "tokens.csv").read_text().split(",")[0]
        return elapsed

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process has used."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None


async def create_pods(session: aiohttp.ClientSession, url: str, prefix: str, count: int, clients: int = 8) -> None:
    path = f"{url}/api/v1/namespaces/default/pods"
    counter = iter(range(count))

    async def client() -> None:
        for i in counter:
            async with session.post(path, data=json.dumps(pod(f"{prefix}-{i}")),
                                    headers={"Content-Type": "application/json"}) as response:
                if response.status != 201:
                    raise RuntimeError(f"create failed: {response.status} {await response.text()}")
                await response.read()

    await asyncio.gather(*(client() for _ in range(clients)))


async def measure_creates(server: Server, count: int) -> tuple[float, float]:
    """Creates per second, and the server's CPU microseconds per create."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.token}"},
                                     connector=aiohttp.TCPConnector(limit=8)) as session:
        await create_pods(session, server.url, "warm", 200)
        cpu = server.cpu_s()
        started = time.perf_counter()
        await create_pods(session, server.url, "c", count)
        elapsed = time.perf_counter() - started
        return count / elapsed, (server.cpu_s() - cpu) / count * 1e6


async def measure_watch(server: Server, pods: int, watchers: int) -> tuple[float, float]:
    headers = {"Authorization": f"Bearer {server.token}"}
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.get(f"{server.url}/api/v1/namespaces/default/pods?limit=1") as response:
            rv = (await response.json())["metadata"]["resourceVersion"]
        counts = [0] * watchers
        done = asyncio.Event()
        finished = 0
        last_event = 0.0

        async def watch(index: int) -> None:
            nonlocal finished, last_event
            url = f"{server.url}/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}"
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
                async for chunk in response.content.iter_any():
                    counts[index] += chunk.count(b"\n")
                    if counts[index] >= pods:
                        last_event = time.perf_counter()
                        finished += 1
                        if finished == watchers:
                            done.set()
                        return

        tasks = [asyncio.ensure_future(watch(i)) for i in range(watchers)]
        await asyncio.sleep(1.0)
        cpu = server.cpu_s()
        async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=8)) as writer:
            started = time.perf_counter()
            await create_pods(writer, server.url, "w", pods)
        await asyncio.wait_for(done.wait(), 300)
        for task in tasks:
            task.cancel()
        return sum(counts) / (last_event - started), (server.cpu_s() - cpu) / pods * 1e6


async def fill(data_dir: Path, count: int) -> None:
    store = Store(data_dir / "store.db")
    await store.open()
    last = None
    for i in range(count):
        obj = pod(f"r-{i}")
        obj["metadata"].update({"uid": f"uid-{i}", "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1})
        obj["spec"]["schedulerName"] = "corral"
        obj["status"] = {"phase": "Pending"}
        last = store.create("pods", obj)
        if i % 5000 == 0:
            await last.wait()
    if last is not None:
        await last.wait()
    await store.close()


async def measure_restart(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        first = Server(data_dir)
        first.start()  # creates tokens and system namespaces
        first.stop()
        await fill(data_dir, count)
        server = Server(data_dir)
        restart = server.start()
        try:
            rss = server.rss_mb()
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.token}"}) as session, \
                    session.get(f"{server.url}/api/v1/pods") as response:
                items = len((await response.json())["items"])
                async with session.get(f"{server.url}/metrics") as scraped:
                    metrics = await scraped.text()
            assert items == count, items
            load = next(float(line.split()[1]) for line in metrics.splitlines()
                        if line.startswith("apiserver_store_load_seconds "))
            return {"restart_s": round(restart, 3), "store_load_s": round(load, 3), "restart_pods": count, "rss_mb": round(rss, 1),
                    "rss_after_list_mb": round(server.rss_mb(), 1)}
        finally:
            server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=5000)
    parser.add_argument("--watch-pods", type=int, default=1000)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--restart-pods", type=int, default=100_000)
    args = parser.parse_args()
    result: dict[str, Any] = {"bench": "apiserver"}
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        server = Server(Path(tmp))
        server.start()
        try:
            rate, cpu_us = await measure_creates(server, args.creates)
            result["creates_per_s"] = round(rate)
            result["server_cpu_us_per_create"] = round(cpu_us)
            result["creates"] = args.creates
        finally:
            server.stop()
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        server = Server(Path(tmp))
        server.start()
        try:
            rate, cpu_us = await measure_watch(server, args.watch_pods, args.watchers)
            result["watch_events_per_s"] = round(rate)
            result["server_cpu_us_per_create_with_watchers"] = round(cpu_us)
            result["watchers"] = args.watchers
            result["watch_pods"] = args.watch_pods
        finally:
            server.stop()
    result.update(await measure_restart(args.restart_pods))
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
