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
from corral.util.podlogs import newline_before

READ_BLOCK = 1024 * 1024


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


def _tail_start(path: Path, size: int, lines: int) -> int:
    """Where the last ``lines`` lines begin (an unfinished last line counts as one)."""
    if lines <= 0:
        return size
    ends_with_newline = False
    if size:
        with path.open("rb") as handle:
            handle.seek(size - 1)
            ends_with_newline = handle.read(1) == b"\n"
    found, _ = newline_before(path, size, lines + 1 if ends_with_newline else lines)
    return max(found, 0)


async def file_log(path: Path, *, follow: bool, tail_lines: int | None, limit_bytes: int | None,
                   still_running: Callable[[], bool], clock: Clock, poll: float = 0.2) -> AsyncIterator[bytes]:
    """The file's content (tail/limit applied), then appended bytes while ``follow`` and running.

    Streamed in 1 MiB blocks from where the tail begins (found from the end of the file):
    memory stays bounded whatever the log's size; ``limit_bytes`` caps everything sent."""
    size = path.stat().st_size if path.exists() else 0
    offset = _tail_start(path, size, tail_lines) if tail_lines is not None else 0
    left = limit_bytes
    while follow or offset < size:
        if offset >= size:
            if not still_running():
                return
            await clock.sleep(poll)
            size = path.stat().st_size if path.exists() else 0
            continue
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read(min(READ_BLOCK, size - offset))
        if not chunk:
            return
        offset += len(chunk)
        if left is not None:
            chunk = chunk[:left]
            left -= len(chunk)
        if chunk:
            yield chunk
        if left is not None and left <= 0:
            return


def log_query(query: Any) -> dict[str, str]:
    keys = ("follow", "tailLines", "sinceSeconds", "sinceTime", "timestamps", "previous", "limitBytes")
    return {key: str(query[key]) for key in keys if key in query}
