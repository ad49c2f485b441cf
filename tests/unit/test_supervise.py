"""The supervisor of long-running tasks: crashes are restarted with backoff and reported until
the task has run ``healthy_after`` seconds again; a task that ends on its own is done."""

from __future__ import annotations

import asyncio
import itertools

from corral.apiserver.health import HealthChecks, health_response
from corral.util.supervise import Supervisor


async def test_a_crashing_task_is_restarted_with_growing_backoff_and_reported() -> None:
    supervisor = Supervisor("component", initial_backoff=0.01, max_backoff=0.04, healthy_after=60)
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    async def crashes() -> None:
        starts.append(loop.time())
        raise KeyError("spec")

    supervisor.spawn("loop", crashes)
    while len(starts) < 5:
        await asyncio.sleep(0.005)
    check = supervisor.check()
    await supervisor.stop()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.01 and gaps[-1] >= 0.04 and gaps[-1] < 1  # doubled, capped at max_backoff
    assert check is not None and "task loop crashed" in check and "KeyError: 'spec'" in check


async def test_a_task_that_ends_or_recovers_is_not_reported() -> None:
    supervisor = Supervisor("component", initial_backoff=0.01, healthy_after=0.05)
    attempts = 0

    async def fails_once_then_runs() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("first run")
        await asyncio.Event().wait()

    async def finishes() -> None:
        return None

    supervisor.spawn("flaky", fails_once_then_runs)
    supervisor.spawn("oneshot", finishes)
    await asyncio.sleep(0.02)
    assert attempts == 2 and "flaky" in (supervisor.check() or "")
    await asyncio.sleep(0.1)
    assert supervisor.check() is None  # ran healthy_after seconds since the restart
    await supervisor.stop()
    assert supervisor.check() is None  # stopping is not a crash


def test_readyz_body_is_kube_style() -> None:
    checks = HealthChecks()
    checks.add("scheduler", lambda: None)
    assert health_response("readyz", {}, ready=True, checks=checks) == (200, "ok")
    code, body = health_response("readyz", {"verbose": ""}, ready=True, checks=checks)
    assert code == 200 and body == "[+]ping ok\n[+]store ok\n[+]scheduler ok\nreadyz check passed\n"
    checks.add("agent", lambda: "task sync crashed 2 time(s)")
    checks.add("broken", lambda: 1 // 0)  # type: ignore[func-returns-value]
    code, body = health_response("readyz", {}, ready=True, checks=checks, exclude=["scheduler"])
    assert code == 500 and "[-]agent failed: task sync crashed 2 time(s)" in body
    assert "[-]broken failed: the check raised ZeroDivisionError" in body and "scheduler" not in body
    assert health_response("livez", {}, ready=False, checks=checks) == (200, "ok")
