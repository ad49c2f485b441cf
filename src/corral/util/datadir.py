"""Private data directories: what corral keeps on disk is readable by corral's user only.

A data directory (``corral up``'s ``DATA``, an agent's ``--data-dir``) holds secrets — the
store (``store.db`` and its ``-wal``/``-shm``: every Secret), ``tokens.csv``, the admin
``kubeconfig``, the TLS key — and the pods' logs. So:

- every component that writes there starts with :func:`private_umask` (``0o077``): every
  file it creates afterwards is ``0600`` and every directory ``0700``, including files
  made by libraries (SQLite creates ``-wal``/``-shm`` with the database file's mode);
- :func:`make_private` turns an existing tree (one written by an older corral, with
  ``0644`` files in a ``0755`` directory) into ``0700`` directories and ``0600`` files,
  without following symbolic links, and creates the directory when it is missing. It
  changes only the entries corral writes there (:data:`API_SERVER_ENTRIES`,
  :data:`AGENT_ENTRIES`), so a data dir pointed at a directory that holds other things
  (``--data-dir .``) closes the directory itself but leaves those things as they were.

Pods never get a path inside a data directory: what they are handed (checkpoint and
working directories) lives under the *pod root*, :func:`pod_root`, a sibling
(``DATA-pods``) that holds no secrets. Processes of the same uid as corral can still
read corral's files — permissions do not separate a user from itself — so a pod that
must not see them runs as another user (``securityContext.runAsUser``, honoured when
the agent runs as root; see docs/agent.md).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
API_SERVER_ENTRIES = ("store.db", "store.db-wal", "store.db-shm", "store.db-journal", "tokens.csv", "kubeconfig",
                      "tls", "agent", "logs", "checkpoints")
"""What ``corral up`` keeps in ``DATA`` (``agent`` is the agent's data dir; ``checkpoints`` an older version's)."""
AGENT_ENTRIES = ("pods", "checkpoints")
"""What an agent keeps in its data dir."""
POD_ROOT_MODE = 0o711
"""The pod root and the directories between it and a pod's own: others may pass through, not list."""


def private_umask() -> int:
    """Set the process umask to ``0o077``; returns the previous one."""
    return os.umask(PRIVATE_UMASK)


def make_private(directory: Path, entries: Iterable[str]) -> None:
    """Create ``directory`` (``0700``) if missing and make it ``0700``; make each of ``entries`` in it that
    exists, and everything under those, ``0700`` (directories) or ``0600`` (regular files). Symbolic
    links are neither followed nor changed."""
    directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    os.chmod(directory, PRIVATE_DIR_MODE)
    for entry in entries:
        top = directory / entry
        if top.is_symlink() or not top.exists():
            continue
        if not top.is_dir():
            _chmod(top, PRIVATE_FILE_MODE)
            continue
        _chmod(top, PRIVATE_DIR_MODE)
        for root, dirs, files in os.walk(top):
            for name in dirs:
                _chmod(Path(root) / name, PRIVATE_DIR_MODE)
            for name in files:
                _chmod(Path(root) / name, PRIVATE_FILE_MODE)


def _chmod(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):  # a file may go away while the tree is walked
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or stat.S_IMODE(info.st_mode) == mode:
            return
        if stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode):
            os.chmod(path, mode)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode ``0600`` unless it exists (before a library opens it with its own mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def pod_root(data_dir: Path) -> Path:
    """Where pods' checkpoint and working directories live: ``DATA-pods``, beside (never inside) ``DATA``."""
    return data_dir.parent / f"{data_dir.name}-pods"


def ensure_pod_dir(root: Path, path: Path, owner: tuple[int, int] | None = None) -> None:
    """Create ``path`` under the pod root: the directories it creates from ``root`` down to ``path``'s
    parent ``0711`` (others pass through, cannot list), ``path`` itself ``0700`` and owned by ``owner``
    (uid, gid) when given — so a pod running as another user can use its own directory and see no other
    pod's. Directories that exist keep their mode (a pod root may be one the administrator chose)."""
    relative = path.relative_to(root)  # ValueError: not under the pod root
    between = [root.joinpath(*relative.parts[:depth]) for depth in range(len(relative.parts))]  # root .. parent
    for directory in between:
        if not directory.exists():
            directory.mkdir(parents=True)
            os.chmod(directory, POD_ROOT_MODE)
    if not path.exists():
        path.mkdir(mode=PRIVATE_DIR_MODE)
    if owner is not None and os.geteuid() == 0:
        info = path.stat()
        if (info.st_uid, info.st_gid) != owner:
            os.chown(path, *owner)
