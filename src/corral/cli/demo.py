"""``corral demo``: start corral in a fresh temporary data dir and tell its story.

The story (:mod:`corral.cli.story`) runs real work end to end — queues, a DDP training
job with preemption and self-healing, an inference service from zero with a canary —
and prints each step as it happens and a summary. Afterwards corral keeps running with
the dashboard URL printed until Ctrl-C; ``--once`` exits instead: 0 when every step
succeeded, 1 with the failed step named otherwise (what ``make demo DEMO_ARGS=--once``
and the tests run).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console

from corral.agent.gpus import discover_nvml
from corral.cli.story import Story, StoryFailedError, start_sim_nodes
from corral.cli.up import Running, dashboard_url, run_until_signal, start_corral
from corral.client import ApiClient
from corral.gateway.component import InferenceComponent
from corral.util.datadir import pod_root

DEMO_NODE = "corral-box"


def repository_root() -> Path:
    """The checkout holding ``examples/`` (the working directory first, then this package's)."""
    here = Path.cwd()
    if (here / "examples").is_dir():
        return here
    return Path(__file__).resolve().parents[3]


def gateway_url(running: Running) -> str:
    for component in running.components:
        if isinstance(component, InferenceComponent):
            return component.url
    raise click.ClickException("corral started without its gateway")


async def _demo(once: bool, port: int, gateway_port: int) -> int:
    console = Console(highlight=False, soft_wrap=True)
    repo = repository_root()
    devices, message = discover_nvml()
    simulated: tuple[str, ...] = ()
    if not devices:
        simulated = ("8xH100-80GB",)
        console.print(f"[yellow]No NVIDIA GPU here ({message}).[/yellow] This machine's node declares 8 simulated "
                      "H100-80GB GPUs, labelled corral.dev/simulated-gpus=true: scheduling, quotas and isolation "
                      "variables are real, the devices are not.")
    # The agent runs pods' commands on this host: put this interpreter (with torch and
    # scikit-learn) first on PATH so `python3` in manifests finds them.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with tempfile.TemporaryDirectory(prefix="corral-demo-") as data_dir, contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, pod_root(Path(data_dir)), ignore_errors=True)  # the pods' dirs, beside it
        running = await start_corral(Path(data_dir), port=port, node_name=DEMO_NODE, simulated_gpus=simulated,
                                     gateway_port=gateway_port)
        console.print(f"corral is ready: {running.context.url} (kubeconfig: {running.context.kubeconfig})")
        console.print(f"dashboard: {dashboard_url(running.context)}")
        console.print(f"gateway: {gateway_url(running)}")
        outcome = 0

        async def story(running: Running) -> None:
            nonlocal outcome
            async with ApiClient.from_kubeconfig(running.context.kubeconfig) as client:
                sim = await start_sim_nodes(client)
                try:
                    await Story(client, running.context.kubeconfig, gateway_url=gateway_url(running), repo=repo,
                                node=DEMO_NODE, console=console, simulated=bool(simulated)).run()
                    console.print("[bold green]The demo's every step succeeded.[/bold green]")
                except StoryFailedError as error:
                    console.print(f"[bold red]demo failed:[/bold red] {error}")
                    outcome = 1
                if not once:
                    console.print(f"corral keeps running. Dashboard: {dashboard_url(running.context)}\n"
                                  f"Try: KUBECONFIG={running.context.kubeconfig} kubectl get pods -A\nCtrl-C stops it.")
                    await asyncio.Event().wait()
                await sim.stop()

        await run_until_signal(running, story)
        return outcome


@click.command("demo")
@click.option("--once", is_flag=True, help="Exit after the story: 0 when every step succeeded (for tests).")
@click.option("--port", type=int, default=0, show_default=True, help="API server port (0: any free port).")
@click.option("--gateway-port", type=int, default=0, show_default=True, help="Gateway port (0: any free port).")
def demo(once: bool, port: int, gateway_port: int) -> None:
    """Start corral in a temporary data dir and run its story: queues, training, serving, canary."""
    if shutil.which("kubectl") is None:
        raise click.ClickException("corral demo shows its results with kubectl, which is not on PATH")
    code = asyncio.run(_demo(once, port, gateway_port))
    sys.stdout.flush()
    if code:
        sys.exit(code)
