"""One ``corral up`` among others on a machine: its data dir, its ports, and failing cleanly.

Several ``corral up`` may run on one machine (different ``--data-dir``); they must not share
anything that is unique on the machine:

* **the data dir** — one ``corral up`` per data dir: :func:`claim_data_dir` locks
  ``DATA/corral.lock`` for the life of the process (:mod:`corral.util.locks`; the kernel
  drops the lock if the process dies, so a crash never leaves a stale claim);
* **ports** — a default port that is taken is replaced by the next free one and the choice
  is printed; a port given explicitly is an error (:func:`choose_port`);
* **pod IPs** — each agent claims its own loopback block (:mod:`corral.agent.ipblocks`).

:func:`startup_errors` turns what a start-up can fail with — a damaged or unreadable file, a
port or data dir in use — into one line, ``cannot start: <what>: <reason>``, and a non-zero
exit, without a traceback. :func:`ready_lines` is what ``corral up`` prints once it serves.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from corral.agent.agent import AgentComponent
from corral.client import KubeconfigError
from corral.gateway.component import InferenceComponent
from corral.util.locks import HeldLock, try_lock
from corral.util.ports import PortInUseError, next_free_port, port_is_free
from corral.util.startup import StartupError, describe_os_error

DATA_DIR_LOCK = "corral.lock"


def claim_data_dir(data_dir: Path) -> HeldLock:
    """Lock ``data_dir`` for this process; :class:`StartupError` if another corral runs on it."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = try_lock(data_dir / DATA_DIR_LOCK, mode=0o600)
    if lock is None:
        raise StartupError(data_dir, "in use by another corral on this machine (one `corral up` per data dir; "
                                     "stop it or pass another --data-dir)")
    return lock


def choose_port(host: str, wanted: int, *, explicit: bool, option: str, what: str) -> int:
    """``wanted`` if free; else the next free port (announced), or :class:`PortInUseError` if explicit."""
    if wanted == 0 or port_is_free(host, wanted):
        return wanted
    if explicit:
        raise PortInUseError(host, wanted, option)
    chosen = next_free_port(host, wanted + 1)
    print(f"corral: {what} port {wanted} is in use (another corral?); using port {chosen or 'any free one'} "
          f"instead ({option} to choose)", file=sys.stderr, flush=True)
    return chosen


@contextmanager
def startup_errors() -> Iterator[None]:
    """Report a failed start as ``cannot start: <path>: <reason>`` (exit code 1, no traceback)."""
    try:
        yield
    except (StartupError, KubeconfigError) as error:
        raise click.ClickException(f"cannot start: {error}") from None
    except OSError as error:
        raise click.ClickException(f"cannot start: {describe_os_error(error)}") from None


def ready_lines(components: Sequence[object]) -> list[str]:
    """The gateway's address and the agent's pod IP block, as ``corral up`` prints them when ready."""
    lines = []
    for component in components:
        if isinstance(component, InferenceComponent):
            lines.append(f"corral gateway: {component.url}")
        if isinstance(component, AgentComponent) and component.agent and component.agent.pod_block:
            lines.append(f"corral pod IPs: {component.agent.pod_block.network} (node {component.config.node_name})")
    return lines
