"""Crash safety: SIGKILL the server while a client writes as fast as it can; no acknowledged write is lost."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

WRITER = textwrap.dedent("""
    import asyncio, json, sys
    import aiohttp

    url, token = sys.argv[1], sys.argv[2]

    async def worker(session, index):
        n = 0
        while True:
            name = f"w{index}-{n}"
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": str(n)}}
            try:
                async with session.post(url + "/api/v1/namespaces/default/configmaps", json=body) as response:
                    data = await response.json()
                    if response.status == 201:
                        print(json.dumps([name, data["metadata"]["resourceVersion"], data["metadata"]["uid"]]), flush=True)
            except (aiohttp.ClientError, OSError):
                return
            n += 1

    async def main():
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer " + token}) as session:
            await asyncio.gather(*(worker(session, i) for i in range(8)))

    asyncio.run(main())
""")


def start(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    corral = str(Path(sys.executable).parent / "corral")
    process = subprocess.Popen([corral, "up", "--data-dir", str(data_dir), "--port", "0", "--no-tls", "--apiserver-only"],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("corral is ready: "), line
    return process, line.split()[3]


def get(url: str, token: str, path: str) -> dict[str, object]:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, object] = json.load(response)
        return result


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    server, url = start(tmp_path)
    token = (tmp_path / "tokens.csv").read_text().split(",")[0]
    with server, subprocess.Popen([sys.executable, "-c", WRITER, url, token], stdout=subprocess.PIPE, text=True) as writer:
        assert writer.stdout is not None
        first = [writer.stdout.readline() for _ in range(20)]  # the writer is under way
        time.sleep(random.uniform(0.0, 1.0))  # then a random moment
        server.send_signal(signal.SIGKILL)
        server.wait()
        out, _ = writer.communicate(timeout=30)
        out = "".join(first) + out
        assert server.stdout is not None
        server.stdout.close()
    acked = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(acked) > 20, "the writer should have had time to write"
    restarted, url = start(tmp_path)
    with restarted:
        try:
            listed = get(url, token, "/api/v1/namespaces/default/configmaps")
            stored = {item["metadata"]["name"]: item for item in listed["items"]}  # type: ignore[attr-defined]
            for name, rv, uid in acked:
                assert name in stored, f"acknowledged write {name} (rv {rv}) was lost"
                assert stored[name]["metadata"]["uid"] == uid
                assert stored[name]["metadata"]["resourceVersion"] == rv
                assert stored[name]["data"]["n"] == name.split("-")[1]
            highest = max(int(rv) for _, rv, _ in acked)
            assert int(listed["metadata"]["resourceVersion"]) >= highest  # type: ignore[index]
            request = urllib.request.Request(
                url + "/api/v1/namespaces/default/configmaps", method="POST",
                data=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                created = json.load(response)
            assert int(created["metadata"]["resourceVersion"]) > int(listed["metadata"]["resourceVersion"])  # type: ignore[index]
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=30)
            assert restarted.stdout is not None
            restarted.stdout.close()
