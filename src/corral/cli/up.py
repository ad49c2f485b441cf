"""``corral up``: run corral in the foreground as a list of components.

Each component is an object with ``async start()`` and ``async stop()`` (the
:class:`Component` protocol). The API server starts first; every other component
(scheduler, controllers, agent, gateway) is built by :func:`extra_components` from an
:class:`UpContext` that says where the API server is — add yours there, one line each.
Components start in order and stop in reverse order. ``corral up`` prints exactly one
line starting with ``corral is ready:`` once everything serves, and stops cleanly on
SIGINT/SIGTERM.

The API server serves HTTPS by default (``kubectl`` sends bearer tokens only over TLS)
with a self-signed certificate kept in ``DATA/tls`` unless ``--tls-cert/--tls-key`` name one.

Several ``corral up`` can run on one machine: each locks its data dir, takes the next free
port when a default one is taken, and its agent claims its own pod IP block
(:mod:`corral.cli.instance`); a failed start is one ``cannot start: <path>: <reason>`` line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import click
from click.core import ParameterSource

from corral.agent.agent import AgentComponent, AgentConfig
from corral.apiserver.server import ApiServer, ServerConfig
from corral.apiserver.services import DEFAULT_SERVICE_CIDR
from corral.cli.agent import validate_simulated
from corral.cli.instance import choose_port, claim_data_dir, ready_lines, startup_errors
from corral.controllers.gc import GarbageCollectorComponent
from corral.controllers.trainingjob.controller import TrainingJobComponent
from corral.controllers.workloads import WorkloadsComponent
from corral.gateway.component import InferenceComponent
from corral.util.clock import Clock, SystemClock
from corral.util.datadir import pod_root
from corral.util.locks import HeldLock


class Component(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class UpContext:
    """What components need to reach the API server."""

    data_dir: Path
    url: str
    token: str
    kubeconfig: Path
    clock: Clock
    node_name: str | None = None  # the agent's node (default: hostname)
    simulated_gpus: tuple[str, ...] = ()  # the agent's --simulated-gpus
    agent: bool = True  # run this machine's node agent
    scheduler_config: Path | None = None  # --scheduler-config
    gateway_port: int | None = 0  # the inference gateway's port (None: no gateway/InferenceService controller)
    gateway_port_fixed: bool = False  # given explicitly: in use is an error, not a move to the next free port


def extra_components(context: UpContext) -> list[Component]:
    """Components started after the API server, in order (one line per area)."""
    from corral.cli.scheduler import scheduler_component

    components: list[Component] = [scheduler_component(context.kubeconfig, context.scheduler_config, context.clock)]
    if context.agent:
        components.append(agent_component(context))
    if context.gateway_port is not None:
        components.append(InferenceComponent(context.kubeconfig, port=context.gateway_port, clock=context.clock,
                                             fallback_port=not context.gateway_port_fixed))
    components.append(GarbageCollectorComponent(context.kubeconfig))
    components.append(TrainingJobComponent(context.kubeconfig, data_dir=pod_root(context.data_dir), clock=context.clock))
    components.append(WorkloadsComponent(context.kubeconfig, clock=context.clock))
    return components


def agent_component(context: UpContext) -> Component:
    """This machine's node agent (pods as processes) and the node lifecycle controller."""
    config = AgentConfig(data_dir=context.data_dir / "agent", simulated_gpus=list(context.simulated_gpus),
                         pod_root=pod_root(context.data_dir))  # pods get nothing inside DATA (secrets)
    if context.node_name:
        config.node_name = context.node_name
    return AgentComponent(context.kubeconfig, config, context.clock)


def dashboard_url(context: UpContext) -> str:
    """The dashboard's address with the token in the fragment (browsers never send fragments)."""
    return f"{context.url}/dashboard/#token={context.token}"


