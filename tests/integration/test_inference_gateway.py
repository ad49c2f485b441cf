"""The gateway against real backend processes over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp
import pytest

from corral.client.tokenreview import TokenCheck
from corral.gateway.server import Gateway
from tests.integration.inference_support import backends, pod, service

STRIP = {"pathPrefix": "/v1/models/svc", "stripPrefix": True}


ADMIN = {"Authorization": "Bearer gateway-test-token"}  # /_corral/* (but healthz) needs a token


async def started_gateway(**kwargs) -> Gateway:
    gateway = Gateway(seed=1, token_check=TokenCheck("gateway-test-token"), **kwargs)
    await gateway.start()
    return gateway


async def test_routes_by_path_host_and_model_and_explains_bad_routes() -> None:
    with backends() as group:
        a = await group.start("a")
        b = await group.start("b")
        gateway = await started_gateway()
        try:
            gateway.set_objects(
                [service("digits"), service("embed", route={"pathPrefix": "/v1", "model": "minilm"}),
                 service("hosted", route={"host": "x.example", "pathPrefix": "/v1"})],
                [pod("d1", "digits", "r1", a.port), pod("e1", "embed", "r1", b.port), pod("h1", "hosted", "r1", a.port)],
            )
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{gateway.url}/v1/models/digits:predict", json={"x": 1}) as resp:
                    assert resp.status == 200
                    body = await resp.json()
                    assert body["replica"] == "a" and body["path"] == "/v1/models/digits:predict"
                async with http.post(f"{gateway.url}/v1/embeddings", json={"model": "minilm", "input": "hi"}) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["replica"] == "b"
                async with http.post(f"{gateway.url}/v1/embeddings", json={"model": "gpt-9", "input": "hi"}) as resp:
                    assert resp.status == 404
                    message = (await resp.json())["message"]
                    assert "gpt-9" in message and "minilm" in message
                async with http.post(f"{gateway.url}/v1/embeddings", json={"model": "any"},
                                     headers={"Host": "x.example"}) as resp:
                    assert resp.status == 200
                async with http.get(f"{gateway.url}/nowhere") as resp:
                    assert resp.status == 404
                    assert "'/nowhere'" in (await resp.json())["message"]
                async with http.get(f"{gateway.url}/_corral/routes", headers=ADMIN) as resp:
                    assert len((await resp.json())["routes"]) == 3
        finally:
            await gateway.stop()


async def test_oversize_bodies_get_413_naming_the_limit() -> None:
    with backends() as group:
        a = await group.start("a")
        gateway = await started_gateway()
        try:
            gateway.set_objects([service("digits", gateway={"maxBodyBytes": 1000})], [pod("d1", "digits", "r1", a.port)])
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{gateway.url}/v1/models/digits:predict", data=b"x" * 5000) as resp:
                    assert resp.status == 413
                    assert "maxBodyBytes (1000)" in (await resp.json())["message"]

                async def chunks():
                    for _ in range(10):
                        yield b"y" * 500

                async with http.post(f"{gateway.url}/v1/models/digits:predict", data=chunks()) as resp:
                    assert resp.status == 413
                async with http.post(f"{gateway.url}/v1/models/digits:predict", data=b"x" * 900) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["bytes"] == 900
        finally:
            await gateway.stop()


async def test_least_outstanding_spreads_concurrent_load_over_replicas() -> None:
    with backends() as group:
        replicas = [await group.start(f"r{i}") for i in range(3)]
        gateway = await started_gateway()
        try:
            gateway.set_objects([service("svc", route=STRIP)], [pod(f"p{i}", "svc", "r1", b.port) for i, b in enumerate(replicas)])
            async with aiohttp.ClientSession() as http:

                async def one() -> str:
                    async with http.get(f"{gateway.url}/v1/models/svc/sleep?s=0.3") as resp:
                        assert resp.status == 200
                        return str((await resp.json())["replica"])

                results = await asyncio.gather(*(one() for _ in range(30)))
            counts = Counter(results)
            assert set(counts) == {"r0", "r1", "r2"}
            assert max(counts.values()) - min(counts.values()) <= 2, counts
            assert gateway.outstanding == {}
        finally:
            await gateway.stop()


async def test_canary_at_20_percent_gets_20_plus_minus_5_percent_of_1000_requests() -> None:
    with backends() as group:
        stable = await group.start("stable")
        canary = await group.start("canary")
        gateway = await started_gateway()
        try:
            traffic = [{"revision": "svc-1", "percent": 80}, {"revision": "svc-2", "percent": 20}]
            gateway.set_objects([service("svc", traffic=traffic, route=STRIP)],
                                [pod("s", "svc", "svc-1", stable.port), pod("c", "svc", "svc-2", canary.port)])
            connector = aiohttp.TCPConnector(limit=32)
            async with aiohttp.ClientSession(connector=connector) as http:

                async def one() -> str:
                    async with http.get(f"{gateway.url}/v1/models/svc") as resp:
                        assert resp.status == 200
                        return str((await resp.json())["replica"])

                results = await asyncio.gather(*(one() for _ in range(1000)))
            share = Counter(results)["canary"] / 1000
            assert 0.15 <= share <= 0.25, share
            feed = gateway.metrics.feed()["services"]["default/svc"]
            assert feed["revisions"]["svc-2"]["requests"] == Counter(results)["canary"]
            assert feed["completions"] == 1000 and feed["inFlight"] == 0 and feed["queued"] == 0
        finally:
            await gateway.stop()


async def test_a_replica_killed_mid_load_loses_no_idempotent_request() -> None:
    with backends() as group:
        a = await group.start("a")
        b = await group.start("b")
        gateway = await started_gateway()
        try:
            gateway.set_objects([service("svc", route=STRIP)], [pod("pa", "svc", "r1", a.port), pod("pb", "svc", "r1", b.port)])
            statuses: list[int] = []
            async with aiohttp.ClientSession() as http:

                async def client(n: int) -> None:
                    for _ in range(n):
                        async with http.get(f"{gateway.url}/v1/models/svc/sleep?s=0.05") as resp:
                            statuses.append(resp.status)

                load = asyncio.gather(*(client(25) for _ in range(8)))
                await asyncio.sleep(0.3)
                a.kill()  # mid-load; the route table still lists it, as a watch would for a moment
                await load
            assert len(statuses) == 200
            assert Counter(statuses) == {200: 200}
            feed = gateway.metrics.feed()["services"]["default/svc"]
            assert feed["revisions"]["r1"]["errors"] >= 1, str(feed)
        finally:
            await gateway.stop()


async def test_streaming_passes_through_unbuffered() -> None:
    with backends() as group:
        a = await group.start("a")
        gateway = await started_gateway()
        try:
            gateway.set_objects([service("svc", route=STRIP)], [pod("pa", "svc", "r1", a.port)])
            async with aiohttp.ClientSession() as http:
                for path in ("stream", "sse"):
                    start = time.monotonic()
                    arrivals: list[float] = []
                    async with http.get(f"{gateway.url}/v1/models/svc/{path}?n=4&interval=0.4") as resp:
                        assert resp.status == 200
                        async for _chunk in resp.content.iter_any():
                            arrivals.append(time.monotonic() - start)
                    # The first chunk comes long before the replica finishes writing (~1.6 s).
                    assert arrivals[0] < 0.5, arrivals
                    assert arrivals[-1] > 1.1, arrivals
                    assert len(arrivals) >= 4
        finally:
            await gateway.stop()


async def test_activator_holds_requests_until_a_replica_is_ready() -> None:
    with backends() as group:
        activations: list[str] = []
        gateway = await started_gateway()

        async def scale_up(service_key: str) -> None:
            activations.append(service_key)

            async def bring_up() -> None:
                backend = await group.start("cold")
                gateway.set_objects([service("svc", route=STRIP)], [pod("p", "svc", "r1", backend.port)])

            asyncio.get_running_loop().create_task(bring_up())

        gateway.on_activate = scale_up
        try:
            gateway.set_objects([service("svc", route=STRIP)], [])
            async with aiohttp.ClientSession() as http:
                results = await asyncio.gather(*(http.get(f"{gateway.url}/v1/models/svc") for _ in range(5)))
                for resp in results:
                    assert resp.status == 200
                    assert (await resp.json())["replica"] == "cold"
                    resp.release()
            assert activations == ["default/svc"]  # one activation for the held burst
            assert gateway.metrics.feed()["services"]["default/svc"]["activations"] == 1
        finally:
            await gateway.stop()


async def test_bounded_queue_answers_503_with_retry_after() -> None:
    with backends() as group:
        a = await group.start("a")
        gateway = await started_gateway()
        try:
            gateway.set_objects([service("svc", route=STRIP, gateway={"containerConcurrency": 1, "maxQueuedRequests": 2})],
                                [pod("pa", "svc", "r1", a.port)])
            async with aiohttp.ClientSession() as http:

                async def one() -> tuple[int, str | None]:
                    async with http.get(f"{gateway.url}/v1/models/svc/sleep?s=0.5") as resp:
                        await resp.read()
                        return resp.status, resp.headers.get("Retry-After")

                results = await asyncio.gather(*(one() for _ in range(6)))
            codes = Counter(code for code, _ in results)
            assert codes[200] == 3, results  # one running + two queued
            assert codes[503] == 3
            assert all(retry == "1" for code, retry in results if code == 503)
        finally:
            await gateway.stop()


async def test_timeouts_give_504_and_prometheus_metrics_are_exported() -> None:
    with backends() as group:
        a = await group.start("a")
        gateway = await started_gateway()
        try:
            gateway.set_objects([service("svc", route=STRIP, gateway={"timeoutSeconds": 0.3})], [pod("pa", "svc", "r1", a.port)])
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{gateway.url}/v1/models/svc/sleep?s=2") as resp:
                    assert resp.status == 504
                    assert "0.3s" in (await resp.json())["message"]
                async with http.get(f"{gateway.url}/v1/models/svc") as resp:
                    assert resp.status == 200
                async with http.get(f"{gateway.url}/_corral/metrics", headers=ADMIN) as resp:
                    text = await resp.text()
            assert 'corral_gateway_requests_total{code="504",revision="r1",service="default/svc"} 1.0' in text
            assert 'corral_gateway_request_duration_seconds_count{service="default/svc"} 2.0' in text
            assert "corral_gateway_concurrency" in text
        finally:
            await gateway.stop()


@pytest.mark.parametrize("method", ["POST"])
async def test_non_idempotent_request_is_not_retried_after_the_replica_saw_it(method: str) -> None:
    with backends() as group:
        a = await group.start("a")
        gateway = await started_gateway()
        try:
            # A refused connection (dead port) is retried even for POST: the replica never saw it.
            gateway.set_objects([service("svc", route=STRIP)], [pod("dead", "svc", "r1", 1), pod("pa", "svc", "r1", a.port)])
            async with aiohttp.ClientSession() as http:
                for _ in range(4):
                    async with http.request(method, f"{gateway.url}/v1/models/svc", json={}) as resp:
                        assert resp.status == 200
        finally:
            await gateway.stop()
