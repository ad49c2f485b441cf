"""``corral sim nodes``: simulated GPU nodes registered through the API (see corral.sim.nodes)."""

from __future__ import annotations

import asyncio
import logging

import click

from corral.cli.scheduler import run_until_stopped
from corral.client import ApiClient, KubeconfigError
from corral.sim.nodes import SimNodes, SimNodeSpec, SimSpecError, parse_labels


@click.command("nodes")
@click.option("--count", type=click.IntRange(min=0), required=True, help="How many nodes.")
@click.option("--gpus", type=click.IntRange(min=0), default=8, show_default=True, help="GPUs per node.")
@click.option("--gpu-model", default="H100-80GB", show_default=True, help="GPU model, e.g. H100-80GB, A100-40GB, L4.")
@click.option("--name-prefix", default="sim-node", show_default=True, help="Nodes are named PREFIX-0, PREFIX-1, ...")
@click.option("--start-index", type=click.IntRange(min=0), default=0, show_default=True, help="Number of the first node.")
@click.option("--mig", default=None, help="Partition every GPU into MIG slices of this profile (e.g. 1g.10gb).")
@click.option("--labels", default="", help="Extra node labels, k=v,k2=v2.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), envvar="KUBECONFIG", default=None,
              help="kubeconfig of the API server (default $KUBECONFIG or ~/.kube/config).")
@click.option("--lease-interval", type=float, default=None,
              help="Seconds between renewals of each node's Lease (default max(10, count/50)).")
@click.option("--workers", type=click.IntRange(min=1), default=16, show_default=True,
              help="Concurrent pod status updates.")
@click.option("--delete-on-exit", is_flag=True, help="Delete the nodes when stopped.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def nodes_command(*, count: int, gpus: int, gpu_model: str, name_prefix: str, start_index: int, mig: str | None,
                  labels: str, kubeconfig: str | None, lease_interval: float | None, workers: int,
                  delete_on_exit: bool, verbose: bool) -> None:
    """Register simulated GPU nodes and play kubelet for their pods until interrupted.

    Bound pods are marked Running; with annotation corral.dev/sim-duration (e.g. "30s")
    they are marked Succeeded after that time. Deleted pods are finished at once.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        spec = SimNodeSpec(count=count, gpus=gpus, gpu_model=gpu_model, name_prefix=name_prefix, mig=mig,
                           labels=parse_labels(labels), start_index=start_index)
    except SimSpecError as error:
        raise click.BadParameter(str(error)) from None

    async def main() -> None:
        try:
            client = ApiClient.from_kubeconfig(kubeconfig)
        except KubeconfigError as error:
            raise click.ClickException(str(error)) from None
        sim = SimNodes(client, [spec], workers=workers, lease_interval=lease_interval)

        async def start() -> None:
            await sim.start()
            click.echo(f"{count} simulated node(s) {name_prefix}-{start_index}..{name_prefix}-{start_index + count - 1} "
                       f"with {gpus}x {gpu_model} registered at {client.server}; Ctrl-C stops", err=True)

        async def stop() -> None:
            await sim.stop()
            if delete_on_exit:
                await sim.unregister()
            await client.close()

        await run_until_stopped(start, stop)

    asyncio.run(main())
