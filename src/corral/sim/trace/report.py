"""Write a replay summary: ``summary.json``, ``curves.csv`` and PNG plots (matplotlib Agg)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from corral.sim.trace.runner import PAPER_NAMES


def public_summary(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if not k.startswith("_")}


def write_outputs(summary: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    path = out / "summary.json"
    path.write_text(json.dumps(public_summary(summary), indent=2) + "\n")
    written.append(path)
    curves: dict[str, Any] = summary.get("_curves", {})
    n_seeds = len(summary.get("seeds", []))
    csv_path = out / "curves.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["trace", "policy", "arrived_pct", "alloc_ratio_mean", "alloc_ratio_std", "frag_ratio_mean",
                    "frag_amount_mean", "unallocated_gpus_mean", "seeds"])
        for policy, c in curves.items():
            for x in sorted(c["alloc_ratio"]):
                a, sd = c["alloc_ratio"][x]
                w.writerow([summary["trace"], PAPER_NAMES.get(policy, policy), x, round(a, 3), round(sd, 3),
                            round(c["frag_ratio"].get(x, (0.0, 0.0))[0], 3), round(c["frag_amount"].get(x, (0.0, 0.0))[0], 3),
                            round(100 - a, 3), n_seeds])
    written.append(csv_path)
    written.extend(_plots(summary, curves, out))
    return written


def _plots(summary: dict[str, Any], curves: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for metric, label, fname in (
        ("alloc_ratio", "GPU allocation ratio (%)", "alloc_ratio.png"),
        ("frag_ratio", "GPU fragmentation ratio (% of idle GPUs)", "frag_ratio.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for policy, c in curves.items():
            xs = sorted(c[metric])
            ax.plot(xs, [c[metric][x][0] for x in xs], label=PAPER_NAMES.get(policy, policy))
        ax.set_xlabel("Arrived workload (% of GPU capacity)")
        ax.set_ylabel(label)
        ax.set_title(f"{summary['trace']}: mean over {len(summary.get('seeds', []))} seed(s)")
        if metric == "alloc_ratio":
            ax.set_xlim(80, 131)
            ax.set_ylim(80, 100)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
