"""Gateway benchmark: added latency, throughput against nginx, CPU per request, activator overhead.

Prints one JSON line:

- ``overhead_p50_ms`` / ``overhead_p99_ms``: latency of sequential keep-alive requests
  through the gateway minus direct to the replica (an aiohttp model-server stand-in,
  ``corral.testing.inference_backend``), interleaved in one run.
- ``rps_gateway``, ``rps_nginx``, ``rps_ratio_vs_nginx``: requests/second with the same
  client (ApacheBench ``ab -k -c 32``, falling back to a Python client) through the
  gateway and through Debian's nginx as a reverse proxy, both in front of the same
  backend: a static answer from a *separate* nginx process (one worker), so that the
  proxies are the bottleneck and neither shares a process with the backend. nginx is
  configured as an operator would for the job: upstream keep-alive pool (``keepalive``,
  ``proxy_http_version 1.1``, empty ``Connection``), ``proxy_buffering off`` (the gateway
  streams too), no access log, and ``worker_processes`` = ``--workers`` (default 1: the
  gateway is one process). ``rps_nginx_auto`` is nginx with ``worker_processes auto``
  (one worker per CPU), for reference. Runs are interleaved (gateway, nginx, nginx auto)
  ``--rounds`` times after a warm-up round; medians are reported.
- ``cpu_us_per_request``: CPU time (user + system) per request of each proxy, of the
  client (ab) and of the backend, per proxy — less sensitive to a busy machine than
  requests/second. The gateway's figure is this process's CPU time during its ab runs.
- ``activator_overhead_ms``: first response from zero minus the replica's own time to
  ready (its port accepting connections), median of several cold starts; the gateway's
  part only (the route table is updated the moment the replica is ready).
- ``loop``: the gateway's event loop — uvloop (default, as ``corral gateway`` runs it) or
  asyncio (``--loop asyncio``, as inside ``corral up``); ``load_avg_1m_*``: the machine's load.

nginx (``nginx-light``) and ab (``apache2-utils``) are installed with apt-get when missing
(``installed`` says so); when that is impossible the nginx figures are null with the reason.
Usage: ``python bench/gateway.py [--requests N] [--concurrency C] [--rounds R] [--loop L]``.
The machine may be shared; quote medians and compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
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


def run_ab(ab: str, url: str, requests: int, concurrency: int) -> tuple[float, float]:
    """Requests/second and ab's own CPU seconds for one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([ab, "-q", "-k", "-n", str(requests), "-c", str(concurrency), url],
                            capture_output=True, text=True, check=False, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"Requests per second:\s+([\d.]+)", result.stdout)
    failed = re.search(r"Failed requests:\s+(\d+)", result.stdout)
    if not match or (failed and int(failed.group(1)) > 0):
        raise RuntimeError(f"ab against {url} failed: {result.stdout[-500:]} {result.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(match.group(1)), cpu


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
worker_processes {workers};
pid {dir}/nginx-{name}.pid;
error_log {dir}/error-{name}.log;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{body}
}}
"""
# The backend the proxies share for the throughput runs: a static answer from its own nginx
# process, so that neither proxy shares a process with it and the proxies are the bottleneck.
STATIC_SERVER = """
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 100000;
        location / {{ default_type application/json; return 200 '{{"replica":"static","ok":true}}'; }}
    }}
