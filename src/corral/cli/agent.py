"""``corral agent``: run the node agent alone against any API server.

``corral up`` runs the agent in-process; this command runs it as its own process
(for a second node on the same machine, or against a cluster's API server):

    corral agent --kubeconfig DATA/kubeconfig --node-name gpu-box --simulated-gpus 2xA100-40GB

It stops its pods on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
from pathlib import Path

import click

from corral.agent.agent import Agent, AgentConfig
from corral.agent.gpus import GpuSpecError, parse_simulated
from corral.agent.node import default_node_name
from corral.cli.instance import startup_errors
from corral.client import ApiClient
from corral.util.quantity import QuantityError, to_int


def validate_simulated(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    specs = [part for item in value for part in item.split(",") if part.strip()]
    for spec in specs:
        try:
            parse_simulated(spec)
        except GpuSpecError as error:
            raise click.BadParameter(str(error)) from None
    return specs


@click.command("agent")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="kubeconfig of the API server (default: $KUBECONFIG or ~/.kube/config).")
@click.option("--data-dir", type=click.Path(file_okay=False), default="./corral-agent-data", show_default=True,
              help="Where pod logs, pid files and checkpoints live.")
@click.option("--node-name", default=None, help="Node name (default: this machine's hostname).")
@click.option("--simulated-gpus", multiple=True, callback=validate_simulated,
              help="Declare simulated GPUs, COUNTxMODEL (e.g. 8xH100-80GB); repeatable.")
@click.option("--no-gpu-discovery", is_flag=True, help="Do not query NVML for real GPUs.")
@click.option("--heartbeat-interval", type=float, default=10.0, show_default=True, help="Lease renewal period (s).")
@click.option("--lease-duration", type=int, default=40, show_default=True, help="leaseDurationSeconds of the Lease.")
@click.option("--backoff-initial", type=float, default=10.0, show_default=True, help="First CrashLoopBackOff delay (s).")
@click.option("--backoff-max", type=float, default=300.0, show_default=True, help="Largest CrashLoopBackOff delay (s).")
@click.option("--listen-host", default="127.0.0.1", show_default=True, help="Address of the agent's log endpoint.")
@click.option("--listen-port", type=int, default=0, help="Port of the log endpoint (default: any free port).")
@click.option("--max-pods", type=int, default=250, show_default=True, help="The node's pods capacity.")
@click.option("--pod-cidr", default=None,
              help="Loopback block for pod IPs, e.g. 127.42.0.0/16 (default: a /16 no other agent on this machine holds).")
@click.option("--container-log-max-size", default="10Mi", show_default=True,
              help="Rotate a container's log when it reaches this size (a quantity, e.g. 10Mi).")
@click.option("--container-log-max-files", type=click.IntRange(min=2), default=5, show_default=True,
              help="Log files kept per container run, the current one included.")
def agent_command(*, kubeconfig: str | None, data_dir: str, node_name: str | None, simulated_gpus: list[str],
                  no_gpu_discovery: bool, heartbeat_interval: float, lease_duration: int, backoff_initial: float,
                  backoff_max: float, listen_host: str, listen_port: int, max_pods: int,
                  pod_cidr: str | None, container_log_max_size: str, container_log_max_files: int) -> None:
    """Run this machine's node agent: register the node, run its pods as processes, serve their logs."""
    if pod_cidr is not None:
        try:
            block = ipaddress.IPv4Network(pod_cidr)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--pod-cidr") from None
        if not block.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise click.BadParameter(f"{pod_cidr} is not inside 127.0.0.0/8", param_hint="--pod-cidr")
    try:
        log_max_size = to_int(container_log_max_size)
    except QuantityError as error:
        raise click.BadParameter(str(error), param_hint="--container-log-max-size") from None
    if log_max_size < 1024:
        raise click.BadParameter("must be at least 1Ki", param_hint="--container-log-max-size")
    config = AgentConfig(data_dir=Path(data_dir).resolve(), node_name=node_name or default_node_name(),
                         simulated_gpus=simulated_gpus, discover_gpus=not no_gpu_discovery,
                         heartbeat_interval=heartbeat_interval, lease_duration=lease_duration,
                         backoff_initial=backoff_initial, backoff_max=backoff_max, listen_host=listen_host,
                         listen_port=listen_port, max_pods=max_pods, pod_cidr=pod_cidr,
                         container_log_max_size=log_max_size, container_log_max_files=container_log_max_files)
    with startup_errors():
        asyncio.run(_run(kubeconfig, config))


async def _run(kubeconfig: str | None, config: AgentConfig) -> None:
    client = ApiClient.from_kubeconfig(kubeconfig)
    agent = Agent(client, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await agent.start()
        click.echo(f"corral agent: node {config.node_name} registered; logs endpoint on "
                   f"{config.listen_host}:{agent.port}; pod IPs {agent.pod_block.network if agent.pod_block else '-'}; "
                   f"{agent.gpu_message or 'no GPUs'}; {agent.limits_message}")
        await stop.wait()
    finally:
        await agent.stop()
        await client.close()
