"""Every process of a container, found and stopped — however it tried to leave.

A container is started in its own session, but its processes can leave that session
(``setsid``), its process group (``setpgid``) or their parent (double fork: the grandchild
is re-parented), so signalling the process group misses them. Two ways to find them all:

- **cgroup v2** (where the agent can create cgroups, :mod:`corral.agent.cgroups`): each
  container runs in its own cgroup, which no process can leave without privileges;
  ``cgroup.kill`` (Linux ≥ 5.14) kills all of it at once, ``cgroup.procs`` lists it.
- **Otherwise, markers and ancestry**: every container process gets
  ``CORRAL_POD_UID`` and ``CORRAL_CONTAINER_ID`` (``corral://<uid>/<container>/<run>``)
  in its environment, which is inherited through ``setsid``, ``setpgid`` and daemonizing.
  :func:`find_run` scans ``/proc`` for processes carrying the run's marker, in the main
  process's session or group, or descending from any of those. A program that also
  clears its environment *and* leaves the session escapes this — the cgroup does not.

In the fallback the agent is a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so
orphaned container processes are re-parented to it rather than to init, and their
zombies are the agent's to reap. :class:`OrphanReaper` reaps only pids it has positively
identified as such orphans: processes it saw carrying a marker, or zombies in a session
or group whose leader it saw in a container (checked by the leader's start time, so a
reused pid never makes an unrelated child look like one). It never calls ``waitpid(-1)`` and never touches a
container's main process (whose exit status :class:`~corral.agent.process.ProcessHandle`
reads) or any other child (asyncio's child watchers ``waitpid`` their own pids; a probe
runs in its own session, never recorded here), so no one else's exit status is stolen.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

POD_UID_ENV = "CORRAL_POD_UID"
CONTAINER_ID_ENV = "CORRAL_CONTAINER_ID"
_PR_SET_CHILD_SUBREAPER = 36


def container_id(pod_uid: str, container: str, run: int) -> str:
    """The run's id, also its ``containerID`` in the pod status."""
    return f"corral://{pod_uid}/{container}/{run}"


def marker_env(pod_uid: str, container: str, run: int) -> dict[str, str]:
    return {POD_UID_ENV: pod_uid, CONTAINER_ID_ENV: container_id(pod_uid, container, run)}


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    start_ticks: int


def read_stat(pid: int, proc: Path = Path("/proc")) -> ProcInfo | None:
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return ProcInfo(pid=pid, ppid=int(fields[1]), pgid=int(fields[2]), sid=int(fields[3]), state=fields[0],
                    start_ticks=int(fields[19]))


def list_processes(proc: Path = Path("/proc")) -> list[ProcInfo]:
    found = []
    for entry in os.scandir(proc):
        if entry.name.isdigit():
            info = read_stat(int(entry.name), proc)
            if info is not None:
                found.append(info)
    return found


def read_environ(pid: int, proc: Path = Path("/proc")) -> dict[str, str]:
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def find_run(*, key: str, value: str, roots: Iterable[int] = (),
             processes: list[ProcInfo] | None = None) -> list[ProcInfo]:
    """Live processes whose environment has ``key=value``, in a root's session or group,
    or descending from any of them (the agent itself excluded)."""
    table = processes if processes is not None else list_processes()
    me = os.getpid()
    root_set = {r for r in roots if r > 0}
    chosen: dict[int, ProcInfo] = {}
    for info in table:
        if info.pid == me or info.state in ("Z", "X"):
            continue
        if info.pid in root_set or info.sid in root_set or info.pgid in root_set or read_environ(info.pid).get(key) == value:
            chosen[info.pid] = info
    children: dict[int, list[ProcInfo]] = {}
    for info in table:
        children.setdefault(info.ppid, []).append(info)
    stack = list(chosen)
    while stack:
        for child in children.get(stack.pop(), []):
            if child.pid not in chosen and child.pid != me and child.state not in ("Z", "X"):
                chosen[child.pid] = child
                stack.append(child.pid)
    return list(chosen.values())


def send(processes: Iterable[ProcInfo], sig: int) -> None:
    """Signal each process that is still the one seen (a pidfd pins it against pid reuse)."""
    for info in processes:
        try:
            fd = os.pidfd_open(info.pid)
        except OSError:
            continue
        try:
            now = read_stat(info.pid)
            if now is not None and now.start_ticks == info.start_ticks:
                signal.pidfd_send_signal(fd, sig)
        except OSError:
            pass
        finally:
            os.close(fd)


def cgroup_pids(cgroup: Path) -> list[int]:
    """Every process in ``cgroup`` and the cgroups below it."""
    pids: list[int] = []
    if not cgroup.is_dir():
        return pids
    for path in (cgroup, *(p for p in cgroup.rglob("*") if p.is_dir())):
        with contextlib.suppress(OSError, ValueError):
            pids.extend(int(line) for line in (path / "cgroup.procs").read_text().split())
    return pids


