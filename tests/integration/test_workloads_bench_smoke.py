"""Smoke run of ``bench/workloads.py`` with 30 replicas: one JSON line with both timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "workloads.py"


def test_workloads_bench_prints_one_line() -> None:
    done = subprocess.run([sys.executable, str(BENCH)], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "BENCH_WORKLOADS_REPLICAS": "30"})
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    out = json.loads(lines[0])
    assert out["replicas"] == 30
    assert 0 < out["available_s"] < 60 and 0 < out["rolling_update_s"] < 60
