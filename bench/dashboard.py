"""Dashboard load time with 1,000 nodes and 10,000 pods (one JSON line).

Starts an API server in this process (plain HTTP, in-memory data dir under a temp dir),
creates 1,000 nodes with 8 GPUs each and 10,000 pods bound to them (whole GPUs and
halves), then measures:

- ``state_ms_p50``/``state_ms_max``: ``GET /dashboard/api/state`` over 7 requests;
- ``state_bytes``: the summary's size;
- ``page_load_ms``: headless Chromium loading the page until its JavaScript rendered the
  grid, minus the same browser loading ``about:blank`` (``browser_start_ms``), medians of 3,
  when ``chromium`` is installed, else null.

Usage: ``python bench/dashboard.py [--nodes 1000] [--pods 10000]``. Target: page < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from corral.apiserver.server import start_server
from corral.client import ApiClient


def node(index: int) -> dict:
    devices = [{"index": i, "uuid": f"GPU-sim-{index}-{i}", "model": "H100-80GB", "memoryMiB": 81920,
                "simulated": True} for i in range(8)]
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"node-{index:04d}", "labels": {"corral.dev/simulated-gpus": "true"},
                         "annotations": {"corral.dev/devices": json.dumps(devices)}},
            "status": {"capacity": {"nvidia.com/gpu": "8", "cpu": "128", "memory": "1Ti"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(index: int, nodes: int) -> dict:
    device = index % 8
    share = "" if index % 2 else ":0.5"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod-{index:05d}", "namespace": "default",
                         "annotations": {"corral.dev/gpu-devices": f"{device}{share}"}},
            "spec": {"nodeName": f"node-{index % nodes:04d}",
                     "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]},
            "status": {"phase": "Running"}}


async def create_all(client: ApiClient, objects: list[dict], concurrency: int = 32) -> None:
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for obj in objects:
        queue.put_nowait(obj)

    async def worker() -> None:
        while not queue.empty():
            await client.create(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _dump(binary: str, url: str, budget_ms: int) -> tuple[float, bytes]:
    with tempfile.TemporaryDirectory() as profile:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}", "--dump-dom", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await process.communicate()
        return (time.perf_counter() - started) * 1000, out


async def page_load_ms(url: str) -> tuple[float | None, float | None]:
    """(browser start + blank page, extra time for the dashboard to render its grid), medians of 3."""
    binary = shutil.which("chromium")
    if binary is None:
        return None, None
    blanks, pages = [], []
    for _ in range(3):
        blank, _ = await _dump(binary, "about:blank", 500)
        page, out = await _dump(binary, url, 500)
        if b'data-node="node-0000"' not in out:
            return round(blank, 1), None
        blanks.append(blank)
        pages.append(page)
    return round(statistics.median(blanks), 1), round(statistics.median(pages) - statistics.median(blanks), 1)


async def main(nodes: int, pods: int) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        server = await start_server(Path(data_dir), tls=False)
        try:
            async with ApiClient(server.url, server.token) as client:
                started = time.perf_counter()
                await create_all(client, [node(i) for i in range(nodes)])
                await create_all(client, [pod(i, nodes) for i in range(pods)])
                setup_s = time.perf_counter() - started
            timings = []
            size = 0
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.token}"}) as session:
                for _ in range(7):
                    began = time.perf_counter()
                    async with session.get(f"{server.url}/dashboard/api/state") as response:
                        body = await response.read()
                    timings.append((time.perf_counter() - began) * 1000)
                    size = len(body)
            browser_start, page = await page_load_ms(f"{server.url}/dashboard/#token={server.token}")
        finally:
            await server.stop()
    return {"bench": "dashboard", "nodes": nodes, "pods": pods, "setup_s": round(setup_s, 1),
            "state_ms_p50": round(statistics.median(timings), 1), "state_ms_max": round(max(timings), 1),
            "state_bytes": size, "browser_start_ms": browser_start, "page_load_ms": page}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    options = parser.parse_args()
    print(json.dumps(asyncio.run(main(options.nodes, options.pods))))
