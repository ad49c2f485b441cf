"""`corral up` runs this machine's agent: kubectl sees the node, runs a pod, and stopping corral stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.agent.process import proc_start_ticks
from tests.conftest import require_tool

pytestmark = pytest.mark.e2e


def corral() -> str:
    local = Path(sys.executable).parent / "corral"
    return str(local) if local.exists() else require_tool("corral")


def test_up_registers_the_node_runs_a_pod_and_leaves_no_orphans(kubectl: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with subprocess.Popen([corral(), "up", "--data-dir", str(data), "--port", "0", "--node-name", "e2e-node",
                           "--simulated-gpus", "2xA100-40GB"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("corral is ready:"), line + (process.stderr.read() if process.poll() else "")
            env = {**os.environ, "KUBECONFIG": str(data / "kubeconfig")}

            def k(*args: str, stdin: str | None = None) -> str:
                result = subprocess.run([kubectl, *args], env=env, input=stdin, capture_output=True, text=True,
                                        timeout=30, check=False)
                assert result.returncode == 0, result.stderr
                return result.stdout

            node = json.loads(k("get", "node", "e2e-node", "-o", "json"))
            assert node["status"]["capacity"]["nvidia.com/gpu"] == "2"
            assert node["metadata"]["labels"]["corral.dev/simulated-gpus"] == "true"
            manifest = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
                                   "spec": {"nodeName": "e2e-node", "containers": [
                                       {"name": "s", "image": "busybox",
                                        "command": [sys.executable, "-c",
                                                    "import time; print('sleeping', flush=True); time.sleep(300)"]}]}})
            k("apply", "-f", "-", stdin=manifest)
            deadline = time.monotonic() + 20
            pod: dict = {}
            while time.monotonic() < deadline:
                pod = json.loads(k("get", "pod", "sleeper", "-o", "json"))
                if (pod.get("status") or {}).get("phase") == "Running":
                    break
                time.sleep(0.2)
            assert pod["status"]["phase"] == "Running", pod.get("status")
            uid = pod["metadata"]["uid"]
            pid_file = data / "agent" / "pods" / uid / "s" / "0.pid"
            record = json.loads(pid_file.read_text())
            assert proc_start_ticks(record["pid"]) == record["startTicks"]
            while time.monotonic() < deadline and "sleeping" not in k("logs", "sleeper"):
                time.sleep(0.2)
            assert k("logs", "sleeper").strip() == "sleeping"
            process.send_signal(signal.SIGTERM)
            time.sleep(0.2)  # a second SIGTERM while stopping (a supervisor, `timeout`) must not cut the stop short
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            assert proc_start_ticks(record["pid"]) is None, "stopping corral must stop its pods"
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
