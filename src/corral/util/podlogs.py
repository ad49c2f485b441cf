"""Where container logs live in the data dir, shared by the agent (writer) and the API server (reader).

``DATA/logs/<namespace>/<pod>/<container>.log``. The API server's ``pods/log`` serves
these files until the node publishes ``status.daemonEndpoints.kubeletEndpoint.Port``;
then it proxies to the node agent instead (see ``corral.apiserver.logs``).
"""

from __future__ import annotations

from pathlib import Path


def pod_log_path(data_dir: Path, namespace: str, pod: str, container: str) -> Path:
    return data_dir / "logs" / namespace / pod / f"{container}.log"
