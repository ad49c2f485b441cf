"""Where container logs live in the data dir, shared by the agent (writer) and the API server (reader).

``DATA/logs/<namespace>/<pod>/<container>.log``. The API server's ``pods/log`` serves
these files until the node publishes ``status.daemonEndpoints.kubeletEndpoint.Port``;
then it proxies to the node agent instead (see ``corral.apiserver.logs``). Both read tails
from the end of the file (:func:`newline_before`), never the whole file.
"""

from __future__ import annotations

from pathlib import Path

from corral.util.paths import inside

TAIL_BLOCK = 64 * 1024


def pod_log_path(data_dir: Path, namespace: str, pod: str, container: str) -> Path:
    """The log file; :class:`~corral.util.paths.PathEscapeError` if the names leave ``DATA/logs``."""
    return inside(data_dir / "logs", namespace, pod, f"{container}.log")


def newline_before(path: Path, end: int, count: int) -> tuple[int, int]:
    """Scan ``path[:end]`` backwards, 64 KiB at a time, for ``count`` newlines: the offset just
    after the last one found (-1 if there are fewer) and how many are still missing."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; a missing file has no newline
    except OSError:
        return -1, count
    with handle:
        while end > 0:
            start = max(0, end - TAIL_BLOCK)
            handle.seek(start)
            block = handle.read(end - start)
            stop = len(block)
            while True:
                position = block.rfind(b"\n", 0, stop)
                if position < 0:
                    break
                count -= 1
                if count == 0:
                    return start + position + 1, 0
                stop = position
            end = start
    return -1, count