@dataclass
class Running:
    api: ApiServer
    context: UpContext
    components: list[Component]
    data_dir_lock: HeldLock | None = None

    async def stop(self) -> None:
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception as exc:  # keep stopping the others
                print(f"corral: error while stopping {type(component).__name__}: {exc}", file=sys.stderr)
        if self.data_dir_lock is not None:
            self.data_dir_lock.release()


async def start_corral(data_dir: Path, *, host: str = "127.0.0.1", port: int = 6443, tls_cert: Path | None = None,
                       tls_key: Path | None = None, clock: Clock | None = None, tls: bool = True,
                       components: Callable[[UpContext], list[Component]] = extra_components,
                       node_name: str | None = None, simulated_gpus: tuple[str, ...] = (),
                       agent: bool = True, gateway_port: int | None = 0,
                       scheduler_config: Path | None = None, port_fixed: bool = True,
                       gateway_port_fixed: bool = False, service_cidr: str = DEFAULT_SERVICE_CIDR) -> Running:
    """Start the API server and every component; returns a handle to stop them.

    ``port_fixed=False``: a taken ``port`` is replaced by the next free one (``corral up``'s default).
    """
    clock = clock or SystemClock()
    data_dir = data_dir.expanduser()
    port = choose_port(host, port, explicit=port_fixed, option="--port", what="API server")  # before touching data
    if gateway_port and gateway_port_fixed:  # an explicit gateway port in use fails before anything starts
        choose_port("127.0.0.1", gateway_port, explicit=True, option="--gateway-port", what="gateway")
    data_dir_lock = claim_data_dir(data_dir)
    api = ApiServer(ServerConfig(data_dir=data_dir, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
                                   tls=tls, service_cidr=service_cidr), clock=clock)
    try:
        await api.start()
    except BaseException:
        data_dir_lock.release()
        raise
    kubeconfig = data_dir / "kubeconfig"
    api.write_kubeconfig(kubeconfig)
    context = UpContext(data_dir, api.url, api.token, kubeconfig, clock, node_name=node_name,
                        simulated_gpus=tuple(simulated_gpus), agent=agent, gateway_port=gateway_port,
                        scheduler_config=scheduler_config, gateway_port_fixed=gateway_port_fixed)
    running = Running(api, context, [api], data_dir_lock)
    try:
        for component in components(context):
            await component.start()
            running.components.append(component)
            # A component's own Prometheus registries are served on the API server's /metrics.
            for registry in getattr(component, "metrics_registries", list)():
                api.metrics.register(registry)
            # ... and its readiness checks (supervised loops that crash-loop) on /readyz.
            for name, check in getattr(component, "health_checks", dict)().items():
                api.health.add(name, check)
    except BaseException:
        await running.stop()
        raise
    return running


