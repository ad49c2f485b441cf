"""A gang's members, created one by one, all end with the condition of the group's latest decision.

The first members are told ``WaitingForMembers``; once the last arrives and the group is
found unschedulable, every member — the early ones included — must say ``Unschedulable``
(``kubectl describe pod`` shows this reason).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from corral.sim.nodes import SimNodeSpec
from tests.integration.test_schedlive_scheduler import cluster

pytestmark = pytest.mark.timeout(120)


def scheduled_condition(pod: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), {})


@pytest.mark.parametrize(("members", "pause"), [(16, 0.0), (16, 0.01), (4, 0.3)])
async def test_members_created_one_by_one_end_with_the_groups_latest_reason(tmp_path: Path, members: int,
                                                                            pause: float) -> None:
    async with cluster(tmp_path, [SimNodeSpec(count=1, gpus=2, gpu_model="H100-80GB", name_prefix="n")]) as c:
        await c.client.create({"apiVersion": "corral.dev/v1alpha1", "kind": "PodGroup",
                               "metadata": {"name": "big", "namespace": "default"}, "spec": {"minMember": members}})
        names = [f"big-{i}" for i in range(members)]
        for name in names:
            await c.create_pod(name, gpus=1, group="big")
            await asyncio.sleep(pause)  # with a pause, each early member is first told WaitingForMembers

        async def reasons() -> list[str] | None:
            found = [scheduled_condition(await c.pod(n)).get("reason", "") for n in names]
            return found if all(r == "Unschedulable" for r in found) else None

        try:
            await c.wait(reasons, timeout=10, message="every member's PodScheduled reason is Unschedulable")
        except AssertionError:
            found = {n: scheduled_condition(await c.pod(n)) for n in names}
            raise AssertionError(f"stale PodScheduled conditions: {found}") from None
