"""``pods/log``: where a container's log comes from.

A pod's log is served from its node. When the pod's Node publishes an agent endpoint
(``status.daemonEndpoints.kubeletEndpoint.Port``, reached at the node's ``InternalIP``
address, 127.0.0.1 by default) the API server proxies to
``http://ADDRESS:PORT/containerLogs/NAMESPACE/POD/CONTAINER`` with the same query
(``follow``, ``tailLines``, ``sinceSeconds``, ``timestamps``, ``previous``, ``limitBytes``),
as the kube-apiserver does with the kubelet. Otherwise (embedded mode before the agent
serves logs itself) it reads ``DATA/logs/NAMESPACE/POD/CONTAINER.log``
(:func:`corral.util.podlogs.pod_log_path`) and, with ``follow=true``, keeps streaming
appended bytes until the pod finishes or is deleted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

from corral.api.registry import Obj
from corral.util.clock import Clock


def node_log_endpoint(node: Obj | None) -> str | None:
    """``http://ADDRESS:PORT`` of a node's agent, if it publishes one."""
    if not node:
        return None
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not port:
        return None
    address = "127.0.0.1"
    for entry in status.get("addresses") or []:
        if isinstance(entry, dict) and entry.get("type") == "InternalIP" and entry.get("address"):
            address = str(entry["address"])
            break
    return f"http://{address}:{int(port)}"


async def proxy_log(endpoint: str, namespace: str, pod: str, container: str, query: dict[str, str],
                    *, token: str = "") -> AsyncIterator[bytes]:
    """The agent's answer, asked with ``token`` (the API server's own: agents require a bearer token)."""
    url = f"{endpoint}/containerLogs/{namespace}/{pod}/{container}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(headers=headers) as session, session.get(url, params=query) as response:
        if response.status != 200:
            text = await response.text()
            raise RuntimeError(f"the node agent at {endpoint} answered {response.status}: {text[:200]}")
        async for chunk in response.content.iter_any():
            yield chunk


def _tail(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


async def file_log(path: Path, *, follow: bool, tail_lines: int | None, limit_bytes: int | None,
                   still_running: Callable[[], bool], clock: Clock, poll: float = 0.2) -> AsyncIterator[bytes]:
    """The file's content (tail/limit applied), then appended bytes while ``follow`` and running."""
    data = path.read_bytes() if path.exists() else b""
    offset = len(data)
    if tail_lines is not None:
        data = _tail(data, tail_lines)
    if limit_bytes is not None:
        data = data[:limit_bytes]
    if data:
        yield data
    while follow and still_running():
        await clock.sleep(poll)
        if not path.exists():
            continue
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        if chunk:
            offset += len(chunk)
            yield chunk


def log_query(query: Any) -> dict[str, str]:
    keys = ("follow", "tailLines", "sinceSeconds", "sinceTime", "timestamps", "previous", "limitBytes")
    return {key: str(query[key]) for key in keys if key in query}
