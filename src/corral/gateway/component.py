"""The inference component of ``corral up``: gateway + InferenceService controller + autoscaler.

One object with ``start()``/``stop()``. It connects to the API server with the
kubeconfig ``corral up`` wrote, starts the gateway (``--gateway-port``; when
the default port is taken — another corral on this machine — it listens on the
next free port and says so; a port given explicitly is never replaced), the
InferenceService controller with corral's autoscaler, and wires the two: the
gateway's activator pokes the controller, and the controller reads the
gateway's metrics feed in-process (on a real cluster it reads
``<gateway>/_corral/feed`` over HTTP instead).
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Any

from corral.autoscaling.autoscaler import Autoscaler
from corral.client import ApiClient
from corral.client.tokenreview import TokenCheck
from corral.controllers.inferenceservice import InferenceServiceController
from corral.gateway.server import Gateway
from corral.util.clock import Clock, SystemClock
from corral.util.ports import PortInUseError, next_free_port
from corral.util.supervise import HealthCheck


class InferenceComponent:
    def __init__(self, kubeconfig: Path, *, host: str = "127.0.0.1", port: int = 8080, clock: Clock | None = None,
                 tick: float = 2.0, fallback_port: bool = True) -> None:
        self.kubeconfig = kubeconfig
        self.host = host
        self.port = port
        self.clock = clock or SystemClock()
        self.tick = tick
        self.fallback_port = fallback_port
        self.client: ApiClient | None = None
        self.gateway: Gateway | None = None
        self.controller: InferenceServiceController | None = None

    @property
    def url(self) -> str:
        return self.gateway.url if self.gateway is not None else ""

    async def start(self) -> None:
        self.client = ApiClient.from_kubeconfig(self.kubeconfig)
        check = TokenCheck.for_client(self.client, clock=self.clock)
        self.gateway = Gateway(host=self.host, port=self.port, clock=self.clock, token_check=check)
        try:
            await self.gateway.start()
        except OSError as error:
            if error.errno != errno.EADDRINUSE or not self.port:
                raise
            if not self.fallback_port:
                raise PortInUseError(self.host, self.port, "--gateway-port") from None
            await self.gateway.stop()
            self.gateway = Gateway(host=self.host, port=next_free_port(self.host, self.port + 1), clock=self.clock,
                                   token_check=check)
            await self.gateway.start()
            print(f"corral: gateway port {self.port} is in use; the gateway listens on port {self.gateway.port}",
                  file=sys.stderr)
        gateway = self.gateway

        async def feed() -> dict[str, Any]:
            return gateway.feed()

        self.controller = InferenceServiceController(
            self.client, Autoscaler(tick=self.tick), gateway_url=gateway.url, feed=feed, clock=self.clock,
            tick=self.tick)
        gateway.on_activate = self.controller.activate
        await gateway.watch_api(self.client)
        await self.controller.start()

    def health_checks(self) -> dict[str, HealthCheck]:
        """The InferenceService controller's workers and autoscaler loop (``/readyz``)."""
        return self.controller.controller.health_checks() if self.controller is not None else {}

    async def stop(self) -> None:
        if self.controller is not None:
            await self.controller.stop()
        if self.gateway is not None:
            await self.gateway.stop()
        if self.client is not None:
            await self.client.close()
