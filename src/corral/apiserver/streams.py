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
``kubernetes.stream.portforward`` uses. kubectl's own ``port-forward`` wants SPDY
(tunnelled in a WebSocket as ``SPDY/3.1+portforward.k8s.io`` since 1.31, else a plain
SPDY upgrade): corral answers those with 400 naming what it speaks instead.

A request that is no WebSocket upgrade (e.g. an SPDY upgrade) gets 400 "Upgrade request
required"; client-go's exec only falls back to SPDY when the WebSocket upgrade fails,
which it does not here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from corral.api.registry import Obj
from corral.apiserver.errors import ApiError, bad_request
from corral.util.streamproto import EXEC_PROTOCOLS, PORTFORWARD_PROTOCOLS, choose_protocol

KINDS = ("exec", "attach", "portforward")


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


async def relay(request: web.Request, kind: str, pod: Obj, container: str | None, *, endpoint: str,
                token: str) -> web.StreamResponse:
    """Upgrade the client's request and relay it to the agent at ``endpoint``."""
    supported = PORTFORWARD_PROTOCOLS if kind == "portforward" else EXEC_PROTOCOLS
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    protocol = choose_protocol(offered, supported)
    is_websocket = request.headers.get("Upgrade", "").lower() == "websocket"
    if not is_websocket or protocol is None:
        speaks = ", ".join(supported)
        if kind == "portforward" and ("SPDY" in offered or "spdy" in request.headers.get("Upgrade", "").lower()):
            raise bad_request(f"corral serves port-forward over WebSocket only (subprotocol {speaks}; e.g. the "
                              "Kubernetes Python client's kubernetes.stream.portforward), not SPDY")
        if not is_websocket:
            raise bad_request(f"Upgrade request required: {kind} needs a WebSocket upgrade (subprotocols {speaks})")
        raise bad_request(f"none of the offered WebSocket subprotocols ({offered}) is supported; corral speaks {speaks}")
    meta = pod["metadata"]
    path = f"/{kind}/{meta['namespace']}/{meta['name']}" + (f"/{container}" if container else "")
    query = [(key, value) for key, value in request.query.items() if key != "container"]
    url = endpoint.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + path
    session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        try:
            upstream = await session.ws_connect(url, params=query, protocols=(protocol,) if protocol else (),
                                                autoping=True, max_msg_size=0)
        except (aiohttp.ClientError, OSError) as error:
            raise ApiError(502, "BadGateway", f"cannot reach the node agent at {endpoint} for {kind}: {error}") from None
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
