"""How fast a TrainingJob heals, and what corral costs over torchrun by hand. Prints one JSON line.

1. ``torchrun --standalone --nproc-per-node 2 examples/training/ddp/train.py ARGS``: wall time.
2. ``corral up --data-dir D`` in a fresh directory; the same script as a 2-worker TrainingJob:
   wall time from ``create`` to ``Succeeded`` → ``overhead_pct`` against (1).
3. The same job again; half an epoch after rank 1 finished epoch 2 its process gets SIGKILL:
   - ``recovery_s``: from the kill to every rank of the restarted gang training again
     (the ``resumed from checkpoint`` line, after the process group is up and the
     checkpoint loaded), split into ``detect_s`` (the controller has started the next
     attempt), ``pods_running_s`` (the new pods are Running) and ``process_start_s``
     (Python + torch import + rendezvous + checkpoint load in the new workers);
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
        before, killed_at = await kill_rank1_mid_epoch(client)
        marks = await watch_recovery(client, killed_at)
        job = await wait_phase(client, "killed", 300)
        if job["status"]["phase"] != "Succeeded" or job["status"].get("restarts") != 1:
            raise SystemExit(f"killed job did not recover as expected: {job['status']}")
        resumed_epoch = 0
        for _, text in await log_lines(client, "killed-worker-0"):
            match = re.match(r"resumed from checkpoint epoch=(\d+)", text)
            if match:
                resumed_epoch = int(match.group(1))
        saved = [when for when, text in before if text.startswith(f"epoch={resumed_epoch} ")]
        checkpoint_at = saved[-1] if saved else killed_at
        marks["lost_work_s"] = max(0.0, killed_at - checkpoint_at)
        marks["corral_wall_s"] = corral_wall
        return marks


async def kill_rank1_mid_epoch(client: Any) -> tuple[list[tuple[float, str]], float]:
    """SIGKILL rank 1 half an epoch after it finished epoch 2 (a crash lands mid-epoch on average).

    Returns rank 0's log as it was just before the kill, and the time of the kill.
    """
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        lines = await log_lines(client, "killed-worker-1")
        text = "\n".join(line for _, line in lines)
        found = re.search(r"pid=(\d+)", text)
        ends = {int(m.group(1)): when for when, line in lines if (m := re.match(r"epoch=(\d+) ", line))}
        if found and 1 in ends and 2 in ends:
            epoch_s = ends[2] - ends[1]
            await asyncio.sleep(max(0.0, ends[2] + epoch_s / 2 - time.time()))
            before = await log_lines(client, "killed-worker-0")
            os.kill(int(found.group(1)), signal.SIGKILL)
            return before, time.time()
        await asyncio.sleep(0.05)
    raise SystemExit("rank 1 never reached epoch 2")


async def watch_recovery(client: Any, killed_at: float) -> dict[str, float]:
    """Poll until both ranks of the new gang resumed; note when each stage was first seen."""
    marks: dict[str, float] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        now = time.time()
        job = await client.get(API, "trainingjobs", "killed", "default")
        if "detect_s" not in marks and (job.get("status") or {}).get("attempt", 0) >= 1:
            marks["detect_s"] = now - killed_at
        pods = (await client.list("v1", "pods", "default", label_selector="corral.dev/training-job=killed"))["items"]
        fresh = [p for p in pods if p["metadata"]["labels"].get("corral.dev/attempt") == "1"]
        if "pods_running_s" not in marks and len(fresh) == 2 and all(
                (p.get("status") or {}).get("phase") == "Running" for p in fresh):
            marks["pods_running_s"] = now - killed_at
        if len(fresh) == 2:
            resumed = 0
            for rank in (0, 1):
                if any(t.startswith("resumed from checkpoint") for _, t in await log_lines(client, f"killed-worker-{rank}")):
                    resumed += 1
            if resumed == 2:
                marks["recovery_s"] = time.time() - killed_at
                marks.setdefault("pods_running_s", marks["recovery_s"])
                return marks
        await asyncio.sleep(0.1)
    raise SystemExit("the gang did not resume within 300 s")


def start_corral(data_dir: Path) -> subprocess.Popen[bytes]:
    corral = shutil.which("corral", path=str(Path(sys.executable).parent)) or "corral"
    log = (data_dir.parent / "corral-up.log").open("wb")
    proc = subprocess.Popen([corral, "up", "--data-dir", str(data_dir), "--port", "0", "--gateway-port", "-1"],
                            stdout=log, stderr=subprocess.STDOUT,
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
        "detect_s": round(figures["detect_s"], 3),
        "pods_running_s": round(figures["pods_running_s"], 3),
        "process_start_s": round(figures["recovery_s"] - figures["pods_running_s"], 3),
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
