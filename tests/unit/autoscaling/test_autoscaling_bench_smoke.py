"""Smoke run of ``bench/autoscaling_replay.py`` on the first 3,000 requests of the GenTD26 trace
(reads ../shared): one JSON line, and corral's default beats KPA's defaults on both counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_shared

BENCH = Path(__file__).resolve().parents[3] / "bench" / "autoscaling_replay.py"
TRACE = "data/alibaba-genai-2026/lora_request_trace.csv"


def test_autoscaling_replay_prints_one_line_and_corral_beats_kpa_on_a_prefix() -> None:
    shared = require_shared(TRACE)
    done = subprocess.run([sys.executable, str(BENCH), "--requests", "3000"], capture_output=True, text=True,
                          timeout=300, check=True, env={**os.environ, "CORRAL_SHARED": str(shared)})
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    out = json.loads(lines[0])
    assert out["requests"] == 3000
    fixed, kpa, corral = out["fixed_peak"], out["knative_kpa"], out["corral"]
    assert fixed["slo_attainment"] == 1.0 and fixed["wait_p99_s"] == 0.0
    assert corral["max_hedged_starts"] > 1
    assert corral["slo_attainment"] >= kpa["slo_attainment"]
    assert corral["replica_hours"] < 0.85 * kpa["replica_hours"] < fixed["replica_hours"]
    constant = out["constant_cold_start"]
    # No hedge is possible with constant cold starts: corral's default buys attainment with spares.
    assert constant["corral"]["slo_attainment"] > constant["knative_kpa_50"]["slo_attainment"]
