"""A cgroup v2 per container: every process of it tracked, and its limits enforced.

Where the agent may create cgroups in a cgroup v2 hierarchy, :meth:`Cgroups.detect`
sets up ``<cgroup2 mount>/corral/<node>``, and every container runs in
``pod-<uid>/<container>`` below it: no process can leave its cgroup, so stopping a
container stops everything it started (:mod:`corral.agent.reaper`, ``cgroup.kill``).
That needs no controller at all. Limits (``limits.cpu`` → ``cpu.max``,
``limits.memory`` → ``memory.max``) further need the ``cpu`` and ``memory``
controllers (:attr:`Cgroups.limits`); without them the agent publishes the node
condition ``ResourceLimitsEnforced=False`` and an event, rather than pretending. An
OOM kill is recognised by the ``oom_kill`` counter in the cgroup's ``memory.events``.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

from corral.util.paths import inside


def _cgroup2_mount(mounts_text: str) -> Path | None:
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1])
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


class Cgroups:
    """A writable cgroup v2 subtree for this node's pods."""

    def __init__(self, base: Path, limits: bool = True) -> None:
        self.base = base
        self.limits = limits  # the cpu and memory controllers are enabled: limits are enforced

    @classmethod
    def detect(cls, node_name: str, root: Path | None = None, mounts: Path = Path("/proc/self/mounts"),
               want_limits: bool = True) -> tuple[Cgroups | None, str]:
        """The usable subtree (``None`` if none) and a sentence on what it enforces or why not."""
        try:
            mount = root or _cgroup2_mount(mounts.read_text())
        except OSError as error:
            return None, f"cannot read {mounts}: {error}"
        if mount is None:
            return None, "no cgroup v2 hierarchy is mounted"
        try:
            controllers = (mount / "cgroup.controllers").read_text().split()
        except OSError as error:
            return None, f"cgroup v2 at {mount} is not readable: {error}"
        base = mount / "corral" / _safe(node_name)
        try:
            (mount / "corral").mkdir(exist_ok=True)
            base.mkdir(exist_ok=True)
            _check_move(base)
        except OSError as error:
            return None, f"cgroup v2 at {mount} is not writable: {error}"
        missing = [c for c in ("cpu", "memory") if c not in controllers]
        if not want_limits:
            return cls(base, limits=False), f"processes tracked through cgroup v2 at {base}; limits disabled"
        if missing:
            return cls(base, limits=False), (
                f"cgroup v2 at {mount} lacks the {', '.join(missing)} controller(s) "
                f"(available: {' '.join(controllers) or 'none'})")
        try:
            _enable(mount)
            _enable(mount / "corral")
            _enable(base)
        except OSError as error:
            return cls(base, limits=False), f"cgroup v2 controllers at {mount} cannot be enabled: {error}"
        return cls(base), f"pod limits enforced through cgroup v2 at {base}"

    def pod_path(self, uid: str) -> Path:
        return inside(self.base, f"pod-{_safe(uid)}")

    def container_path(self, uid: str, container: str) -> Path:
        return inside(self.pod_path(uid), _safe(container))

    def create(self, uid: str, container: str, cpu_millis: int | None, memory_bytes: int | None) -> Path:
        """The cgroup of one container of a pod (``pod-<uid>/<container>``) with its limits."""
        pod = self.pod_path(uid)
        pod.mkdir(exist_ok=True)
        if self.limits:
            _enable(pod)
        path = self.container_path(uid, container)
        path.mkdir(exist_ok=True)
        if not self.limits:
            return path
        if cpu_millis:
            period = 100_000
            (path / "cpu.max").write_text(f"{max(1000, cpu_millis * period // 1000)} {period}")
        if memory_bytes:
            (path / "memory.max").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0")
        return path

    @staticmethod
    def oom_kills(path: Path) -> int:
        try:
            text = (path / "memory.events").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove_pod(self, uid: str) -> None:
        pod = self.pod_path(uid)
        if not pod.is_dir():
            return
        for child in pod.iterdir():
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            pod.rmdir()


def _check_move(base: Path) -> None:
    """Creating a cgroup is not enough: a process must be able to move itself into one."""
    probe = base / f"probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        result = subprocess.run(["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs"', str(probe)],
                                capture_output=True, timeout=10, check=False)
        if result.returncode != 0:
            raise OSError(f"cannot move a process into {probe}: "
                          f"{result.stderr.decode(errors='replace').strip()}")
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def _enable(path: Path) -> None:
    control = path / "cgroup.subtree_control"
    enabled = control.read_text().split()
    wanted = [f"+{c}" for c in ("cpu", "memory") if c not in enabled]
    if wanted:
        control.write_text(" ".join(wanted))
