"""Start a real API server in-process for tests.

``async with running_apiserver(tmp_path) as server:`` gives a
:class:`corral.apiserver.server.RunningServer` (``url``, ``token``, ``kubeconfig``,
``ssl_context()``) on a free port, stopped on exit. ``tls=False`` serves plain HTTP
(simplest for raw HTTP tests); kubectl and the kubernetes client need the default TLS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from corral.apiserver.server import RunningServer, start_server


@asynccontextmanager
async def running_apiserver(data_dir: Path, **options: Any) -> AsyncIterator[RunningServer]:
    server = await start_server(data_dir, port=0, **options)
    try:
        yield server
    finally:
        await server.stop()