def signal_cgroup(cgroup: Path, sig: int) -> None:
    """``sig`` to every process of a cgroup (and its children); SIGKILL through ``cgroup.kill``."""
    if sig == signal.SIGKILL and (cgroup / "cgroup.kill").exists():
        with contextlib.suppress(OSError):
            (cgroup / "cgroup.kill").write_text("1")
            return
    for pid in cgroup_pids(cgroup):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def enable_subreaper() -> bool:
    """Make this process a child subreaper; False where the call is unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def child_pids() -> list[int]:
    """This process's children (every thread's), from ``/proc/<pid>/task/*/children``."""
    pids: list[int] = []
    try:
        tasks = list(os.scandir(f"/proc/{os.getpid()}/task"))
    except OSError:
        return pids
    for task in tasks:
        with contextlib.suppress(OSError, ValueError):
            pids.extend(int(p) for p in Path(task.path, "children").read_text().split())
    return pids


class OrphanReaper:
    """Reaps the zombies of container processes re-parented to this (subreaper) process."""

    def __init__(self) -> None:
        self._mains: set[int] = set()
        self._orphans: dict[int, int] = {}  # container processes seen (pid → start ticks)
        self._leaders: dict[int, int] = {}  # session/group leaders seen in containers → start ticks

    def watch_main(self, pid: int, start_ticks: int) -> None:
        """A container's main process: its status is read by its handle, never here."""
        self._mains.add(pid)
        self._leaders[pid] = start_ticks  # it leads the container's session and group

    def unwatch_main(self, pid: int) -> None:
        """The main process's status is read and its leftovers are gone."""
        self._mains.discard(pid)
        self._leaders.pop(pid, None)

    def note(self, processes: Iterable[ProcInfo]) -> None:
        """Container processes seen alive: reap them (and their session/group) once they die."""
        for info in processes:
            if info.pid not in self._mains:
                self._orphans[info.pid] = info.start_ticks
            if info.pid in (info.sid, info.pgid):
                self._leaders[info.pid] = info.start_ticks

    def _in_container_group(self, info: ProcInfo) -> bool:
        for leader_pid in {info.sid, info.pgid}:
            ticks = self._leaders.get(leader_pid)
            if ticks is None:
                continue
            leader = info if leader_pid == info.pid else read_stat(leader_pid)
            if leader is not None and leader.start_ticks == ticks:
                return True
            if leader is None and leader_pid in self._mains:
                return True  # a main process just reaped by its handle: its session is still ours
            del self._leaders[leader_pid]  # gone (or its pid reused): nothing can match it again
        return False

    def reap(self) -> int:
        """Reap the identified zombie children; the number reaped."""
        me = os.getpid()
        reaped = 0
        for pid in child_pids():
            if pid in self._mains or pid in self._orphans:
                continue
            info = read_stat(pid)
            if info is None or info.ppid != me:
                continue
            if info.state == "Z" and self._in_container_group(info):
                self._orphans[pid] = info.start_ticks
            elif info.state != "Z" and CONTAINER_ID_ENV in read_environ(pid):
                self._orphans[pid] = info.start_ticks  # re-parented while alive: ours once it exits
        for leader_pid, ticks in list(self._leaders.items()):  # forget leaders that are gone
            leader = read_stat(leader_pid)
            if (leader is None or leader.start_ticks != ticks) and leader_pid not in self._mains:
                del self._leaders[leader_pid]
        for pid, ticks in list(self._orphans.items()):
            info = read_stat(pid)
            if info is None or info.start_ticks != ticks or pid in self._mains:
                del self._orphans[pid]  # reaped by its own parent (or init), or not ours to reap
                continue
            if info.ppid != me or info.state != "Z":
                continue  # still alive, or still some container process's child
            try:
                waited, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                del self._orphans[pid]
                continue
            if waited == pid:
                del self._orphans[pid]
                reaped += 1
        return reaped


async def wait_gone(processes: list[ProcInfo], timeout: float, reaper: OrphanReaper | None,
                    cgroup: Path | None = None, interval: float = 0.05) -> bool:
    """Wait until none of ``processes`` (nor anything in ``cgroup``) is alive; reaps as it goes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if reaper is not None:
            reaper.reap()
        alive = [p for p in processes if _alive(p)]
        if not alive and (cgroup is None or not cgroup_pids(cgroup)):
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(interval)


def _alive(info: ProcInfo) -> bool:
    now = read_stat(info.pid)
    return now is not None and now.start_ticks == info.start_ticks and now.state not in ("Z", "X")
