"""Hedged cold starts end to end: real API server, gateway, controller, autoscaler and replica
processes whose start-up times alternate between slow (6 s) and fast (0.1 s), as a model server's
do when its weights are fetched or already cached.

Two requests from zero teach the autoscaler both kinds of start-up; the third, from zero again,
gets several replicas started at once (``autoscalerReason: Hedged``) and is served by the first
one ready — well before a slow start-up would have been — and the spare starts are removed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.inference_support import backend_template, inference_service, inference_stack

SLOW = 6.0


async def test_a_request_from_zero_gets_hedged_starts_once_start_ups_are_seen_to_vary(tmp_path: Path) -> None:
    counter = tmp_path / "starts"
    template = backend_template("--start-delays", f"{SLOW},0.1", "--start-counter", str(counter))
    autoscaling = {"queueWaitSeconds": 2, "missCostSeconds": 5, "maxHedgedStarts": 3,
                   "scaleToZeroGracePeriodSeconds": 1, "stableWindowSeconds": 3, "panicWindowSeconds": 1}
    async with inference_stack(tmp_path) as stack:
        await stack.apply(inference_service(
            "hedge", template, minReplicas=0, maxReplicas=6, autoscaling=autoscaling,
            route={"pathPrefix": "/v1/models/hedge", "stripPrefix": True}, gateway={"containerConcurrency": 1}))

        async def at_zero() -> dict[str, Any] | None:
            obj = await stack.get("hedge")
            status = obj.get("status") or {}
            done = status.get("url") and status.get("desiredReplicas") == 0 and not await stack.pods("hedge")
            return obj if done else None

        reasons: list[str] = []
        watching = asyncio.Event()

        async def watch_reasons() -> None:
            while not watching.is_set():
                reason = ((await stack.get("hedge")).get("status") or {}).get("autoscalerReason")
                if reason and (not reasons or reasons[-1] != reason):
                    reasons.append(reason)
                await asyncio.sleep(0.05)

        url = (await stack.wait_for(at_zero, 30, "the service to settle at zero"))["status"]["url"]
        async with aiohttp.ClientSession() as http:

            async def timed_request() -> float:
                started = time.monotonic()
                async with http.get(f"{url}/sleep?s=0.1", timeout=aiohttp.ClientTimeout(total=60)) as resp:
                    assert resp.status == 200, await resp.text()
                return time.monotonic() - started

            # 1st start-up slow, 2nd fast: the autoscaler has now seen both kinds.
            assert await timed_request() >= SLOW
            await stack.wait_for(at_zero, 60, "scale to zero after the first request")
            await timed_request()
            await stack.wait_for(at_zero, 60, "scale to zero after the second request")
            assert counter.stat().st_size == 2

            watcher = asyncio.create_task(watch_reasons())
            # The 3rd start-up is slow again; hedged starts bring the 4th (fast) in time.
            latency = await timed_request()
            watching.set()
            await watcher
        started = counter.stat().st_size
        assert started >= 4, f"only {started} replicas started in all"
        assert "Hedged" in reasons, reasons
        assert latency < SLOW - 1.0, f"served after {latency:.1f} s: not by a hedged fast start"
        # The spare starts are removed: back to zero, nothing left starting.
        await stack.wait_for(at_zero, 60, "scale to zero after the hedged request")
