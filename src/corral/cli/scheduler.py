"""``corral scheduler``: run corral's scheduler alone against any Kubernetes API.

``corral up`` runs the scheduler as one of its components; this command runs it by
itself, e.g. beside kube-scheduler on a real cluster (pods naming another
``schedulerName`` are left alone), until interrupted. It runs queue admission (quota, fair
share) as ``corral up`` does when the server serves corral's ``Queue`` kind, and the plain
scheduler when it does not (a cluster without corral's CRDs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

import click
from prometheus_client import CollectorRegistry

from corral.client import ApiClient, ApiError, KubeconfigError
from corral.scheduler.framework.profile import ConfigError
from corral.scheduler.quota.component import QueuedScheduler
from corral.scheduler.service import SchedulerConfig, SchedulerService
from corral.util.clock import Clock
from corral.util.supervise import HealthCheck

log = logging.getLogger(__name__)
QUEUE_API_VERSION = "corral.dev/v1alpha1"


def check_scheduler_config(path: Path) -> SchedulerConfig:
    """Load a SchedulerConfiguration or fail the command with the error naming the field."""
    try:
        return SchedulerConfig.load(path)
    except ConfigError as error:
        raise click.ClickException(f"--scheduler-config: {error}") from None


class SchedulerComponent:
    """corral's one scheduler inside ``corral up``: the live scheduler with queue admission
    (:class:`~corral.scheduler.quota.component.QueuedScheduler`; without Queue objects it is
    the plain scheduler), talking to the API server through the kubeconfig ``corral up`` wrote."""

    def __init__(self, kubeconfig: Path, config: SchedulerConfig, clock: Clock) -> None:
        self.kubeconfig = kubeconfig
        self.config = config
        self.clock = clock
        self.client: ApiClient | None = None
        self.scheduler: QueuedScheduler | None = None

    async def start(self) -> None:
        self.client = ApiClient.from_kubeconfig(self.kubeconfig)
        self.scheduler = QueuedScheduler(self.client, config=self.config, clock=self.clock)
        await self.scheduler.start()

    def metrics_registries(self) -> list[CollectorRegistry]:
        """The queue metrics (``corral_queue_*``), served by ``corral up`` on the API server's ``/metrics``."""
        return [self.scheduler.queues.metrics.registry] if self.scheduler is not None else []

    def health_checks(self) -> dict[str, HealthCheck]:
        """Readiness of its supervised loops, on the API server's ``/readyz``."""
        return self.scheduler.health_checks() if self.scheduler is not None else {}

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.client is not None:
            await self.client.close()


def scheduler_component(kubeconfig: Path, config_path: Path | None, clock: Clock) -> SchedulerComponent:
    config = SchedulerConfig.load(config_path) if config_path is not None else SchedulerConfig()
    return SchedulerComponent(kubeconfig, config, clock)


async def run_until_stopped(start: object, stop: object) -> None:
    """Await ``start()``, then wait for SIGINT/SIGTERM, then await ``stop()``."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopped.set)
    await start()  # type: ignore[operator]
    try:
        await stopped.wait()
    finally:
        await stop()  # type: ignore[operator]


async def build_scheduler(client: ApiClient, config: SchedulerConfig, scheduler_name: str = "corral",
                          clock: Clock | None = None) -> QueuedScheduler | SchedulerService:
    """The scheduler with queue admission when the server serves corral's ``Queue`` kind (corral's
    own API server, or a cluster with corral's CRDs installed); the plain scheduler otherwise (a
    cluster without the CRDs), saying so. Other discovery errors are raised."""
    try:
        await client.resource_for_kind(QUEUE_API_VERSION, "Queue")
    except ApiError as error:
        if not error.not_found:
            raise
        log.warning("the server has no %s Queue kind (corral's CRDs are not installed): "
                    "scheduling without queue admission", QUEUE_API_VERSION)
        return SchedulerService(client, config=config, clock=clock, scheduler_name=scheduler_name)
    return QueuedScheduler(client, config=config, clock=clock, scheduler_name=scheduler_name)


@click.command("scheduler")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), envvar="KUBECONFIG", default=None,
              help="kubeconfig of the API server (default $KUBECONFIG, ~/.kube/config, or in-cluster).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="SchedulerConfiguration YAML (profiles, plugins, weights, bind concurrency).")
@click.option("--scheduler-name", default="corral", show_default=True,
              help="Pods with this spec.schedulerName (or none) are ours.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def scheduler_command(kubeconfig: str | None, config_path: str | None, scheduler_name: str, verbose: bool) -> None:
    """Run corral's GPU-aware scheduler until interrupted."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = SchedulerConfig.load(config_path, scheduler_name) if config_path else SchedulerConfig()
    except ConfigError as error:
        raise click.ClickException(f"--config: {error}") from None

    async def main() -> None:
        try:
            client = ApiClient.from_kubeconfig(kubeconfig)
        except KubeconfigError as error:
            raise click.ClickException(str(error)) from None
        try:
            service = await build_scheduler(client, config, scheduler_name)
        except (ApiError, OSError) as error:
            await client.close()
            raise click.ClickException(f"cannot reach the API server at {client.server}: {error}") from None

        async def stop() -> None:
            await service.stop()
            await client.close()

        mode = "with queue admission" if isinstance(service, QueuedScheduler) else "without queue admission"
        click.echo(f"corral scheduler ({scheduler_name}, {mode}) running against {client.server}; Ctrl-C stops it",
                   err=True)
        await run_until_stopped(service.start, stop)

    asyncio.run(main())
