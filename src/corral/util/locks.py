"""Process-lifetime file locks: a claim that the kernel releases when the process dies.

``fcntl.flock`` on an open file is held until the file is closed — by :meth:`HeldLock.release`
or by the kernel when the process exits, however it exits (``kill -9`` included) — so a
crashed corral never leaves a stale claim behind, and no pid files need to be checked.
corral uses it for the claims that must be unique on a machine: a data directory (one
``corral up`` per data dir) and a pod IP block (one per agent, see
:mod:`corral.agent.ipblocks`).

Lock files are opened without following symbolic links and must be regular files: a lock
directory shared by every user (``/tmp/corral-locks``, sticky like ``/tmp``) cannot be used
to make corral open something else. A lock file that another user made unreadable counts
as held: corral moves on rather than fail.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from corral.util.startup import StartupError


@dataclass
class HeldLock:
    """An exclusive ``flock`` on ``path``, held while ``fd`` is open."""

    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing drops the flock
            self.fd = -1

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def __del__(self) -> None:  # a forgotten claim ends with its owner, not with the process
        self.release()


def try_lock(path: Path, *, mode: int = 0o644) -> HeldLock | None:
    """Take an exclusive lock on ``path`` (creating it), or None if another process holds it.

    Also None when the file cannot be opened for lack of permission (another user's claim).
    Raises :class:`StartupError` when ``path`` is not a regular file (a link, a directory).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except PermissionError:
        return None
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EISDIR):
            raise StartupError(path, "not a regular file (a lock file must be one)") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StartupError(path, "not a regular file (a lock file must be one)")
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, mode)  # readable by the others who take turns on it, whatever the umask
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return HeldLock(path, fd)


def shared_lock_dir(path: Path) -> Path:
    """``path`` as a directory every user can create lock files in (mode 1777, like ``/tmp``)."""
    try:
        path.mkdir(mode=0o1777, exist_ok=True)
    except FileExistsError:
        raise StartupError(path, "not a directory (corral keeps its machine-wide lock files there)") from None
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise StartupError(path, "not a directory (corral keeps its machine-wide lock files there)")
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != 0o1777:
        os.chmod(path, 0o1777)  # mkdir's mode is cut by the umask
    return path
