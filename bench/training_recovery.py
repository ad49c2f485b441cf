"""How fast a TrainingJob heals, and what corral costs over torchrun by hand. Prints one JSON line.

1. ``torchrun --standalone --nproc-per-node 2 examples/training/ddp/train.py ARGS``: wall time.
2. ``corral up --data-dir D`` in a fresh directory; the same script as a 2-worker TrainingJob:
   wall time from ``create`` to ``Succeeded`` → ``overhead_pct`` against (1).
3. The same job again; when rank 1 has finished epoch 2 its process gets SIGKILL:
   - ``recovery_s``: from the kill to every rank of the restarted gang training again
     (the ``resumed from checkpoint`` line, after the process group is up and the
     checkpoint loaded), as timestamped by the agent's log;
   - ``lost_work_s``: training time recomputed, i.e. from the last checkpoint (the epoch
     line printed right after it was saved) to the kill.

Figures are wall-clock on a shared machine: run it a few times and quote medians.
``--epochs``/``--step-delay`` size the job (defaults: 10 epochs, 0.02 s/step ≈ 0.5 s/epoch).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "training" / "ddp" / "train.py"
API = "corral.dev/v1alpha1"


def torchrun_wall(args: list[str], work: Path) -> float:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        raise SystemExit("torchrun is not installed (pip install torch==2.13.0 from this machine's wheel)")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    began = time.monotonic()
    subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", str(SCRIPT), *args,
                    "--checkpoint-dir", str(work / "torchrun-ckpt")],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    return time.monotonic() - began


def manifest(name: str, args: list[str]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "TrainingJob", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 2, "backoffLimit": 2, "backoff": {"initialSeconds": 0, "maxSeconds": 0},
                     "template": {"spec": {"terminationGracePeriodSeconds": 5, "containers": [{
                         "name": "worker", "image": "python", "command": [sys.executable, str(SCRIPT)],
                         "args": args, "env": [{"name": "OMP_NUM_THREADS", "value": "1"},
                                               {"name": "PYTHONUNBUFFERED", "value": "1"}]}]}}}}


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def log_lines(client: Any, pod: str) -> list[tuple[float, str]]:
    try:
        raw = b"".join([chunk async for chunk in client.pod_log("default", pod, timestamps=True)])
    except Exception:
        return []
    lines = []
    for line in raw.decode(errors="replace").splitlines():
        when, _, text = line.partition(" ")
        try:
            lines.append((stamp(when), text))
        except ValueError:
            continue
    return lines


async def wait_phase(client: Any, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = await client.get(API, "trainingjobs", name, "default")
        if (job.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return dict(job)
        await asyncio.sleep(0.1)
    raise SystemExit(f"{name} did not finish in {timeout}s")


async def under_corral(kubeconfig: Path, args: list[str]) -> dict[str, float]:
    from corral.client import ApiClient

    async with ApiClient.from_kubeconfig(kubeconfig) as client:
        began = time.monotonic()
        await client.create(manifest("plain", args))
        job = await wait_phase(client, "plain", 300)
        corral_wall = time.monotonic() - began
        if job["status"]["phase"] != "Succeeded":
            raise SystemExit(f"plain job failed: {job['status']}")

        await client.create(manifest("killed", args))
        pid = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not pid:
            text = "\n".join(line for _, line in await log_lines(client, "killed-worker-1"))
            found = re.search(r"pid=(\d+)", text)
            if found and re.search(r"^epoch=2 ", text, re.M):
                pid = int(found.group(1))
            await asyncio.sleep(0.05)
        if not pid:
            raise SystemExit("rank 1 never reached epoch 2")
        first_uid = (await client.get("v1", "pods", "killed-worker-0", "default"))["metadata"]["uid"]
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        before = await log_lines(client, "killed-worker-0")
        job = await wait_phase(client, "killed", 300)
        if job["status"]["phase"] != "Succeeded":
            raise SystemExit(f"killed job failed: {job['status']}")
        resumed_at = []
        resumed_epoch = 0
        for rank in (0, 1):
            for when, text in await log_lines(client, f"killed-worker-{rank}"):
                match = re.match(r"resumed from checkpoint epoch=(\d+)", text)
                if match:
                    resumed_at.append(when)
                    resumed_epoch = int(match.group(1))
        pod = await client.get("v1", "pods", "killed-worker-0", "default")
        if pod["metadata"]["uid"] == first_uid or len(resumed_at) != 2:
            raise SystemExit("the gang was not restarted as expected")
        saved = [when for when, text in before if text.startswith(f"epoch={resumed_epoch} ")]
        checkpoint_at = saved[-1] if saved else killed_at
        return {"corral_wall_s": corral_wall, "recovery_s": max(resumed_at) - killed_at,
                "lost_work_s": max(0.0, killed_at - checkpoint_at)}


def start_corral(data_dir: Path) -> subprocess.Popen[bytes]:
    corral = shutil.which("corral", path=str(Path(sys.executable).parent)) or "corral"
    log = (data_dir.parent / "corral-up.log").open("wb")
    proc = subprocess.Popen([corral, "up", "--data-dir", str(data_dir)], stdout=log, stderr=subprocess.STDOUT,
                            cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (data_dir / "kubeconfig").exists():
            time.sleep(3)  # the agent registers its node, the scheduler syncs
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"corral up exited with {proc.returncode}: see {log.name}")
        time.sleep(0.2)
    raise SystemExit("corral up did not write its kubeconfig in 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--step-delay", type=float, default=0.02)
    options = parser.parse_args()
    args = ["--epochs", str(options.epochs), "--step-delay", str(options.step_delay)]
    with tempfile.TemporaryDirectory(prefix="corral-bench-training-") as tmp:
        work = Path(tmp)
        baseline = torchrun_wall(args, work)
        proc = start_corral(work / "data")
        try:
            figures = asyncio.run(under_corral(work / "data" / "kubeconfig", args))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    result = {
        "bench": "training_recovery",
        "recovery_s": round(figures["recovery_s"], 3),
        "lost_work_s": round(figures["lost_work_s"], 3),
        "overhead_pct": round(100.0 * (figures["corral_wall_s"] - baseline) / baseline, 1),
        "torchrun_wall_s": round(baseline, 3),
        "corral_wall_s": round(figures["corral_wall_s"], 3),
        "epochs": options.epochs,
        "step_delay_s": options.step_delay,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
