"""The digits example through the whole embedded stack: `corral up`'s API server, scheduler,
node agent (pods as processes), gateway and InferenceService controller, in process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from corral.cli.up import InferenceComponent, start_corral
from corral.client import ApiClient

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
async def test_digits_scales_from_zero_through_corral_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The example's pods run `python3 examples/...` from corral's working directory with corral's PATH.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.chdir(REPO)
    running = await asyncio.wait_for(start_corral(tmp_path / "data", port=0, gateway_port=0), 60)
    client = ApiClient.from_kubeconfig(running.context.kubeconfig)
    try:
        gateway = next(c for c in running.components if isinstance(c, InferenceComponent))
        manifest = yaml.safe_load((REPO / "examples/inference/digits/digits.yaml").read_text())
        await client.create(manifest, "default")
        request = json.loads((REPO / "examples/inference/digits/digits.request.json").read_text())
        url = ""
        for _ in range(100):
            obj = await client.get("corral.dev/v1alpha1", "inferenceservices", "digits", "default")
            url = (obj.get("status") or {}).get("url", "")
            if url:
                break
            await asyncio.sleep(0.1)
        assert url.startswith(gateway.url)
        pods = await client.list("v1", "pods", "default", label_selector="corral.dev/inference-service=digits")
        assert pods["items"] == []  # minReplicas 0: nothing runs before the first request
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http, \
                http.post(url + request["path"], json=request["body"]) as resp:
            assert resp.status == 200, await resp.text()
            assert await resp.json() == {"predictions": [0, 7], "model_version": "v1"}
        pods = await client.list("v1", "pods", "default", label_selector="corral.dev/inference-service=digits")
        assert len(pods["items"]) == 1
        pod = pods["items"][0]
        assert pod["spec"].get("nodeName")  # placed by the scheduler, run by the agent
        assert pod["metadata"]["labels"]["corral.dev/revision"] == "digits-1"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "InferenceRevision"
    finally:
        # Take the replicas down through the API so the agent stops their processes.
        pods = await client.list("v1", "pods", "default", label_selector="corral.dev/inference-service=digits")
        await client.delete("corral.dev/v1alpha1", "inferenceservices", "digits", "default")
        for item in pods["items"]:
            await client.delete_if_exists("v1", "pods", item["metadata"]["name"], "default", grace_period_seconds=1)
        for _ in range(100):
            left = await client.list("v1", "pods", "default", label_selector="corral.dev/inference-service=digits")
            if not left["items"]:
                break
            await asyncio.sleep(0.1)
        await client.close()
        await running.stop()
