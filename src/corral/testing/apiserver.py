"""Start a real API server in-process for tests.

``async with running_apiserver(tmp_path) as server:`` gives a
:class:`corral.apiserver.server.RunningServer` (``url``, ``token``, ``kubeconfig``,
``ssl_context()``) on a free port, stopped on exit. ``tls=False`` serves plain HTTP
(simplest for raw HTTP tests); kubectl and the kubernetes client need the default TLS.
:func:`store_unvalidated` puts an object in its store past validation (poison-object tests).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from corral.apiserver.handlers import resource_key
from corral.apiserver.server import RunningServer, start_server
from corral.util import fastjson
from corral.util.clock import format_timestamp


@asynccontextmanager
async def running_apiserver(data_dir: Path, **options: Any) -> AsyncIterator[RunningServer]:
    server = await start_server(data_dir, port=0, **options)
    try:
        yield server
    finally:
        await server.stop()


async def store_unvalidated(server: RunningServer, obj: dict[str, Any]) -> dict[str, Any]:
    """Write ``obj`` straight into the server's store, past validation and defaulting, and wait
    until it is durable; returns the stored object (watchers see it as ``ADDED``/``MODIFIED``).

    For poison-object tests: an object the API server would reject today may still be in a
    store written by an older version, and every loop must survive it. Creates the object,
    or replaces it when one of that name exists (as an update would, keeping its uid).
    """
    api = server.server
    obj = fastjson.loads(fastjson.dumps(obj))  # as it would read back after a restart (e.g. .inf is null)
    rt = api.registry.by_kind(str(obj["apiVersion"]), str(obj["kind"]))
    key = resource_key(rt)
    metadata = obj.setdefault("metadata", {})
    if rt.namespaced:
        metadata.setdefault("namespace", "default")
    namespace = str(metadata.get("namespace") or "") if rt.namespaced else ""
    current = api.store.get(key, namespace, str(metadata["name"]))
    if current is not None:
        old = current.obj["metadata"]
        metadata.update({k: old[k] for k in ("uid", "creationTimestamp") if k in old})
        metadata["generation"] = int(old.get("generation") or 1) + 1
        write = api.store.update(key, obj)
    else:
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", format_timestamp(api.clock.now()))
        metadata.setdefault("generation", 1)
        write = api.store.create(key, obj)
    await write.wait()
    return write.entry.copy()