"""
# nginx as a reverse proxy, configured as an operator would for this job: HTTP/1.1 and a pool of
# keep-alive connections to the upstream (`keepalive` + `proxy_http_version 1.1` + an empty
# Connection header), unbuffered like the gateway (streaming), no access log (the gateway keeps
# none either).
PROXY_SERVER = """
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; keepalive_requests 100000; }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 100000;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
"""


def start_nginx(nginx: str, tmp: str, name: str, workers: str, body: str) -> subprocess.Popen[bytes]:
    conf = Path(tmp, f"nginx-{name}.conf")
    conf.write_text(NGINX_CONF.format(workers=workers, dir=tmp, name=name, body=body))
    return subprocess.Popen([nginx, "-c", str(conf), "-p", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its children (nginx master + workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for one in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


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


async def throughput(args: argparse.Namespace, gateway: Gateway, services: list[dict[str, Any]], nginx: str,
                     ab: str | None, tmp: str) -> dict[str, Any]:
    """Gateway vs nginx (same worker count) vs nginx ``worker_processes auto``, interleaved, same backend."""
    out: dict[str, Any] = {}
    static_port, proxy_port, auto_port = free_port(), free_port(), free_port()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["backend"] = start_nginx(nginx, tmp, "backend", "1", STATIC_SERVER.format(port=static_port))
        await wait_port(static_port)
        procs["nginx"] = start_nginx(nginx, tmp, "proxy", str(args.workers),
                                     PROXY_SERVER.format(port=proxy_port, backend=static_port))
        procs["nginx_auto"] = start_nginx(nginx, tmp, "proxy-auto", "auto",
                                          PROXY_SERVER.format(port=auto_port, backend=static_port))
        await wait_port(proxy_port)
        await wait_port(auto_port)
        _, static_pods = objects(static_port)
        gateway.set_objects(services, static_pods)
        urls = {"gateway": f"{gateway.url}/v1/models/bench",
                "nginx": f"http://127.0.0.1:{proxy_port}/v1/models/bench",
                "nginx_auto": f"http://127.0.0.1:{auto_port}/v1/models/bench"}
        runs: dict[str, list[float]] = {name: [] for name in urls}
        cpu: dict[str, dict[str, list[float]]] = {name: {"proxy": [], "client": [], "backend": []} for name in urls}

        async def one(name: str, record: bool) -> None:
            backend_before = tree_cpu_seconds(procs["backend"].pid)
            proxy_before = time.process_time() if name == "gateway" else tree_cpu_seconds(procs[name].pid)
            if ab:
                rps, client_cpu = await asyncio.to_thread(run_ab, ab, urls[name], args.requests, args.concurrency)
            else:
                rps, client_cpu = await python_rps(urls[name], args.requests // 4, args.concurrency), float("nan")
            proxy_cpu = (time.process_time() if name == "gateway" else tree_cpu_seconds(procs[name].pid)) - proxy_before
            if name == "gateway" and not ab:
                proxy_cpu = float("nan")  # the Python client shares the gateway's process
            if record:
                count = args.requests if ab else args.requests // 4
                runs[name].append(rps)
                cpu[name]["proxy"].append(proxy_cpu / count * 1e6)
                cpu[name]["client"].append(client_cpu / count * 1e6)
                cpu[name]["backend"].append((tree_cpu_seconds(procs["backend"].pid) - backend_before) / count * 1e6)

        for name in urls:  # warm-up: connections, pools, caches
            await one(name, record=False)
        for _ in range(args.rounds):
            for name in urls:
                await one(name, record=True)
        median = {name: statistics.median(values) for name, values in runs.items()}
        out["rps_gateway"] = round(median["gateway"])
        out["rps_nginx"] = round(median["nginx"])
        out["rps_ratio_vs_nginx"] = round(median["gateway"] / median["nginx"], 3)
        out["nginx_workers"] = args.workers
        out["rps_nginx_auto"] = round(median["nginx_auto"])
        out["rps_ratio_vs_nginx_auto"] = round(median["gateway"] / median["nginx_auto"], 3)
        out["cpu_us_per_request"] = {
            name: {part: round(statistics.median(values), 1) for part, values in parts.items()}
            for name, parts in cpu.items()}
        # Fraction of one CPU each part used during the runs (µs per request × requests per second):
        # shows which part, if any, was saturated (the client starving a proxy would show here).
        out["cpu_share"] = {
            name: {part: round(value * median[name] / 1e6, 2) for part, value in parts.items()}
            for name, parts in out["cpu_us_per_request"].items()}
        out["gateway_cpu_us_per_request"] = out["cpu_us_per_request"]["gateway"]["proxy"]
        out["nginx_cpu_us_per_request"] = out["cpu_us_per_request"]["nginx"]["proxy"]
        out["concurrency"] = args.concurrency
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait()
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-samples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput runs per proxy")
    parser.add_argument("--workers", type=int, default=1,
                        help="nginx worker_processes for rps_nginx (the gateway is one process)")
    parser.add_argument("--skip-activator", action="store_true")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="event loop of the gateway (and of this benchmark's process): uvloop as "
                             "`corral gateway` runs it, asyncio as inside `corral up`")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> int:
    out: dict[str, Any] = {"bench": "gateway", "cpus": os.cpu_count(), "loop": args.loop,
                           "load_avg_1m_start": round(os.getloadavg()[0], 2)}
    installed: list[str] = []
    backend_port = free_port()
    backend = start_backend(backend_port)
    gateway = Gateway(seed=1)
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
            out.update(await throughput(args, gateway, services, nginx, ab, tmp))
        out["installed"] = installed
    finally:
        await gateway.stop()
        backend.kill()
        backend.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.skip_activator:
        out["activator_overhead_ms"] = round(await activator(5), 2)
    out["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.loop == "asyncio":
        sys.exit(asyncio.run(main(arguments)))
    import uvloop

    sys.exit(uvloop.run(main(arguments)))
