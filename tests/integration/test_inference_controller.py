"""InferenceService end to end: real API server, gateway, controller, autoscaler and replica processes.

Replica pods run as local processes through ``PodRunner`` (tests/integration/inference_support.py),
which plays the node agent's part (POD_IP, readiness probes, restarts) through the API.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp

from tests.integration.inference_support import backend_template, inference_service, inference_stack

# missCostSeconds 1: misses are cheap, so the predictive policy keeps no replica warm for long after the load.
FAST_SCALING = {"stableWindowSeconds": 3, "panicWindowSeconds": 1, "scaleToZeroGracePeriodSeconds": 1, "missCostSeconds": 1}


async def test_scale_from_zero_to_n_and_back_to_zero(tmp_path: Path) -> None:
    async with inference_stack(tmp_path) as stack:
        await stack.apply(inference_service(
            "echo", backend_template(), minReplicas=0, maxReplicas=4, autoscaling=FAST_SCALING,
            route={"pathPrefix": "/v1/models/echo", "stripPrefix": True}, gateway={"containerConcurrency": 1}))

        async def scaled_to_zero() -> dict | None:
            obj = await stack.get("echo")
            ready = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
            return obj if ready.get("reason") == "ScaledToZero" else None

        obj = await stack.wait_for(scaled_to_zero, 30, "the service to report ScaledToZero")
        url = obj["status"]["url"]
        assert url == f"{stack.gateway.url}/v1/models/echo"
        assert await stack.pods("echo") == []

        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.get(f"{url}/sleep?s=0.1") as resp:  # 0 → 1 on the first request, no error
                assert resp.status == 200, await resp.text()
            first = time.monotonic() - started
            assert len(await stack.pods("echo")) >= 1

            async def one() -> int:
                async with http.get(f"{url}/sleep?s=1.0") as resp:
                    text = await resp.text()
                    assert resp.status == 200, text
                    return resp.status

            async def ready_replicas() -> int:
                return sum(1 for p in await stack.pods("echo")
                           if any(c["type"] == "Ready" and c["status"] == "True"
                                  for c in (p.get("status") or {}).get("conditions") or []))

            # Watch the service while the load runs: the autoscaler must want (or reach) 3+ replicas.
            seen = {"desired": 0, "ready": 0}
            load_done = asyncio.Event()

            async def observe() -> None:
                while not load_done.is_set():
                    desired = int((await stack.get("echo"))["status"].get("desiredReplicas") or 0)
                    seen["desired"] = max(seen["desired"], desired)
                    seen["ready"] = max(seen["ready"], await ready_replicas())
                    await asyncio.sleep(0.1)

            observer = asyncio.create_task(observe())
            statuses: list[int] = []
            for _ in range(3):
                statuses += await asyncio.gather(*(one() for _ in range(6)))
            await asyncio.sleep(1.0)  # one more autoscaler tick over the window that still holds the load
            load_done.set()
            await observer
            assert Counter(statuses) == {200: 18}
            status, peak = {"desiredReplicas": seen["desired"]}, seen["ready"]
            assert status["desiredReplicas"] >= 3 or peak >= 3, (status, peak)

        async def at_zero() -> bool:
            return not await stack.pods("echo") and (await stack.get("echo"))["status"]["desiredReplicas"] == 0

        await stack.wait_for(at_zero, 60, "scale back to zero after the grace period")
        assert first < 60  # slow the first time (a replica starts), never an error


async def test_canary_split_promotion_and_automatic_rollbacks(tmp_path: Path) -> None:
    rollout = {"minRequests": 10, "maxErrorRate": 0.2, "promoteAfterRequests": 100_000,
               "promoteAfterSeconds": 3600, "readyTimeoutSeconds": 120, "maxRestarts": 2}
    async with inference_stack(tmp_path) as stack:
        spec = {"minReplicas": 1, "maxReplicas": 2, "canaryTrafficPercent": 20, "rollout": rollout,
                "route": {"pathPrefix": "/v1/models/m", "stripPrefix": True}}
        await stack.apply(inference_service("m", backend_template(), **spec))

        async def status_where(check) -> dict:
            async def probe() -> dict | None:
                obj = await stack.get("m")
                return obj if check(obj.get("status") or {}) else None

            return await stack.wait_for(probe, 60, f"status matching {check.__doc__ or check}")

        obj = await status_where(lambda s: s.get("stableRevision") == "m-1" and s.get("readyReplicas", 0) >= 1)
        url = obj["status"]["url"]

        # v2, healthy: a 20 % canary gets 20 ± 5 % of 1,000 requests.
        await stack.apply(inference_service("m", backend_template("--body-bytes", "1"), **spec))
        await status_where(lambda s: s.get("canaryRevision") == "m-2"
                           and any(r["name"] == "m-2" and r["readyReplicas"] >= 1 for r in s.get("revisions", [])))

        async def gateway_routes_canary() -> bool:
            route = stack.gateway.table.by_service.get("default/m")
            return route is not None and any(t.name == "m-2" and t.backends and t.percent == 20
                                             for t in route.revisions)

        await stack.wait_for(gateway_routes_canary, 60, "the gateway to route 20 % to m-2")
        connector = aiohttp.TCPConnector(limit=16)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def one() -> tuple[int, str]:
                async with http.get(url) as resp:
                    body = await resp.json()
                    return resp.status, str(body.get("replica", ""))

            results = await asyncio.gather(*(one() for _ in range(1000)))
            assert all(code == 200 for code, _ in results)
            share = sum(1 for _, replica in results if replica.startswith("m-2-")) / 1000
            assert 0.15 <= share <= 0.25, share

            # Promotion after promoteAfterRequests healthy requests.
            await stack.apply(inference_service("m", backend_template("--body-bytes", "1"),
                                                **{**spec, "rollout": {**rollout, "promoteAfterRequests": 50}}))
            obj = await status_where(lambda s: s.get("stableRevision") == "m-2" and not s.get("canaryRevision"))
            spec["rollout"] = {**rollout, "promoteAfterRequests": 50}

            # v3 answers 500: rolled back on maxErrorRate; clients lose at most the error budget.
            await stack.apply(inference_service("m", backend_template("--fail"), **spec))
            await status_where(lambda s: s.get("canaryRevision") == "m-3"
                               and any(r["name"] == "m-3" and r["readyReplicas"] >= 1 for r in s.get("revisions", [])))
            codes = Counter()
            for _ in range(40):
                batch = await asyncio.gather(*(one() for _ in range(5)))
                codes.update(code for code, _ in batch)
                if (await stack.get("m"))["status"].get("rolledBack"):
                    break
            obj = await status_where(lambda s: (s.get("rolledBack") or {}).get("revision") == "m-3")
            assert obj["status"]["rolledBack"]["reason"] == "ErrorRate"
            assert obj["status"]["traffic"] == [{"revision": "m-2", "percent": 100, "tag": "stable"}]
            rollout_condition = next(c for c in obj["status"]["conditions"] if c["type"] == "RolloutComplete")
            assert rollout_condition["reason"] == "ErrorRate"
            assert codes[500] <= 0.2 * sum(codes.values()) + 5, codes
            after = await asyncio.gather(*(one() for _ in range(100)))
            assert all(code == 200 for code, _ in after), Counter(code for code, _ in after)
            events = await stack.client.list("v1", "events", "default")
            assert any(e["reason"] == "RolledBack" and "m-3" in e["message"] for e in events["items"])

            # v4 never becomes ready: rolled back after readyTimeoutSeconds; no request fails meanwhile.
            never_ready = backend_template("--not-ready", probe={"httpGet": {"path": "/healthz", "port": 8080}})
            await stack.apply(inference_service("m", never_ready,
                                                **{**spec, "rollout": {**spec["rollout"], "readyTimeoutSeconds": 3}}))
            during = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                during += await asyncio.gather(*(one() for _ in range(5)))
                status = (await stack.get("m"))["status"]
                if (status.get("rolledBack") or {}).get("revision") == "m-4":
                    break
            assert status["rolledBack"]["reason"] == "ReadinessTimeout", status
            assert all(code == 200 for code, _ in during)

            # v5 crash-loops: rolled back once a replica restarted maxRestarts times.
            crash = {"spec": {"containers": [{"name": "server", "command": ["python", "-c", "raise SystemExit(3)"],
                                              "ports": [{"containerPort": 8080}]}]}}
            await stack.apply(inference_service("m", crash, **spec))
            obj = await status_where(lambda s: (s.get("rolledBack") or {}).get("revision") == "m-5")
            assert obj["status"]["rolledBack"]["reason"] == "CrashLoop"
            assert obj["status"]["stableRevision"] == "m-2"
            revision = await stack.client.get("corral.dev/v1alpha1", "inferencerevisions", "m-5", "default")
            assert revision["status"]["failed"] is True

        async def failed_pods_gone() -> bool:
            return all(p["metadata"]["labels"]["corral.dev/revision"] == "m-2" for p in await stack.pods("m"))

        await stack.wait_for(failed_pods_gone, 30, "the rolled-back revisions' pods to go")
