"""Container processes: spawn, watch, signal, and find again after an agent restart.

Each container is one process started in a new session (so it leads its own
process group); signals go to the whole group, so a shell and its children are
stopped together. stdout and stderr are appended to the container's log file
directly by the kernel: logs keep flowing while the agent restarts.

Exits are watched with a pidfd (Linux ≥ 5.3) registered on the event loop — no
thread per child and no polling. For a child of this process the exit status is
read with ``waitpid``. A process *adopted* after an agent restart is not our
child: its exit is still seen through the pidfd, but its exit code is unknown
and is reported as such (Kubernetes' ``ContainerStatusUnknown``, code 137).

A pid file per container run records the pid and the process start time from
``/proc/<pid>/stat``, so that a reused pid is never mistaken for the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ExitInfo:
    """How a process ended: ``exit_code`` is 128+N for signal N, as shells report it."""

    exit_code: int
    signal: int | None
    known: bool = True


class ProcessHandle:
    """A running (or finished) container process and a future for its exit."""

    def __init__(self, pid: int, start_ticks: int, popen: subprocess.Popen[bytes] | None) -> None:
        self.pid = pid
        self.start_ticks = start_ticks
        self._popen = popen
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[ExitInfo] = loop.create_future()
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError:
            self._finish()
            return
        loop.add_reader(self._pidfd, self._on_ready)

    def _on_ready(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self.exited.done():
            return
        info = ExitInfo(exit_code=137, signal=None, known=False)
        if self._popen is not None:
            code = self._popen.poll()
            if code is None:  # pidfd said it exited; reap it for sure
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self._popen.wait(timeout=1)
            if code is not None:
                info = ExitInfo(exit_code=128 - code if code < 0 else code,
                                signal=-code if code < 0 else None)
        else:
            try:
                waited, status = os.waitpid(self.pid, os.WNOHANG)
                if waited == self.pid:
                    if os.WIFSIGNALED(status):
                        sig = os.WTERMSIG(status)
                        info = ExitInfo(exit_code=128 + sig, signal=sig)
                    else:
                        info = ExitInfo(exit_code=os.WEXITSTATUS(status), signal=None)
            except ChildProcessError:
                pass
        self.exited.set_result(info)

    @property
    def running(self) -> bool:
        return not self.exited.done()

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the container's process group (and the leader, should it have left it)."""
        if self.exited.done():
            # the leader is gone; stray children of its group still get the signal
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, sig)

    def close(self) -> None:
        """Stop watching (the process keeps running); used when the agent detaches."""
        if self._pidfd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._popen is not None and self._popen.returncode is None:
            # keep subprocess' own reaper from stealing a status we may read later
            self._popen.returncode = 0
            self._popen = None


def proc_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks); None if gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


CONTAINER_UMASK = 0o022
"""A container's umask, as container runtimes give: the agent's own (``077``, for its data dir) is not inherited."""


def contained(argv: list[str], *, cgroup: Path | None, user: int | None,
              group: int | None) -> tuple[list[str], dict[str, Any]]:
    """The command line and ``Popen`` identity arguments that run ``argv`` in ``cgroup`` as ``user``/``group``
    (see :func:`spawn`; ``kubectl exec`` commands join their container's cgroup the same way)."""
    switch: dict[str, Any] = {}
    if user is not None or group is not None:
        switch = {"user": user, "group": group, "extra_groups": []}
    if cgroup is not None:
        if switch:  # the cgroup move needs the agent's rights: drop them after it (util-linux setpriv)
            ids = [*(["--reuid", str(user)] if user is not None else []),
                   *(["--regid", str(group)] if group is not None else [])]
            argv = ["setpriv", *ids, "--clear-groups", "--", *argv]
            switch = {}
        argv = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup), *argv]
    return argv, switch


def spawn(argv: list[str], *, env: dict[str, str], cwd: str | None, log_path: Path,
          cgroup: Path | None = None, user: int | None = None, group: int | None = None) -> ProcessHandle:
    """Start a container process in its own session with output appended to ``log_path``.

    With ``cgroup``, a tiny ``sh`` prologue moves the process into that cgroup
    before it ``exec``s the command, so no byte is allocated outside it. With ``user``/``group``
    (``securityContext.runAsUser/runAsGroup``, see :mod:`corral.agent.identity`) the process
    runs with that uid/gid and no supplementary groups — switched after the cgroup move,
    which needs the agent's rights.
    """
    argv, switch = contained(argv, cgroup=cgroup, user=user, group=group)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as log:
        popen = subprocess.Popen(  # returns at once; exits are watched with a pidfd
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            cwd=cwd or None, start_new_session=True, close_fds=True, umask=CONTAINER_UMASK, **switch,
        )
    ticks = proc_start_ticks(popen.pid) or 0
    return ProcessHandle(popen.pid, ticks, popen)


def adopt(pid: int, start_ticks: int) -> ProcessHandle | None:
    """A handle on a process started by an earlier agent, if it is still that process."""
    ticks = proc_start_ticks(pid)
    if ticks is None and pid > 0:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is a zombie child of ours
    if ticks is None or ticks != start_ticks:
        return None
    return ProcessHandle(pid, start_ticks, None)


def write_pid_file(path: Path, handle: ProcessHandle, extra: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": handle.pid, "startTicks": handle.start_ticks, **extra}))
    tmp.replace(path)


def read_pid_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


SIGTERM = signal.SIGTERM
SIGKILL = signal.SIGKILL
