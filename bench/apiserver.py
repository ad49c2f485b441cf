"""API server benchmark: creates/s, watch events/s, restart time and memory, and watch-list initial sync at 100,000 pods.

The server runs in its own process (`corral up --no-tls --apiserver-only`); clients run in
this process as raw asyncio HTTP/1.1 keep-alive connections (each create a distinct pod,
every response checked for 201), so that the load generator takes little of the CPU the
server shares with it. Prints one JSON line. Sizes: `--creates`, `--watch-pods`,
`--watchers`, `--restart-pods`; `--depth N` keeps N pipelined requests in flight per
client (default 1); `--only creates,watch` skips parts; `--protobuf` sends the creates as
Kubernetes protobuf and asks for protobuf answers, as client-go programs (helm) do.

- creates_per_s: pods created over HTTP by 8 concurrent clients (target ≥ 3000/s).
- watch_events_per_s: events delivered to 50 concurrent watchers while pods are created,
  summed over watchers (target ≥ 50,000/s).
- restart_s: time from starting `corral up` on a data dir holding 100,000 pods until it
  prints its ready line (target < 5 s), of which store_load_s rebuilds the index from
  SQLite; rss_mb: the server's resident memory then, and after listing every pod.
- watchlist_sync_s: a watch-list (``watch=1&sendInitialEvents=true&resourceVersionMatch=
  NotOlderThan&allowWatchBookmarks=true``, what client-go 1.35 informers open) on a server
  holding ``--watchlist-pods`` pods (default 100,000): time from the request until the
  bookmark with ``k8s.io/initial-events-end`` arrives, all ADDED events read;
  watchlist_list_s is a plain list of the same pods for comparison, and
  watchlist_selected_s the watch-list with a field selector that matches one pod.
- server_cpu_us_per_create: CPU the server process spent per create (user + system),
  a figure that depends less on how busy the shared machine is than the rates do;
  server_cpu_us_per_create_with_watchers: the same while 50 watchers receive every pod;
  server_cpu_us_per_watch_event: the difference, per delivered event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from corral.apiserver.protobuf import encode_object
from corral.store import Store

PROTOBUF = "application/vnd.kubernetes.protobuf"


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}


class Server:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.token = ""

    def start(self) -> float:
        corral = str(Path(sys.executable).parent / "corral")
        started = time.perf_counter()
        self.process = subprocess.Popen([corral, "up", "--data-dir", str(self.data_dir), "--port", "0", "--no-tls", "--apiserver-only"],
                                        stdout=subprocess.PIPE, text=True, env={**os.environ, **self.env})
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


class HttpConnection:
    """One lean HTTP/1.1 keep-alive connection (raw asyncio streams), so that the load
    generator spends little of the shared CPU. Requests may be pipelined: responses come
    back in order, each with a Content-Length (aiohttp's ``web.Response``)."""

    def __init__(self, url: str, token: str, content_type: str = "application/json") -> None:
        parsed = urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        accept = f"Accept: {PROTOBUF},application/json\r\n" if content_type == PROTOBUF else ""
        self.head = (f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n{accept}").encode()
        self.content_type = content_type
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def request(self, method: str, path: str, body: bytes = b"") -> bytes:
        extra = f"Content-Type: {self.content_type}\r\nContent-Length: {len(body)}\r\n" if body else ""
        return f"{method} {path} HTTP/1.1\r\n".encode() + self.head + extra.encode() + b"\r\n" + body

    def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    async def response(self) -> tuple[int, bytes]:
        """Status and body of the next response (Content-Length bodies only)."""
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
        length = int(lower[at + 17:lower.index(b"\r\n", at + 2)])
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


def pod_bodies(prefix: str) -> tuple[bytes, bytes]:
    """A pod body split around its name: ``head + name + tail`` is a complete, distinct pod."""
    template = json.dumps(pod("\x00")).encode()
    head, tail = template.split(b"\\u0000")
    return head, tail


async def create_pods(url: str, token: str, prefix: str, count: int, clients: int = 8, depth: int = 1,
                      protobuf: bool = False) -> None:
    """``count`` pod creates from ``clients`` connections, each keeping ``depth`` requests in
    flight (``depth`` > 1: HTTP/1.1 pipelining). Every response must be 201."""
    path = "/api/v1/namespaces/default/pods"
    head, tail = pod_bodies(prefix)
    counter = iter(range(count))
    encoded = [encode_object(pod(f"{prefix}-{i}")) for i in range(count)] if protobuf else []

    def pod_body(i: int) -> bytes:
        return encoded[i] if protobuf else head + f"{prefix}-{i}".encode() + tail

    async def client() -> None:
        connection = HttpConnection(url, token, PROTOBUF if protobuf else "application/json")
        await connection.open()
        try:
            in_flight = 0
            exhausted = False
            while True:
                batch = []
                while not exhausted and in_flight + len(batch) < depth:
                    i = next(counter, None)
                    if i is None:
                        exhausted = True
                        break
                    batch.append(connection.request("POST", path, pod_body(i)))
                if batch:
                    connection.send(b"".join(batch))
                    in_flight += len(batch)
                if in_flight == 0:
                    return
                status, body = await connection.response()
                in_flight -= 1
                if status != 201:
                    raise RuntimeError(f"create failed: {status} {body[:300]!r}")
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(clients)))


