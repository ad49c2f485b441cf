"""``corral sim bound``: upper bounds on the GPU allocation any placement policy can reach in a
trace replay run (see :mod:`corral.sim.trace.bound` and docs/simulation.md)."""

from __future__ import annotations

import json

import click


@click.command("bound")
@click.option("--nodes", "nodes", required=True, type=click.Path(exists=True, dir_okay=False), help="Node list CSV (openb_node_list_gpu_node.csv).")
@click.option("--pods", "pods", required=True, type=click.Path(exists=True, dir_okay=False), help="Pod list CSV (openb_pod_list_<trace>.csv).")
@click.option("--seeds", "seeds", default="42", show_default=True, help="Seeds, e.g. 42-51 or 42,43.")
@click.option("--ratio", "ratio", default=1.3, show_default=True, type=click.FloatRange(0.1, 10.0),
              help="Inflate (or trim) the workload to this multiple of GPU capacity, as the replay does.")
@click.option("--anchors", "anchors", default=1, show_default=True, type=click.IntRange(0, 8),
              help="How many of the most common share classes to reason about (first-failure anchors).")
@click.option("--max-lps", "max_lps", default=60, show_default=True, type=click.IntRange(1, 10_000),
              help="LP budget per seed; every budget gives a valid bound, more gives a tighter one.")
def bound_command(*, nodes: str, pods: str, seeds: str, ratio: float, anchors: int, max_lps: int) -> None:
    """Print, per seed, the offline and place-if-it-fits allocation bounds (one JSON line each),
    then their means."""
    from corral.sim.trace.bound import summarise_bounds
    from corral.sim.trace.loaders import TraceFormatError, load_trace
    from corral.sim.trace.runner import parse_seeds

    try:
        seed_list = parse_seeds(seeds)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seeds") from None
    try:
        trace = load_trace(nodes, pods)
    except TraceFormatError as exc:
        raise click.ClickException(str(exc)) from None
    for line in summarise_bounds(trace, seed_list, ratio=ratio, anchors=anchors, max_lps=max_lps):
        click.echo(json.dumps(line))
