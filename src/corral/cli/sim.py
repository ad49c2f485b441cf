"""``corral sim``: simulation commands (simulated nodes; trace replay)."""

from __future__ import annotations

import click

from corral.cli.sim_bound import bound_command
from corral.cli.sim_nodes import nodes_command
from corral.cli.sim_trace import trace_command


@click.group("sim")
def sim() -> None:
    """Simulation: simulated nodes through the API, trace replay in-process."""


sim.add_command(nodes_command)
sim.add_command(trace_command)
sim.add_command(bound_command)
