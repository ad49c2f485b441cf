"""``corral sim trace``: replay a published GPU-cluster trace through corral's scheduler
plugins, in-process (see docs/simulation.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


@click.command("trace")
@click.option("--nodes", "nodes", required=True, type=click.Path(exists=True, dir_okay=False), help="Node list CSV (openb_node_list_gpu_node.csv).")
@click.option("--pods", "pods", required=True, type=click.Path(exists=True, dir_okay=False), help="Pod list CSV (openb_pod_list_<trace>.csv).")
@click.option("--policy", "policy", default="fgd,corral", show_default=True,
              help="Comma-separated score policies: random, dotprod, gpu-clustering, gpu-packing, bestfit, fgd, corral.")
@click.option("--seeds", "seeds", default="42", show_default=True, help="Seeds, e.g. 42-51 or 42,43.")
@click.option("--jobs", "jobs", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False), help="Directory for summary.json, curves.csv and plots.")
@click.option("--ratio", "ratio", default=1.3, show_default=True, type=click.FloatRange(0.1, 10.0),
              help="Inflate (or trim) the workload to this multiple of GPU capacity.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
def trace_command(*, nodes: str, pods: str, policy: str, seeds: str, jobs: int, out: str | None, ratio: float, as_json: bool) -> None:
    """Replay a GPU-sharing trace (FGD protocol) for each policy and seed."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from corral.scheduler.plugins import POLICIES
    from corral.sim.trace.loaders import TraceFormatError, load_trace
    from corral.sim.trace.metrics import POINTS
    from corral.sim.trace.report import public_summary, write_outputs
    from corral.sim.trace.runner import PAPER_NAMES, parse_seeds, run_all

    policies = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or not policies:
        raise click.BadParameter(f"unknown policy {', '.join(unknown) or '(none)'}; known: {', '.join(POLICIES)}", param_hint="--policy")
    try:
        seed_list = parse_seeds(seeds)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seeds") from None
    try:
        load_trace(nodes, pods)  # fail fast on a bad file, before spawning workers
    except TraceFormatError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console(stderr=as_json)
    console = Console(stderr=as_json, width=max(console.width, 150))
    total = len(policies) * len(seed_list)
    with Progress(TextColumn("[bold]replay[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=Console(stderr=True), transient=as_json) as progress:
        task = progress.add_task("", total=total)

        def done(r: dict[str, Any]) -> None:
            progress.update(task, advance=1, description=f"{r['policy']} seed {r['seed']}: {r['seconds']:.1f}s")

        summary = run_all(nodes, pods, policies, seed_list, jobs=jobs, ratio=ratio, on_done=done)
    if out:
        write_outputs(summary, Path(out))
    if as_json:
        sys.stdout.write(json.dumps(public_summary(summary)) + "\n")
        return
    table = Table(title=f"{summary['trace']}: GPU allocation ratio %, mean ± std over {len(seed_list)} seed(s)")
    table.add_column("policy")
    for x in POINTS:
        table.add_column(f"{x}%", justify="right")
    table.add_column("frag % @130", justify="right")
    table.add_column("unalloc % @130", justify="right")
    table.add_column("s/run", justify="right")
    for p, e in summary["policies"].items():
        cells = [f"{e['alloc_ratio'].get(str(x), float('nan')):.2f} ± {e['alloc_ratio_std'].get(str(x), 0.0):.2f}" for x in POINTS]
        table.add_row(PAPER_NAMES.get(p, p), *cells, f"{e['frag_ratio'].get('130', float('nan')):.2f}",
                      f"{e['unallocated_gpus'].get('130', float('nan')):.2f}", f"{e['seconds_per_run']:.1f}")
    console.print(table)
    console.print(f"{total} run(s) in {summary['seconds']:.1f}s" + (f"; wrote {out}/summary.json, curves.csv, alloc_ratio.png, frag_ratio.png" if out else ""))
