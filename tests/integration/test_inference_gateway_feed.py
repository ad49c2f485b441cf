"""The gateway feed's inputs for the predictive autoscaler, against real backend processes:
the start time of each request in flight, and cumulative completions per service-time bucket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from corral.autoscaling.metrics import SERVICE_TIME_BUCKETS
from corral.gateway.server import Gateway
from tests.integration.inference_support import backends, pod, service

STRIP = {"pathPrefix": "/v1/models/svc", "stripPrefix": True}


def snapshot(gateway: Gateway) -> dict[str, Any]:
    return dict(gateway.metrics.feed()["services"].get("default/svc") or {})


async def until(gateway: Gateway, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    for _ in range(500):
        snap = snapshot(gateway)
        if check(snap):
            return snap
        await asyncio.sleep(0.01)
    raise AssertionError(f"the feed never showed {what}: {snapshot(gateway)}")


def nonzero_buckets(snap: dict[str, Any]) -> dict[int, int]:
    return {index: count for index, count in enumerate(snap["serviceTimeBuckets"]) if count}


async def test_feed_lists_requests_in_flight_until_they_end_and_retries_stay_one_request() -> None:
    with backends() as group:
        a = await group.start("a")
        b = await group.start("b")
        gateway = Gateway(seed=1)
        await gateway.start()
        try:
            gateway.set_objects([service("svc", route=STRIP)], [pod("pa", "svc", "r1", a.port),
                                                                pod("pb", "svc", "r1", b.port)])
            async with aiohttp.ClientSession() as http:

                async def get(path: str) -> int:
                    async with http.get(f"{gateway.url}/v1/models/svc/{path}") as resp:
                        await resp.read()
                        return resp.status

                assert await asyncio.gather(*(get("") for _ in range(6))) == [200] * 6  # pooled connections
                idle = snapshot(gateway)
                assert idle["inFlightStarted"] == [] and len(idle["serviceTimeBuckets"]) == len(SERVICE_TIME_BUCKETS) + 1
                assert sum(idle["serviceTimeBuckets"]) == 6
                a.kill()  # pooled connections to it now fail: those requests are retried on b
                before = gateway.clock.monotonic()
                load = asyncio.gather(*(get("sleep?s=0.8") for _ in range(4)))
                busy = await until(gateway, lambda s: s.get("inFlight") == 4, "four requests in flight")
                assert len(busy["inFlightStarted"]) == 4
                assert all(before <= started <= busy["time"] for started in busy["inFlightStarted"])
                assert await load == [200] * 4
            done = snapshot(gateway)
            assert done["inFlight"] == 0 and done["inFlightStarted"] == []
            assert gateway.metrics.stats("default/svc").started == {}  # nothing leaked by the retries
            assert done["revisions"]["r1"]["errors"] >= 1, done  # some went to the dead replica first
            assert sum(done["serviceTimeBuckets"]) == done["completions"] == 10
            slow = {i: c for i, c in nonzero_buckets(done).items() if SERVICE_TIME_BUCKETS[i] > 0.8}
            assert sum(slow.values()) == 4, done["serviceTimeBuckets"]
        finally:
            await gateway.stop()


async def test_a_queued_request_is_in_flight_from_its_dispatch_and_lands_in_its_service_time_bucket() -> None:
    with backends() as group:
        a = await group.start("a")
        gateway = Gateway(seed=1)
        await gateway.start()
        try:
            gateway.set_objects([service("svc", route=STRIP, gateway={"containerConcurrency": 1})],
                                [pod("pa", "svc", "r1", a.port)])
            async with aiohttp.ClientSession() as http:

                async def get() -> int:
                    async with http.get(f"{gateway.url}/v1/models/svc/sleep?s=0.5") as resp:
                        await resp.read()
                        return resp.status

                load = asyncio.gather(get(), get())
                first = await until(gateway, lambda s: s.get("inFlight") == 1 and s.get("queued") == 1,
                                    "one request in flight and one queued")
                assert len(first["inFlightStarted"]) == 1  # the queued one is not in flight yet
                second = await until(gateway, lambda s: s.get("completions") == 1 and s.get("inFlight") == 1,
                                     "the queued request dispatched")
                assert len(second["inFlightStarted"]) == 1
                # In flight since it got the replica, not since it arrived with the first one.
                assert second["inFlightStarted"][0] - first["inFlightStarted"][0] >= 0.45
                assert await load == [200, 200]
            done = snapshot(gateway)
            assert done["inFlightStarted"] == []
            buckets = nonzero_buckets(done)
            assert sum(buckets.values()) == 2
            # Both served for ~0.5 s: the queued one's wait is not service time.
            for index in buckets:
                assert SERVICE_TIME_BUCKETS[index] > 0.5 and SERVICE_TIME_BUCKETS[index - 1] < 0.9, buckets
            assert 1.0 <= done["serviceSeconds"] < 1.8
        finally:
            await gateway.stop()