async def measure_creates(server: Server, count: int, depth: int, protobuf: bool = False) -> tuple[float, float]:
    """Creates per second, and the server's CPU microseconds per create."""
    await create_pods(server.url, server.token, "warm", 200, depth=depth, protobuf=protobuf)
    cpu = server.cpu_s()
    started = time.perf_counter()
    await create_pods(server.url, server.token, "c", count, depth=depth, protobuf=protobuf)
    elapsed = time.perf_counter() - started
    return count / elapsed, (server.cpu_s() - cpu) / count * 1e6


class WatchCounter(asyncio.Protocol):
    """Counts ADDED events on a raw watch stream (chunked; each chunk holds whole lines)."""

    MARKER = b'{"type":"ADDED","object":'

    def __init__(self, expected: int, done: Callable[[], None]) -> None:
        self.expected = expected
        self.done = done
        self.count = 0
        self.tail = b""
        self.finished = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.tail + data
        self.count += buffer.count(self.MARKER)
        self.tail = buffer[-(len(self.MARKER) - 1):]
        if not self.finished and self.count >= self.expected:
            self.finished = True
            self.done()


async def measure_watch(server: Server, pods: int, watchers: int, depth: int) -> tuple[float, float, int]:
    """Events/s delivered to ``watchers`` while ``pods`` are created; server CPU µs per create; events."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.token}"}) as session, \
            session.get(f"{server.url}/api/v1/namespaces/default/pods?limit=1") as response:
        rv = (await response.json())["metadata"]["resourceVersion"]
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    finished = 0
    last_event = 0.0

    def one_done() -> None:
        nonlocal finished, last_event
        finished += 1
        if finished == watchers:
            last_event = time.perf_counter()
            done.set()

    parsed = urlsplit(server.url)
    request = (f"GET /api/v1/namespaces/default/pods?watch=true&resourceVersion={rv} HTTP/1.1\r\n"
               f"Host: {parsed.netloc}\r\nAuthorization: Bearer {server.token}\r\n\r\n").encode()
    streams: list[WatchCounter] = []
    for _ in range(watchers):
        transport, protocol = await loop.create_connection(lambda: WatchCounter(pods, one_done),
                                                           parsed.hostname, parsed.port)
        transport.write(request)
        streams.append(protocol)
    try:
        await asyncio.sleep(1.0)
        cpu = server.cpu_s()
        started = time.perf_counter()
        await create_pods(server.url, server.token, "w", pods, depth=depth)
        await asyncio.wait_for(done.wait(), 300)
        events = sum(s.count for s in streams)
        return events / (last_event - started), (server.cpu_s() - cpu) / pods * 1e6, events
    finally:
        for stream in streams:
            if stream.transport is not None:
                stream.transport.close()


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


WATCH_LIST = "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"


async def initial_sync(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    """Seconds until the initial-events-end bookmark, and the ADDED events before it."""
    started = time.perf_counter()
    added = 0
    tail = b""
    async with session.get(url) as response:
        assert response.status == 200, response.status
        async for chunk in response.content.iter_any():
            data = tail + chunk
            added += data.count(b'{"type":"ADDED"') - tail.count(b'{"type":"ADDED"')
            if b"k8s.io/initial-events-end" in data:
                return time.perf_counter() - started, added
            tail = data[-64:]
    raise RuntimeError("the watch ended before its initial-events-end bookmark")


async def measure_watchlist(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        first = Server(data_dir)
        first.start()
        first.stop()
        await fill(data_dir, count)
        server = Server(data_dir)
        server.start()
        try:
            pods = f"{server.url}/api/v1/namespaces/default/pods"
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.token}"}) as session:
                started = time.perf_counter()
                async with session.get(pods) as response:
                    await response.read()
                listed = time.perf_counter() - started
                synced, added = await initial_sync(session, f"{pods}?{WATCH_LIST}")
                assert added == count, (added, count)
                selected, one = await initial_sync(session, f"{pods}?{WATCH_LIST}&fieldSelector=metadata.name%3Dr-{count // 2}")
                assert one == 1, one
            return {"watchlist_pods": count, "watchlist_sync_s": round(synced, 3), "watchlist_list_s": round(listed, 3),
                    "watchlist_selected_s": round(selected, 3)}
        finally:
            server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=5000)
    parser.add_argument("--watch-pods", type=int, default=1000)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--restart-pods", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=1,
                        help="requests each of the 8 clients keeps in flight (> 1: HTTP/1.1 pipelining)")
    parser.add_argument("--watchlist-pods", type=int, default=100_000,
                        help="pods stored before the watch-list initial sync is timed")
    parser.add_argument("--only", default="creates,watch,restart,watchlist", help="comma-separated parts to run")
    parser.add_argument("--protobuf", action="store_true", help="creates in Kubernetes protobuf (client-go's form)")
    parser.add_argument("--server-env", action="append", default=[], help="NAME=VALUE for the server process")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    env = dict(item.split("=", 1) for item in args.server_env)
    result: dict[str, Any] = {"bench": "apiserver", "clients": 8, "depth": args.depth}
    if args.protobuf:
        result["protobuf"] = True
    if "creates" in parts:
        with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
            server = Server(Path(tmp), env)
            server.start()
            try:
                rate, cpu_us = await measure_creates(server, args.creates, args.depth, args.protobuf)
                result["creates_per_s"] = round(rate)
                result["server_cpu_us_per_create"] = round(cpu_us)
                result["creates"] = args.creates
            finally:
                server.stop()
    if "watch" in parts:
        with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
            server = Server(Path(tmp), env)
            server.start()
            try:
                rate, cpu_us, events = await measure_watch(server, args.watch_pods, args.watchers, args.depth)
                result["watch_events_per_s"] = round(rate)
                result["server_cpu_us_per_create_with_watchers"] = round(cpu_us)
                if "server_cpu_us_per_create" in result:
                    extra = (cpu_us - result["server_cpu_us_per_create"]) * args.watch_pods / events
                    result["server_cpu_us_per_watch_event"] = round(extra, 2)
                result["watchers"] = args.watchers
                result["watch_pods"] = args.watch_pods
            finally:
                server.stop()
    if "restart" in parts:
        result.update(await measure_restart(args.restart_pods))
    if "watchlist" in parts:
        result.update(await measure_watchlist(args.watchlist_pods))
    result["loadavg_1m"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
