"""Gateway benchmark: added latency, throughput against nginx, and activator overhead.

Prints one JSON line:

- ``overhead_p50_ms`` / ``overhead_p99_ms``: latency of sequential keep-alive requests
  through the gateway minus direct to the replica (an aiohttp model-server stand-in,
  ``corral.testing.inference_backend``), interleaved in one run.
- ``rps_gateway``, ``rps_nginx``, ``rps_ratio_vs_nginx``: requests/second with the same
  client (ApacheBench ``ab -k``, falling back to a Python client) at the same
  concurrency, through the gateway and through Debian's nginx as a reverse proxy
  (``proxy_pass`` with upstream keep-alive, ``worker_processes 1`` — one process, like the
  gateway) to the same backend (a static nginx server, so the proxies are the bottleneck).
  nginx and ab are installed with apt-get when missing (``installed`` says so); when
  that is impossible the nginx figures are null with the reason.
- ``activator_overhead_ms``: first response from zero minus the replica's own time to
  ready (its port accepting connections), median of several cold starts; the gateway's
  part only (the route table is updated the moment the replica is ready).

Usage: ``python bench/gateway.py [--requests N] [--concurrency C]``. The machine is
shared; quote medians and compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from corral.gateway.server import Gateway


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_port(port: int, timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return time.monotonic()
        except OSError:
            await asyncio.sleep(0.002)
    raise RuntimeError(f"nothing listens on {port}")


def start_backend(port: int, name: str = "bench") -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "corral.testing.inference_backend", "--host", "127.0.0.1",
                             "--port", str(port), "--name", name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def objects(port: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    service = {"apiVersion": "corral.dev/v1alpha1", "kind": "InferenceService",
               "metadata": {"name": "bench", "namespace": "default"},
               "spec": {"route": {"pathPrefix": "/", "stripPrefix": False}}, "status": {}}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "bench-1", "namespace": "default",
                        "labels": {"corral.dev/inference-service": "bench", "corral.dev/revision": "bench-1"}},
           "spec": {"containers": [{"name": "s", "ports": [{"containerPort": port}]}]},
           "status": {"phase": "Running", "podIP": "127.0.0.1",
                      "conditions": [{"type": "Ready", "status": "True"}]}}
    return [service], [pod]


def ensure_tool(binary: str, package: str, installed: list[str]) -> str | None:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if path:
        return path
    if shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(["apt-get", "install", "-y", "-q", package], capture_output=True, env=env, check=False,
                            timeout=300)
    if result.returncode != 0:
        return None
    installed.append(package)
    return shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def latency(gateway_url: str, direct_url: str, count: int) -> dict[str, float]:
    via: list[float] = []
    direct: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)) as http:
        for url in (gateway_url, direct_url):  # warm up both connections
            for _ in range(50):
                async with http.post(f"{url}/v1/models/bench:predict", data=b'{"x": [1, 2, 3]}') as resp:
                    await resp.read()
        for i in range(count):
            for url, out in ((gateway_url, via), (direct_url, direct)) if i % 2 else (
                    (direct_url, direct), (gateway_url, via)):
                started = time.perf_counter()
                async with http.post(f"{url}/v1/models/bench:predict", data=b'{"x": [1, 2, 3]}') as resp:
                    await resp.read()
                    assert resp.status == 200
                out.append((time.perf_counter() - started) * 1000)
    return {
        "direct_p50_ms": round(statistics.median(direct), 3),
        "gateway_p50_ms": round(statistics.median(via), 3),
        "overhead_p50_ms": round(statistics.median(via) - statistics.median(direct), 3),
        "overhead_p99_ms": round(percentile(via, 99) - percentile(direct, 99), 3),
    }


def run_ab(ab: str, url: str, requests: int, concurrency: int) -> float:
    result = subprocess.run([ab, "-q", "-k", "-n", str(requests), "-c", str(concurrency), url],
                            capture_output=True, text=True, check=False, timeout=300)
    match = re.search(r"Requests per second:\s+([\d.]+)", result.stdout)
    failed = re.search(r"Failed requests:\s+(\d+)", result.stdout)
    if not match or (failed and int(failed.group(1)) > 0):
        raise RuntimeError(f"ab against {url} failed: {result.stdout[-500:]} {result.stderr[-500:]}")
    return float(match.group(1))


async def python_rps(url: str, requests: int, concurrency: int) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with http.get(url) as resp:
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{static};
        location / {{ default_type application/json; return 200 '{{"replica":"static","ok":true}}'; }}
    }}
    server {{
        listen 127.0.0.1:{proxy};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


async def activator(runs: int) -> float:
    overheads: list[float] = []
    gateway = Gateway(seed=1)
    await gateway.start()
    try:
        for _ in range(runs):
            port = free_port()
            services, pods = objects(port)
            gateway.set_objects(services, [])
            processes: list[subprocess.Popen[bytes]] = []
            ready_at: list[float] = []

            async def bring_up(key: str, port: int = port, pods: list[Any] = pods,
                               processes: list[Any] = processes, ready_at: list[float] = ready_at,
                               services: list[Any] = services) -> None:
                async def run() -> None:
                    processes.append(start_backend(port, "cold"))
                    ready_at.append(await wait_port(port))
                    gateway.set_objects(services, pods)

                asyncio.get_running_loop().create_task(run())

            gateway.on_activate = bring_up
            async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/v1/models/bench") as resp:
                await resp.read()
                done = time.monotonic()
                assert resp.status == 200
            overheads.append((done - ready_at[0]) * 1000)
            for process in processes:
                process.kill()
                process.wait()
    finally:
        await gateway.stop()
    return statistics.median(overheads)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-samples", type=int, default=2000)
    args = parser.parse_args()
    out: dict[str, Any] = {"bench": "gateway", "cpus": os.cpu_count()}
    installed: list[str] = []
    backend_port = free_port()
    backend = start_backend(backend_port)
    gateway = Gateway(seed=1)
    nginx_proc: subprocess.Popen[bytes] | None = None
    tmp = tempfile.mkdtemp(prefix="corral-bench-nginx-")
    try:
        await wait_port(backend_port)
        await gateway.start()
        services, pods = objects(backend_port)
        gateway.set_objects(services, pods)
        out.update(await latency(gateway.url, f"http://127.0.0.1:{backend_port}", args.latency_samples))

        nginx = ensure_tool("nginx", "nginx-light", installed)
        ab = ensure_tool("ab", "apache2-utils", installed)
        out["client"] = "ab -k" if ab else "python aiohttp"
        if nginx is None:
            out.update({"rps_gateway": None, "rps_nginx": None, "rps_ratio_vs_nginx": None,
                        "nginx_missing": "nginx is not installed and apt-get could not install it"})
        else:
            static_port, proxy_port = free_port(), free_port()
            conf = Path(tmp, "nginx.conf")
            conf.write_text(NGINX_CONF.format(dir=tmp, backend=static_port, static=static_port, proxy=proxy_port))
            nginx_proc = subprocess.Popen([nginx, "-c", str(conf), "-p", tmp],  # noqa: ASYNC220
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await wait_port(proxy_port)
            _, static_pods = objects(static_port)
            gateway.set_objects(services, static_pods)

            async def rps(url: str) -> float:
                if ab:
                    return await asyncio.to_thread(run_ab, ab, url, args.requests, args.concurrency)
                return await python_rps(url, args.requests // 4, args.concurrency)

            gw_url = f"{gateway.url}/v1/models/bench"
            nx_url = f"http://127.0.0.1:{proxy_port}/v1/models/bench"
            await rps(gw_url)  # warm-up
            await rps(nx_url)
            gw_runs, nx_runs = [], []
            for _ in range(3):
                gw_runs.append(await rps(gw_url))
                nx_runs.append(await rps(nx_url))
            out["rps_gateway"] = round(statistics.median(gw_runs))
            out["rps_nginx"] = round(statistics.median(nx_runs))
            out["rps_ratio_vs_nginx"] = round(statistics.median(gw_runs) / statistics.median(nx_runs), 3)
            out["concurrency"] = args.concurrency
        out["installed"] = installed
    finally:
        await gateway.stop()
        backend.kill()
        backend.wait()
        if nginx_proc is not None:
            nginx_proc.terminate()
            nginx_proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    out["activator_overhead_ms"] = round(await activator(5), 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
