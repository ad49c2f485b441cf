"""Poison objects against the gateway, the controller runtime and informers, and supervised
loops on ``/readyz`` (issue 22, item 2).

Poison objects go into the store past validation (:func:`store_unvalidated`), as a store
written by an older version would hold them; then good objects are created and must be
served.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from corral.client import ApiClient, Informer
from corral.controllers.runtime import Controller, Result
from corral.gateway.server import Gateway
from corral.testing.apiserver import running_apiserver, store_unvalidated
from corral.util.supervise import Supervisor
from tests.integration.inference_support import backends, pod, service

pytestmark = pytest.mark.timeout(60)


async def until(check: Callable[[], Awaitable[Any]] | Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_the_gateway_routes_good_services_beside_ones_it_cannot_read(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server:
        client = ApiClient.from_kubeconfig(server.kubeconfig)
        gateway = Gateway(seed=1)
        await gateway.start()
        with backends() as group:
            replica = await group.start("good")
            try:
                bad = service("bad", gateway={"timeoutSeconds": "soon"})
                await store_unvalidated(server, bad)
                bad_route = service("bad-route")
                bad_route["spec"]["route"] = "x"
                await store_unvalidated(server, bad_route)
                bad_pod = pod("bad-pod", "good", "r1", 1)
                bad_pod["spec"]["containers"][0]["ports"] = [{"containerPort": "http"}]
                await store_unvalidated(server, bad_pod)
                await gateway.watch_api(client)
                good = service("good")
                good["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": replica.port}]
                await client.create(good)
                await store_unvalidated(server, pod("good-pod", "good", "r1", replica.port))  # the agent's status
                await until(lambda: gateway.table.by_service.get("default/good") and
                            gateway.table.by_service["default/good"].ready_backends, "a route for the good service")
                assert set(gateway.table.invalid) == {"default/bad", "default/bad-route"}
                assert "soon" in gateway.table.invalid["default/bad"]
                async with aiohttp.ClientSession() as session, \
                        session.get(f"{gateway.url}/v1/models/good/x") as response:
                    assert response.status == 200
                    assert json.loads(await response.text())["replica"] == "good"
                # fixed, the service gets its route
                await client.patch("corral.dev/v1alpha1", "inferenceservices", "bad",
                                   {"spec": {"gateway": {"timeoutSeconds": 30}}}, namespace="default")
                await until(lambda: "default/bad" in gateway.table.by_service, "a route once fixed")
            finally:
                await gateway.stop()
                await client.close()


class Picky:
    """A reconciler that cannot handle one key (it raises), and records what it reconciled."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.failures = 0

    async def reconcile(self, key: str) -> Result | None:
        if key.endswith("/poison"):
            self.failures += 1
            raise ValueError(f"cannot handle {key}")
        self.done.add(key)
        return None


async def test_a_controller_keeps_reconciling_beside_a_key_that_always_fails(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server:
        client = ApiClient.from_kubeconfig(server.kubeconfig)
        configmaps = Informer(client, "v1", "configmaps")
        # an index function and a handler that raise on the poison object must not stop the informer
        configmaps.add_indexer("by-owner", lambda obj: [obj["data"]["owner"]])
        configmaps.add_handler(lambda obj: obj["data"]["owner"].upper())
        picky = Picky()
        controller = Controller("picky", picky, workers=1)
        controller.watch(configmaps)
        await store_unvalidated(server, {"apiVersion": "v1", "kind": "ConfigMap",
                                         "metadata": {"name": "poison", "namespace": "default"}, "data": "x"})
        await configmaps.start()
        await configmaps.wait_synced(10)
        await controller.start()
        try:
            for name in ("one", "two"):
                await client.create({"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": name, "namespace": "default"}, "data": {"owner": "a"}})
            await until(lambda: picky.done >= {"default/one", "default/two"}, "good keys reconciled")
            await until(lambda: picky.failures >= 2, "the poison key retried")
            assert {o["metadata"]["name"] for o in configmaps.by_index("by-owner", "a")} == {"one", "two"}
            assert configmaps.get("default/poison") is not None
            assert controller.supervisor.check() is None  # a reconcile error is retried, not a crash
            # the informer still follows changes after the poison object
            await store_unvalidated(server, {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "poison", "namespace": "default"},
                                             "data": {"owner": "b"}})
            await until(lambda: configmaps.by_index("by-owner", "b"), "the fixed object indexed")
        finally:
            await controller.stop()
            await configmaps.stop()
            await client.close()


async def test_a_crashing_loop_is_restarted_and_reported_on_readyz_until_it_recovers(tmp_path: Path) -> None:
    async with running_apiserver(tmp_path, tls=False) as server:
        supervisor = Supervisor("scheduler", initial_backoff=0.05, max_backoff=0.1, healthy_after=0.5)
        server.server.health.add("scheduler", supervisor.check)
        runs = 0
        crash = True

        async def flaky_loop() -> None:
            nonlocal runs
            runs += 1
            await asyncio.sleep(0.01)
            if crash:
                raise RuntimeError("cannot handle pod default/bad")
            await asyncio.Event().wait()  # a healthy loop runs until stopped

        async def readyz(verbose: bool = True, token: bool = True) -> tuple[int, str]:
            headers = {"Authorization": f"Bearer {server.token}"} if token else {}
            async with aiohttp.ClientSession(headers=headers) as session, \
                    session.get(f"{server.url}/readyz" + ("?verbose" if verbose else "")) as response:
                return response.status, await response.text()

        assert await readyz(verbose=False) == (200, "ok")
        supervisor.spawn("loop", flaky_loop)
        try:
            await until(lambda: runs >= 3, "the crashing loop restarted")
            code, body = await readyz()
            assert code == 500
            assert "[-]scheduler failed: task loop crashed" in body and "RuntimeError: cannot handle pod default/bad" in body
            assert "[+]ping ok" in body and body.rstrip().endswith("readyz check failed")
            code, body = await readyz(verbose=False, token=False)  # reasons are withheld without a token
            assert code == 500 and "[-]scheduler failed: reason withheld" in body and "default/bad" not in body
            async with aiohttp.ClientSession() as session, session.get(f"{server.url}/livez") as response:
                assert response.status == 200  # not ready, but alive: nothing to restart
            crash = False
            await until(lambda: supervisor.check() is None, "the loop healthy again", timeout=10)
            code, body = await readyz()
            assert code == 200 and "[+]scheduler ok" in body and body.rstrip().endswith("readyz check passed")
        finally:
            await supervisor.stop()
