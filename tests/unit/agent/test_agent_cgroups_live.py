"""cgroup v2 limits on a machine where they can be enforced (skipped elsewhere, with the reason).

A container over its ``limits.memory`` is OOM-killed and reported ``OOMKilled``; a busy
container under ``limits.cpu: 200m`` gets about a fifth of a CPU. Needs a writable cgroup v2
hierarchy with the cpu and memory controllers (typically root on a systemd-less host or a
delegated subtree); the development machine has neither, the GPU machines may. Plain
``asyncio.run`` so it also runs without pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from corral.agent.cgroups import Cgroups
from corral.agent.worker import PodWorker, RuntimeConfig
from corral.util.clock import SystemClock

NODE = f"cgtest-{uuid.uuid4().hex[:8]}"
CGROUPS, WHY = Cgroups.detect(NODE)
if CGROUPS is None or not CGROUPS.limits:
    if CGROUPS is not None:  # a subtree for tracking only: not what this module needs
        with contextlib.suppress(OSError):
            CGROUPS.base.rmdir()
    pytest.skip(f"cgroup limits cannot be enforced here: {WHY}", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def _remove_node_cgroup() -> Any:
    yield
    assert CGROUPS is not None
    with contextlib.suppress(OSError):
        CGROUPS.base.rmdir()


def _pod(name: str, code: str, limits: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4())},
            "spec": {"restartPolicy": "Never", "nodeName": NODE, "containers": [
                {"name": "c", "image": "python", "command": [sys.executable, "-c", code],
                 "resources": {"limits": limits}}]}}


async def _run(tmp_path: Path, pod: dict[str, Any]) -> PodWorker:
    config = RuntimeConfig(data_dir=tmp_path, node_name=NODE, cgroups=CGROUPS, host_env=dict(os.environ))
    worker = PodWorker(pod, "127.201.0.2", config, clock=SystemClock(), on_change=lambda: None)
    worker.start()
    try:
        await asyncio.wait_for(worker.finished.wait(), 60)
    finally:
        await worker.terminate(grace=0)
    return worker


def test_memory_limit_oom_kills_and_reports_oomkilled(tmp_path: Path) -> None:
    code = "x = bytearray(400 * 1024 * 1024)\nprint('allocated', len(x))\n"
    worker = asyncio.run(_run(tmp_path, _pod("hog", code, {"memory": "64Mi"})))
    last = worker.runtime.containers[0].last
    assert last is not None
    assert last.reason == "OOMKilled", (last, worker.log_file("c").read_text() if worker.log_file("c") else "")
    assert last.exit_code == 137
    worker.cleanup()


def test_cpu_limit_throttles_a_busy_loop(tmp_path: Path) -> None:
    code = ("import json, os, time\n"
            "end = time.monotonic() + 2.0\n"
            "while time.monotonic() < end: pass\n"
            "t = os.times(); print(json.dumps({'cpu': t.user + t.system}))\n")
    worker = asyncio.run(_run(tmp_path, _pod("busy", code, {"cpu": "200m"})))
    log = worker.log_file("c")
    assert log is not None
    used = json.loads(log.read_text().strip().splitlines()[-1])["cpu"]
    assert used < 0.8, f"2 s of busy wall time under a 200m limit used {used:.2f} s of CPU"
    worker.cleanup()
