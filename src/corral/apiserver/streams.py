"""``pods/exec``, ``pods/attach`` and ``pods/portforward``: WebSocket sessions relayed to the pod's agent.

kubectl 1.30+ runs ``exec``/``attach`` over a WebSocket with subprotocol
``v5.channel.k8s.io`` (the official Python client: v5 or v4); the framing is described in
:mod:`corral.util.streamproto`. Like the kube-apiserver with the kubelet, the API server
does not run anything itself: after authenticating the request (the middleware, as for
every request) it checks the pod (it exists; it is not finished; the container is
running — else 400 as Kubernetes answers), opens a WebSocket to the node agent's
``/exec|/attach/NAMESPACE/POD/CONTAINER`` or ``/portforward/NAMESPACE/POD`` with its own
token and the subprotocol it negotiated with the client, and only then accepts the
client's upgrade; from there it copies messages both ways until either side closes.

Port-forward speaks the WebSocket port-forward protocol (``v4.channel.k8s.io``), which
``kubernetes.stream.portforward`` uses, and what kubectl 1.31+ asks for:
``SPDY/3.1+portforward.k8s.io``, SPDY frames inside the WebSocket's messages
(:func:`spdy_port_forward`, :mod:`corral.apiserver.spdy`), where every local connection
(a data and an error stream) becomes its own agent WebSocket. A plain SPDY upgrade
(kubectl before 1.31) gets 400 saying what corral speaks instead.

A request that is no WebSocket upgrade (e.g. an SPDY upgrade) gets 400 "Upgrade request
required"; client-go's exec only falls back to SPDY when the WebSocket upgrade fails,
which it does not here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from corral.api.registry import Obj
from corral.apiserver import spdy
from corral.apiserver.errors import ApiError, bad_request
from corral.util.streamproto import EXEC_PROTOCOLS, PORTFORWARD_PROTOCOLS, choose_protocol

KINDS = ("exec", "attach", "portforward")
SPDY_TUNNEL_PROTOCOL = spdy.TUNNELING_PREFIX + spdy.PORTFORWARD_PROTOCOL


def choose_container(pod: Obj, requested: str | None) -> str:
    """The container a request is about: the one named, or the only one."""
    spec = pod.get("spec") or {}
    names = [str(c.get("name")) for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]]
    name = pod["metadata"].get("name")
    if not requested:
        containers = [str(c.get("name")) for c in spec.get("containers") or []]
        if len(containers) != 1:
            raise bad_request(f"a container name must be specified for pod {name}, choose one of: "
                              f"[{' '.join(containers)}]")
        return containers[0]
    if requested not in names:
        raise bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def check_running(pod: Obj, container: str | None) -> None:
    """400 unless the pod runs (and ``container`` with it), as Kubernetes refuses exec into a finished pod."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase in ("Succeeded", "Failed"):
        raise bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
    if container is None:
        if phase != "Running":
            raise bad_request(f"pod {pod['metadata'].get('name')} is not running (phase {phase})")
        return
    statuses = [*(status.get("containerStatuses") or []), *(status.get("initContainerStatuses") or [])]
    state = next((s.get("state") or {} for s in statuses if s.get("name") == container), {})
    if "running" not in state:
        raise bad_request(f"container {container} is not running (pod {pod['metadata'].get('name')} is {phase})")


async def _copy(source: Any, sink: Any) -> None:
    """Messages from one WebSocket to the other until ``source`` closes."""
    async for message in source:
        if message.type == WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type == WSMsgType.TEXT:
            await sink.send_str(message.data)
        else:
            break


def _agent_url(endpoint: str, kind: str, pod: Obj, container: str | None) -> str:
    meta = pod["metadata"]
    path = f"/{kind}/{meta['namespace']}/{meta['name']}" + (f"/{container}" if container else "")
    return endpoint.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + path


async def _connect(session: aiohttp.ClientSession, url: str, query: Any, protocol: str,
                   endpoint: str) -> aiohttp.ClientWebSocketResponse:
    try:
        return await session.ws_connect(url, params=query, protocols=(protocol,) if protocol else (),
                                        autoping=True, max_msg_size=0)
    except (aiohttp.ClientError, OSError) as error:
        raise ApiError(502, "BadGateway", f"cannot reach the node agent at {endpoint}: {error}") from None


