"""The inference component of ``corral up``: gateway + InferenceService controller + autoscaler.

One object with ``start()``/``stop()``. It connects to the API server with the
kubeconfig ``corral up`` wrote, starts the gateway (``--gateway-port``; when
the default port is taken it falls back to a free one and says so), the
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
            if not (self.fallback_port and self.port and error.errno == errno.EADDRINUSE):
                raise
            print(f"corral: gateway port {self.port} is in use; using a free port instead", file=sys.stderr)
            await self.gateway.stop()
            self.gateway = Gateway(host=self.host, port=0, clock=self.clock, token_check=check)
            await self.gateway.start()
        gateway = self.gateway

        async def feed() -> dict[str, Any]:
            return gateway.feed()

        self.controller = InferenceServiceController(
            self.client, Autoscaler(tick=self.tick), gateway_url=gateway.url, feed=feed, clock=self.clock,
            tick=self.tick)
        gateway.on_activate = self.controller.activate
        await gateway.watch_api(self.client)
        await self.controller.start()

    async def stop(self) -> None:
        if self.controller is not None:
            await self.controller.stop()
        if self.gateway is not None:
            await self.gateway.stop()
        if self.client is not None:
            await self.client.close()
