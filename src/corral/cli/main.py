"""The ``corral`` command: one click group, one module per subcommand family.

Each subcommand lives in its own module under ``corral.cli`` and is attached
here, so commands can grow without touching each other.
"""

from __future__ import annotations

import click

from corral import __version__
from corral.cli.agent import agent_command
from corral.cli.crds import crds_command
from corral.cli.demo import demo
from corral.cli.explain import explain_command
from corral.cli.gateway import gateway_command
from corral.cli.logs import logs
from corral.cli.scheduler import scheduler_command
from corral.cli.sim import sim
from corral.cli.up import up


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="corral")
def cli() -> None:
    """corral: the AI layer of Kubernetes — GPUs, queues, training and inference on one machine or a cluster."""


cli.add_command(up)
cli.add_command(demo)
cli.add_command(scheduler_command)
cli.add_command(explain_command)
cli.add_command(sim)
cli.add_command(agent_command)
cli.add_command(logs)
cli.add_command(gateway_command)
cli.add_command(crds_command)


def main() -> None:
    """Console-script entry point."""
    cli()
