"""`corral up` and `corral demo --once` as real processes."""

from __future__ import annotations

import os
import signal
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool

pytestmark = pytest.mark.e2e


def corral() -> list[str]:
    return [str(Path(sys.executable).parent / "corral")]


def test_up_prints_one_ready_line_writes_kubeconfig_and_stops_on_sigterm(tmp_path: Path) -> None:
    binary = corral()
    if not Path(binary[0]).exists():
        binary = [require_tool("corral")]
    with subprocess.Popen([*binary, "up", "--data-dir", str(tmp_path), "--port", "0", "--gateway-port", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        _check_up(process, tmp_path)


def _check_up(process: subprocess.Popen[str], tmp_path: Path) -> None:
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("corral is ready:"), line
        kubeconfig = tmp_path / "kubeconfig"
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
        config = yaml.safe_load(kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        token = config["users"][0]["user"]["token"]
        assert server.startswith("https://127.0.0.1:") and server in line
        context = ssl.create_default_context(cafile=str(tmp_path / "tls" / "server.crt"))
        request = urllib.request.Request(server + "/api/v1/namespaces", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        rest = process.stdout.read()
        assert "corral is ready" not in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_demo_once_tells_the_whole_story_and_exits_zero(kubectl: str) -> None:
    """`corral demo --once`: every step of the story (queues, preemption, training healed,
    serving from zero, autoscaling, canary) succeeds, in under 3 minutes here."""
    binary = corral()
    if not Path(binary[0]).exists():
        binary = [require_tool("corral")]
    root = Path(__file__).resolve().parents[2]
    started = time.monotonic()
    result = subprocess.run([*binary, "demo", "--once"], check=False, cwd=root, capture_output=True, text=True,
                            timeout=420, env={**os.environ})
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "corral is ready:" in result.stdout
    assert "The demo's every step succeeded." in result.stdout
    for evidence in ("borrowed team-b pods preempted", "restart 1", "ddp succeeded", "first answer after",
                     "back to 0 when idle", "promoted to 100 %", "Service latency: p50"):
        assert evidence in result.stdout, evidence
    assert elapsed < 300, f"the demo took {elapsed:.0f} s"
