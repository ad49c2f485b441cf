"""Choosing a listening port that is free, for servers whose default port may be taken.

``corral up`` has default ports (API server 6443, gateway 8080) that a second corral on the
same machine — or anything else — may already hold. A default port that is taken is
replaced by the next free one (:func:`next_free_port`) and the choice is printed; a port
the user asked for explicitly is never replaced: it is an error, as for ``kube-apiserver``.

Probing binds a socket the way asyncio's servers do (``SO_REUSEADDR``, every address the
host resolves to), so a port left in ``TIME_WAIT`` by a previous run counts as free and one
with a listener does not. The server may still lose a race for the port between probe and
bind; it then fails with ``EADDRINUSE`` like any bind.
"""

from __future__ import annotations

import errno
import socket

PROBE_SPAN = 100
"""How many ports after a taken default are tried before falling back to any free port."""


class PortInUseError(OSError):
    """A port the user chose explicitly is taken; ``str()`` is ``"host:port: ..."`` for ``cannot start:``."""

    def __init__(self, host: str, port: int, option: str) -> None:
        super().__init__(errno.EADDRINUSE, f"{host}:{port}: already in use (another corral? choose another "
                                           f"{option}, or 0 for any free port)")

    def __str__(self) -> str:
        return str(self.strerror)


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now; errors other than in-use propagate."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    for family, kind, proto, _name, address in {(i[0], i[1], i[2], i[3], i[4]) for i in infos}:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return False
                raise
    return True


def next_free_port(host: str, first: int, span: int = PROBE_SPAN) -> int:
    """The first free port in ``first … first+span-1`` (0, any free port, if none is)."""
    for port in range(first, min(first + span, 65536)):
        if port_is_free(host, port):
            return port
    return 0
