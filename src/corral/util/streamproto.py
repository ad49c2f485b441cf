"""The WebSocket stream protocols of ``pods/exec``, ``pods/attach`` and ``pods/portforward``.

Kubernetes multiplexes a command's streams over one WebSocket: every binary message
starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize),
the rest is that channel's data. The subprotocol (``Sec-WebSocket-Protocol``) says how:

- ``channel.k8s.io``, ``v2.channel.k8s.io``: channel 3 carries a plain-text error;
- ``v3.channel.k8s.io`` adds channel 4 (terminal resize, JSON ``{"Width":W,"Height":H}``);
- ``v4.channel.k8s.io``: channel 3 carries a JSON ``metav1.Status`` (``Success``, or
  ``Failure`` with reason ``NonZeroExitCode`` and the exit code in ``details.causes``);
- ``v5.channel.k8s.io`` (kubectl 1.30+) adds the close signal: the message
  ``[255, channel]`` half-closes that channel (how kubectl ends stdin).

Port-forward (``v4.channel.k8s.io`` or no subprotocol, as the kubelet's WebSocket
port-forward): port number ``i`` of the ``ports`` query gets channels ``2i`` (data) and
``2i+1`` (errors), and the first message on each carries the port as two little-endian
bytes. Both the API server (which relays) and the node agent (which runs the command)
use these definitions.
"""

from __future__ import annotations

import json
from typing import Any

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
EXEC_PROTOCOLS = (V5, V4, V3, V2, V1)
"""The remote-command subprotocols served, newest first."""
PORTFORWARD_PROTOCOLS = (V4, "portforward.k8s.io")
"""Port-forward over WebSocket (``kubernetes.stream.portforward`` asks for v4)."""

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255
"""v5: ``[255, channel]`` closes ``channel``."""


def choose_protocol(offered: str, supported: tuple[str, ...]) -> str | None:
    """The first protocol the client offers (``Sec-WebSocket-Protocol``, comma-separated) that is
    supported; ``""`` when the client offers none (then v1 framing applies); ``None`` when none matches."""
    names = [name.strip() for name in offered.split(",") if name.strip()]
    if not names:
        return ""
    return next((name for name in names if name in supported), None)


def status_json(protocol: str, exit_code: int | None, message: str = "") -> bytes:
    """What channel 3 carries at the end: a ``metav1.Status`` (v4, v5) or plain text (older).

    ``exit_code`` ``None`` with a ``message``: the command could not run at all (an
    InternalError, as the kubelet reports it)."""
    if protocol not in (V4, V5):
        if exit_code == 0:
            return b""
        text = message or f"command terminated with non-zero exit code: exit status {exit_code}"
        return text.encode()
    status: dict[str, Any] = {"metadata": {}, "status": "Success"}
    if exit_code is None:
        status = {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
                  "code": 500, "details": {"causes": [{"message": message}]}}
    elif exit_code != 0:
        status = {"metadata": {}, "status": "Failure",
                  "message": message or f"command terminated with non-zero exit code: exit status {exit_code}",
                  "reason": "NonZeroExitCode",
                  "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}
    return json.dumps(status, separators=(",", ":")).encode()


def port_prefix(port: int) -> bytes:
    """The two bytes that open each port-forward channel."""
    return bytes((port & 0xFF, (port >> 8) & 0xFF))
