"""Which loopback block an agent's pod IPs come from: one block per agent on a machine.

Pod IPs are loopback addresses (see :mod:`corral.agent.podenv`); two agents on one machine —
two ``corral up`` with different data dirs, or ``corral up`` and ``corral agent`` — must
never hand out the same address, or one agent's pod binds the address another's gateway
routes to. Blocks are the /16s ``127.1.0.0/16`` … ``127.250.0.0/16``; an agent claims one
by taking an exclusive lock on ``<lock dir>/pod-ips-127.N.0.0-16.lock`` (:mod:`corral.util.locks`),
held for the life of the agent and released by the kernel if it dies. The lock directory is
machine-wide (``/tmp/corral-locks``, or ``$CORRAL_LOCK_DIR``) so that agents of different
users do not collide either.

The agent tries, in order: the block it had last time (``DATA/agent/pod-cidr``, so that pods
re-adopted after a restart keep their IPs), the block picked from its node name, then the
following blocks in turn. An explicit ``--pod-cidr`` is claimed as given (every /16 it
touches) and is an error if another agent holds it. Which blocks to try is the pure
:func:`candidate_blocks`; :func:`claim_block` does the locking.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from corral.util.locks import HeldLock, shared_lock_dir, try_lock
from corral.util.startup import StartupError

FIRST_BLOCK, LAST_BLOCK = 1, 250
"""Second octets of the automatic blocks (127.0.0.0/16 is left to the host's own services)."""

LOCK_DIR_ENV = "CORRAL_LOCK_DIR"


def default_lock_dir() -> Path:
    """The machine-wide lock directory: ``$CORRAL_LOCK_DIR`` or ``<tmp>/corral-locks``."""
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "corral-locks")


def block(second_octet: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"127.{second_octet}.0.0/16")


def pod_ip_block(node_name: str) -> ipaddress.IPv4Network:
    """The block a node name hashes to (127.1.0.0/16 … 127.250.0.0/16): the first one tried."""
    digest = hashlib.sha256(node_name.encode()).digest()
    return block(FIRST_BLOCK + digest[0] % (LAST_BLOCK - FIRST_BLOCK + 1))


def candidate_blocks(node_name: str, previous: ipaddress.IPv4Network | None = None) -> list[ipaddress.IPv4Network]:
    """Every automatic block, in the order an agent tries them (each once)."""
    start = pod_ip_block(node_name).network_address.packed[1]
    count = LAST_BLOCK - FIRST_BLOCK + 1
    order = [block(FIRST_BLOCK + (start - FIRST_BLOCK + i) % count) for i in range(count)]
    if previous is not None and previous in order:
        order.remove(previous)
        order.insert(0, previous)
    return order


def covering_blocks(network: ipaddress.IPv4Network) -> list[ipaddress.IPv4Network]:
    """The /16s a network overlaps (the unit of claims): its /16, or its /16 subnets."""
    if network.prefixlen >= 16:
        return [network.supernet(new_prefix=16)]
    return list(network.subnets(new_prefix=16))


def lock_name(network: ipaddress.IPv4Network) -> str:
    return f"pod-ips-{network.network_address}-{network.prefixlen}.lock"


@dataclass
class ClaimedBlock:
    """The block pod IPs come from, and the locks that keep other agents off it."""

    network: ipaddress.IPv4Network
    locks: list[HeldLock] = field(default_factory=list)

    def release(self) -> None:
        for lock in self.locks:
            lock.release()
        self.locks.clear()


def _claim_all(lock_dir: Path, networks: Iterable[ipaddress.IPv4Network]) -> list[HeldLock] | None:
    held: list[HeldLock] = []
    for network in networks:
        lock = try_lock(lock_dir / lock_name(network))
        if lock is None:
            for other in held:
                other.release()
            return None
        held.append(lock)
    return held


def claim_block(lock_dir: Path, node_name: str, *, previous: ipaddress.IPv4Network | None = None,
                explicit: ipaddress.IPv4Network | None = None) -> ClaimedBlock:
    """Claim a block no other agent on this machine holds; :class:`StartupError` if none can be."""
    shared_lock_dir(lock_dir)
    if explicit is not None:
        locks = _claim_all(lock_dir, covering_blocks(explicit))
        if locks is None:
            raise StartupError(lock_dir / lock_name(covering_blocks(explicit)[0]),
                               f"pod IP block {explicit} is in use by another corral agent on this machine "
                               "(choose another --pod-cidr)")
        return ClaimedBlock(explicit, locks)
    for network in candidate_blocks(node_name, previous):
        lock = try_lock(lock_dir / lock_name(network))
        if lock is not None:
            return ClaimedBlock(network, [lock])
    raise StartupError(lock_dir, f"every pod IP block (127.{FIRST_BLOCK}.0.0/16 … 127.{LAST_BLOCK}.0.0/16) "
                                 "is held by another corral agent on this machine")


def read_previous(path: Path) -> ipaddress.IPv4Network | None:
    """The block recorded last time (a hint: anything unreadable counts as none)."""
    with contextlib.suppress(OSError, ValueError):
        return ipaddress.IPv4Network(path.read_text(encoding="ascii").strip())
    return None


def record(path: Path, network: ipaddress.IPv4Network) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{network}\n", encoding="ascii")
    tmp.replace(path)
