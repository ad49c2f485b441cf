"""Real kubectl against an in-process API server: the README's queue commands."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from corral.testing.apiserver import running_apiserver

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "queues"


async def run(kubectl: str, env: dict[str, str], *args: str, check: bool = True) -> str:
    process = await asyncio.create_subprocess_exec(kubectl, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    if check:
        assert process.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
    return out.decode() + (err.decode() if not check else "")


async def test_apply_example_queues_and_get_columns(kubectl: str, tmp_path: Path) -> None:
    async with running_apiserver(tmp_path) as server:
        env = {**os.environ, "KUBECONFIG": str(server.kubeconfig), "KUBECACHEDIR": str(tmp_path / "cache")}
        applied = await run(kubectl, env, "apply", "-f", str(EXAMPLES))
        assert "queue.corral.dev/team-vision created" in applied and "queue.corral.dev/team-nlp created" in applied
        table = await run(kubectl, env, "get", "queues")
        header, *rows = table.strip().splitlines()
        assert header.split() == ["NAME", "COHORT", "PENDING", "ADMITTED", "GPU-USED", "GPU-QUOTA", "BORROWED",
                                  "FAIR-SHARE"]
        assert rows[1].split()[:6] == ["team-vision", "research", "0", "0", "0", "12"]
        bad = EXAMPLES.joinpath("10-team-vision.yaml").read_text().replace("queueingStrategy: BestEffortFIFO",
                                                                           "queueingStrategy: LIFO")
        manifest = tmp_path / "bad.yaml"
        manifest.write_text(bad.replace("name: team-vision\n", "name: team-bad\n", 1))
        refused = await run(kubectl, env, "apply", "-f", str(manifest), check=False)
        assert "queueingStrategy" in refused
