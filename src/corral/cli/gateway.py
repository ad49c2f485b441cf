"""``corral gateway``: run the inference gateway alone against any Kubernetes API.

``corral up`` runs the gateway as one of its components, on the event loop it shares
with everything else. This command runs it by itself — as a Deployment would on a real
cluster — on its own event loop: uvloop by default (``--loop asyncio`` for the standard
one). It watches InferenceServices and their pods through the API; the
InferenceService controller reads its load from ``<gateway>/_corral/feed`` over HTTP.
Requests for a service with no ready replica are held until one is (the controller
sees them queued in the feed and scales up).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import click
from click.core import ParameterSource

from corral.cli.instance import choose_port, startup_errors
from corral.cli.scheduler import run_until_stopped
from corral.client import ApiClient, KubeconfigError
from corral.client.tokenreview import TokenCheck
from corral.gateway.server import Gateway


def run_loop(main: Any, loop: str) -> None:
    """Run ``main()`` on uvloop or on asyncio's default loop."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


@click.command("gateway")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), envvar="KUBECONFIG", default=None,
              help="kubeconfig of the API server (default $KUBECONFIG, ~/.kube/config, or in-cluster).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True,
              help="Port to listen on (0: any free port). The default, when taken, becomes the next free port.")
@click.option("--namespace", default=None, help="Serve this namespace's InferenceServices only (default: all).")
@click.option("--loop", type=click.Choice(["uvloop", "asyncio"]), default="uvloop", show_default=True,
              help="Event loop implementation.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def gateway_command(kubeconfig: str | None, host: str, port: int, namespace: str | None, loop: str,  # noqa: PLR0917
                    verbose: bool) -> None:
    """Run corral's inference gateway until interrupted."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    explicit = click.get_current_context().get_parameter_source("port") != ParameterSource.DEFAULT
    with startup_errors():
        port_choice = choose_port(host, port, explicit=explicit, option="--port", what="gateway")

    async def main() -> None:
        try:
            client = ApiClient.from_kubeconfig(kubeconfig)
        except KubeconfigError as error:
            raise click.ClickException(str(error)) from None
        gateway = Gateway(host=host, port=port_choice, token_check=TokenCheck.for_client(client))

        async def start() -> None:
            await gateway.start()
            await gateway.watch_api(client, namespace)
            click.echo(f"corral gateway: {gateway.url} (routes from {client.server}); Ctrl-C stops it", err=True)

        async def stop() -> None:
            await gateway.stop()
            await client.close()

        await run_until_stopped(start, stop)

    with startup_errors():
        run_loop(main, loop)