async def run_until_signal(running: Running, after_ready: Callable[[Running], Awaitable[None]] | None = None) -> None:
    """Wait for SIGINT/SIGTERM (or for ``after_ready`` to finish), then stop everything."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if after_ready is not None:
            task = asyncio.ensure_future(after_ready(running))
            waiter = asyncio.ensure_future(stop.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not task.done():
                task.cancel()
            elif task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        else:
            await stop.wait()
    finally:
        # A second SIGTERM (a supervisor, or `timeout` forwarding one) must not kill this
        # process halfway through stopping, leaving pods' processes behind: while stopping
        # (bounded by the agent's shutdown grace) it is reported, and afterwards, with
        # nothing left to stop, ignored while the process exits.
        def again() -> None:
            print("corral: already stopping (pods get their grace period)", file=sys.stderr)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, again)
        try:
            await running.stop()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)


async def _up(data_dir: Path, *, host: str, port: int, tls_cert: Path | None, tls_key: Path | None, tls: bool,
              node_name: str | None = None, simulated_gpus: tuple[str, ...] = (), agent: bool = True,
              gateway_port: int | None = 8080,
              scheduler_config: Path | None = None, apiserver_only: bool = False,
              port_fixed: bool = True, gateway_port_fixed: bool = True,
              service_cidr: str = DEFAULT_SERVICE_CIDR) -> None:
    running = await start_corral(data_dir, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, tls=tls,
                                 node_name=node_name, simulated_gpus=simulated_gpus, agent=agent,
                                 gateway_port=gateway_port,
                                 scheduler_config=scheduler_config, service_cidr=service_cidr,
                                 components=(lambda _: []) if apiserver_only else extra_components,
                                 port_fixed=port_fixed, gateway_port_fixed=gateway_port_fixed)
    print(f"corral is ready: {running.context.url} (kubeconfig: {running.context.kubeconfig})", flush=True)
    for line in ready_lines(running.components):
        print(line, flush=True)
    print(f"dashboard: {dashboard_url(running.context)}", flush=True)
    await run_until_signal(running)


def validate_cidr(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return str(ipaddress.ip_network(value))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a network address range such as 10.96.0.0/16 ({exc})") from None


@click.command("up")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("~/.corral"), show_default=True,
              help="Where corral keeps its database, tokens, kubeconfig and logs.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=6443, show_default=True,
              help="Port of the API server (0: any free port). The default, when taken, becomes the next free port.")
@click.option("--tls-cert", type=click.Path(path_type=Path, exists=True), default=None, help="Serve HTTPS with this certificate.")
@click.option("--tls-key", type=click.Path(path_type=Path, exists=True), default=None, help="Private key of --tls-cert.")
@click.option("--no-tls", is_flag=True, help="Serve plain HTTP (kubectl then sends no token: use raw HTTP clients).")
@click.option("--node-name", default=None, help="Name of this machine's node (default: the hostname).")
@click.option("--simulated-gpus", multiple=True, callback=validate_simulated,
              help="Declare simulated GPUs on this node, COUNTxMODEL (e.g. 8xH100-80GB); repeatable.")
@click.option("--no-agent", is_flag=True, help="Do not run pods on this machine (no node agent).")
@click.option("--gateway-port", type=int, default=8080, show_default=True,
              help="Port of the inference gateway (0: any free port; -1: no gateway). "
                   "The default, when taken, becomes the next free port.")
@click.option("--scheduler-config", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="SchedulerConfiguration YAML: profiles, plugins, weights, bind concurrency (docs/scheduling.md).")
@click.option("--service-cidr", default=DEFAULT_SERVICE_CIDR, show_default=True, callback=validate_cidr,
              help="Range Services' cluster IPs are allocated from.")
@click.option("--apiserver-only", is_flag=True, help="Run the API server alone (no other component; for benchmarks and tests).")
def up(data_dir: Path, host: str, port: int, tls_cert: Path | None, tls_key: Path | None, no_tls: bool,  # noqa: PLR0917
       node_name: str | None = None, simulated_gpus: tuple[str, ...] = (), no_agent: bool = False,
       gateway_port: int = 8080,
       scheduler_config: Path | None = None, apiserver_only: bool = False,
       service_cidr: str = DEFAULT_SERVICE_CIDR) -> None:
    """Run corral in the foreground (API server and components); Ctrl-C stops it."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if scheduler_config is not None:
        from corral.cli.scheduler import check_scheduler_config

        check_scheduler_config(scheduler_config)
    given = click.get_current_context().get_parameter_source
    with startup_errors():
        asyncio.run(_up(data_dir, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, tls=not no_tls,
                        node_name=node_name, simulated_gpus=tuple(simulated_gpus), agent=not no_agent,
                        gateway_port=None if gateway_port < 0 else gateway_port,
                        scheduler_config=scheduler_config, apiserver_only=apiserver_only,
                        port_fixed=given("port") != ParameterSource.DEFAULT,
                        gateway_port_fixed=given("gateway_port") != ParameterSource.DEFAULT,
                        service_cidr=service_cidr))