async def relay(request: web.Request, kind: str, pod: Obj, container: str | None, *, endpoint: str,
                token: str) -> web.StreamResponse:
    """Upgrade the client's request and relay it to the agent at ``endpoint``."""
    supported = PORTFORWARD_PROTOCOLS if kind == "portforward" else EXEC_PROTOCOLS
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    protocol = choose_protocol(offered, supported)
    is_websocket = request.headers.get("Upgrade", "").lower() == "websocket"
    tunnelled = SPDY_TUNNEL_PROTOCOL in [name.strip() for name in offered.split(",")]
    if is_websocket and kind == "portforward" and tunnelled and protocol is None:
        protocol = SPDY_TUNNEL_PROTOCOL
    if not is_websocket or protocol is None:
        speaks = ", ".join(supported)
        if kind == "portforward" and "spdy" in request.headers.get("Upgrade", "").lower():
            raise bad_request(f"corral serves port-forward over WebSocket only (subprotocols {speaks} or "
                              f"{SPDY_TUNNEL_PROTOCOL}, which kubectl 1.31+ uses), not a SPDY upgrade")
        if not is_websocket:
            raise bad_request(f"Upgrade request required: {kind} needs a WebSocket upgrade (subprotocols {speaks})")
        raise bad_request(f"none of the offered WebSocket subprotocols ({offered}) is supported; corral speaks {speaks}")
    url = _agent_url(endpoint, kind, pod, container)
    query = [(key, value) for key, value in request.query.items() if key != "container"]
    session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        if protocol == SPDY_TUNNEL_PROTOCOL:
            client = web.WebSocketResponse(protocols=(protocol,), autoping=True, max_msg_size=0)
            await client.prepare(request)

            async def open_port(port: int) -> aiohttp.ClientWebSocketResponse:
                return await _connect(session, url, [("ports", str(port))], PORTFORWARD_PROTOCOLS[0], endpoint)
            await spdy_port_forward(client, open_port)
            return client
        upstream = await _connect(session, url, query, protocol, endpoint)
        client = web.WebSocketResponse(protocols=(protocol,) if protocol else (), autoping=True, max_msg_size=0)
        await client.prepare(request)
        downstream = asyncio.create_task(_copy(upstream, client))
        upstream_task = asyncio.create_task(_copy(client, upstream))
        try:
            await asyncio.wait({downstream, upstream_task}, return_when=asyncio.FIRST_COMPLETED)
            if downstream.done():
                # the agent finished (status sent): let the client see every message, then a normal close
                await client.close()
            else:
                await upstream.close()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(downstream), 1.0)
                await client.close()
        finally:
            for task in (downstream, upstream_task):
                task.cancel()
            await asyncio.gather(downstream, upstream_task, return_exceptions=True)
            await upstream.close()
        return client
    finally:
        await session.close()


class _Forward:
    """One forwarded connection of a SPDY session: its two streams and the agent's WebSocket."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.data_stream = 0
        self.error_stream = 0
        self.to_pod: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None


async def spdy_port_forward(client: web.WebSocketResponse,
                            open_port: Callable[[int], Awaitable[aiohttp.ClientWebSocketResponse]]) -> None:
    """kubectl's port-forward: SPDY frames in the client's WebSocket messages (:mod:`corral.apiserver.spdy`);
    each (data, error) stream pair is one connection, relayed through its own agent WebSocket."""
    framer = spdy.Framer()
    lock = asyncio.Lock()
    forwards: dict[str, _Forward] = {}
    by_stream: dict[int, _Forward] = {}

    async def send(frame: bytes) -> None:
        async with lock:
            if not client.closed:
                await client.send_bytes(frame)

    async def forward(item: _Forward) -> None:
        try:
            upstream = await open_port(item.port)
        except ApiError as error:
            await send(framer.data(item.error_stream, error.message.encode()))
            await send(framer.data(item.error_stream, fin=True))
            await send(framer.data(item.data_stream, fin=True))
            return
        opened: set[int] = set()

        async def to_pod() -> None:
            while (chunk := await item.to_pod.get()) is not None:
                await upstream.send_bytes(bytes((0,)) + chunk)

        sending = asyncio.create_task(to_pod())
        try:
            async for message in upstream:
                if message.type != WSMsgType.BINARY or not message.data:
                    break
                channel, payload = message.data[0], message.data[1:]
                if channel not in opened:  # the port's two bytes open each channel
                    opened.add(channel)
                    continue
                if payload:
                    await send(framer.data(item.data_stream if channel == 0 else item.error_stream, payload))
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            await upstream.close()
            await send(framer.data(item.data_stream, fin=True))
            await send(framer.data(item.error_stream, fin=True))

    def on_stream(frame: spdy.Frame) -> bytes | None:
        kind, request_id = frame.headers.get("streamtype"), frame.headers.get("requestid", "")
        try:
            port = int(frame.headers.get("port", ""))
        except ValueError:
            return framer.rst_stream(frame.stream_id, spdy.RST_PROTOCOL_ERROR)
        if kind not in ("data", "error") or not 0 < port < 65536:
            return framer.rst_stream(frame.stream_id, spdy.RST_PROTOCOL_ERROR)
        item = forwards.setdefault(request_id, _Forward(port))
        if kind == "data":
            item.data_stream = frame.stream_id
        else:
            item.error_stream = frame.stream_id
        by_stream[frame.stream_id] = item
        reply = framer.syn_reply(frame.stream_id)
        return reply

    try:
        async for message in client:
            if message.type != WSMsgType.BINARY:
                break
            try:
                frames = framer.feed(message.data)
            except spdy.SpdyError:
                await send(framer.goaway(0, 1))
                break
            for frame in frames:
                item = by_stream.get(frame.stream_id) if frame.stream_id else None
                if frame.kind == spdy.SYN_STREAM:
                    reply = on_stream(frame)
                    if reply is not None:
                        await send(reply)
                    item = by_stream.get(frame.stream_id)
                    if item is not None and item.data_stream and item.error_stream and item.task is None:
                        item.task = asyncio.create_task(forward(item))
                elif frame.kind == spdy.PING:
                    await send(framer.ping(frame.value))
                elif frame.kind == 0 and item is not None and frame.stream_id == item.data_stream and frame.data:
                    item.to_pod.put_nowait(frame.data)
                elif frame.kind == spdy.RST_STREAM and item is not None and item.task is not None:
                    item.task.cancel()
                elif frame.kind == spdy.GOAWAY:
                    return
    finally:
        tasks = [item.task for item in forwards.values() if item.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await client.close()
