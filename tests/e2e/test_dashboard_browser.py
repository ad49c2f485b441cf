"""The dashboard in a real headless Chromium while corral runs real work.

corral runs with its scheduler, its agent (simulated H100s) and a Queue; a pod holding
half a GPU runs as a real process, and a pod asking for more GPUs than exist waits. The
browser loads the page with the token in the fragment, runs its JavaScript, and the
test reads the rendered DOM: the GPU grid shows the half-used device, the queue table
shows the queue, and the pending table shows the scheduler's reason. A screenshot is
saved to ``test-artifacts/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from corral.cli.up import start_corral
from corral.client import ApiClient
from tests.conftest import require_tool

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Collector(HTMLParser):
    """Elements by class and data attributes, with their text."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[dict[str, str]] = []
        self.queue_rows: list[str] = []
        self.pending_text = ""
        self._in_pending = False
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if "dev" in values.get("class", "").split() and "data-used" in values:
            self.devices.append(values)
        if tag == "tr" and "data-queue" in values:
            self.queue_rows.append(values["data-queue"])
        if tag == "table" and values.get("id") == "pending-table":
            self._in_pending = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_pending = False

    def handle_data(self, data: str) -> None:
        if self._in_pending:
            self.pending_text += data


def chromium_command(user_dir: Path, *extra: str) -> list[str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        require_tool("chromium")
    assert binary is not None
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={user_dir}", "--window-size=1400,900", *extra]


async def run_browser(command: list[str]) -> str:
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(process.communicate(), 90)
    return out.decode()


@pytest.mark.e2e
async def test_dashboard_shows_gpus_queue_and_pending_reason(tmp_path: Path) -> None:
    require_tool("chromium")
    running = await start_corral(tmp_path / "corral", port=0, simulated_gpus=("4xH100-80GB",), gateway_port=None,
                                 node_name="box")
    try:
        async with ApiClient.from_kubeconfig(running.context.kubeconfig) as client:
            await client.create({"apiVersion": "corral.dev/v1alpha1", "kind": "Queue", "metadata": {"name": "team-a"},
                                 "spec": {"cohort": "research", "namespaces": ["default"], "resourceGroups": [
                                     {"flavors": [{"name": "h100", "resources": [
                                         {"name": "nvidia.com/gpu", "nominalQuota": 4}]}]}]}})
            await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": "half", "namespace": "default", "annotations": {"corral.dev/gpu-fraction": "0.5"}},
                "spec": {"restartPolicy": "Never", "containers": [
                    {"name": "main", "image": "python", "command": [sys.executable, "-c", "import time; time.sleep(60)"]}]}})
            await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "too-big", "namespace": "default"},
                                 "spec": {"containers": [{"name": "main", "image": "python", "command": ["true"],
                                                          "resources": {"limits": {"nvidia.com/gpu": "64"}}}]}})
            for _ in range(300):
                half = await client.get("v1", "pods", "half", "default")
                big = await client.get("v1", "pods", "too-big", "default")
                reasons = [c.get("reason") for c in (big.get("status") or {}).get("conditions") or []]
                if (half.get("status") or {}).get("phase") == "Running" and "Unschedulable" in reasons:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"work did not reach the expected state: {half.get('status')} {big.get('status')}")
        url = f"{running.context.url}/dashboard/#token={running.context.token}"
        tls = ["--ignore-certificate-errors"] if url.startswith("https") else []
        dom = await run_browser(chromium_command(tmp_path / "chrome", *tls, "--virtual-time-budget=4000",
                                                 "--dump-dom", url))
        page = Collector()
        page.feed(dom)
        used = sorted(float(device["data-used"]) for device in page.devices)
        assert used == [0.0, 0.0, 0.0, 0.5], dom[:3000]
        assert all("simulated" in device["class"] for device in page.devices)
        assert page.queue_rows == ["team-a"]
        assert "default/too-big" in page.pending_text
        assert "0/1 nodes are available" in page.pending_text and "64 nvidia.com/gpu" in page.pending_text
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "dashboard.png"
        screenshot.unlink(missing_ok=True)
        await run_browser(chromium_command(tmp_path / "chrome2", *tls, "--virtual-time-budget=4000",
                                           f"--screenshot={screenshot}", url))
        assert screenshot.exists() and screenshot.stat().st_size > 10_000
    finally:
        await running.stop()
