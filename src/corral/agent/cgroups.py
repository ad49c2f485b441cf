"""Per-pod cgroup v2 limits (``limits.cpu`` → ``cpu.max``, ``limits.memory`` → ``memory.max``).

Enforcement needs a cgroup v2 hierarchy with the ``cpu`` and ``memory``
controllers available and a subtree the agent may write. :meth:`Cgroups.detect`
tries to set one up (``<cgroup2 mount>/corral/<node>``) and otherwise returns
``None`` with the reason, which the agent publishes as the node condition
``ResourceLimitsEnforced=False`` and an event, rather than pretending. An OOM kill
is recognised by the ``oom_kill`` counter in the pod cgroup's ``memory.events``.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path


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

    def __init__(self, base: Path) -> None:
        self.base = base

    @classmethod
    def detect(cls, node_name: str, root: Path | None = None,
               mounts: Path = Path("/proc/self/mounts")) -> tuple[Cgroups | None, str]:
        """The usable subtree, or ``None`` and why limits cannot be enforced."""
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
        missing = [c for c in ("cpu", "memory") if c not in controllers]
        if missing:
            return None, (f"cgroup v2 at {mount} lacks the {', '.join(missing)} controller(s) "
                          f"(available: {' '.join(controllers) or 'none'})")
        base = mount / "corral" / _safe(node_name)
        try:
            _enable(mount)
            (mount / "corral").mkdir(exist_ok=True)
            _enable(mount / "corral")
            base.mkdir(exist_ok=True)
            _enable(base)
        except OSError as error:
            return None, f"cgroup v2 at {mount} is not writable: {error}"
        return cls(base), f"pod limits enforced through cgroup v2 at {base}"

    def create(self, uid: str, container: str, cpu_millis: int | None, memory_bytes: int | None) -> Path:
        """The cgroup of one container of a pod (``pod-<uid>/<container>``) with its limits."""
        pod = self.base / f"pod-{_safe(uid)}"
        pod.mkdir(exist_ok=True)
        _enable(pod)
        path = pod / _safe(container)
        path.mkdir(exist_ok=True)
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
        pod = self.base / f"pod-{_safe(uid)}"
        if not pod.is_dir():
            return
        for child in pod.iterdir():
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            pod.rmdir()


def _enable(path: Path) -> None:
    control = path / "cgroup.subtree_control"
    enabled = control.read_text().split()
    wanted = [f"+{c}" for c in ("cpu", "memory") if c not in enabled]
    if wanted:
        control.write_text(" ".join(wanted))
