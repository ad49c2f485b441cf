"""One pod on this node: its processes, probes, restarts and termination.

A :class:`PodWorker` owns a pod from the moment the agent sees it bound here
until it is gone. It runs the init containers in order (each must exit 0; a
failure is retried with back-off unless ``restartPolicy: Never``, which fails
the pod), then every container concurrently, each in a loop:

    start → (startup probe) → liveness/readiness probes → exit
          → restart per policy after a CrashLoopBackOff delay

The delay starts at ``backoff_initial`` (10 s), doubles per consecutive crash up
to ``backoff_max`` (5 min), and resets once a run lasted ``backoff_reset``.

Termination (pod deletion, liveness failure, agent shutdown) runs the
``preStop`` hook, sends SIGTERM to every process of the container — its
cgroup, or what :mod:`corral.agent.reaper` finds by marker, session and ancestry —
waits the grace period, then SIGKILL. When a container's main process exits,
whatever it left behind is killed before the next run starts, as in a PID
namespace. Every change updates :attr:`PodWorker.runtime` and calls
``on_change``; the agent turns that into pod status with
:func:`corral.agent.status.pod_status`.

Everything a restarted agent needs to find the pod again is on disk under
``<data>/pods/<uid>/``: ``pod.json`` (name, namespace, pod IP) and, per
container, ``<restartCount>.pid`` and ``<restartCount>.log``. Every one of those paths is
joined with :func:`corral.util.paths.inside`: a pod whose uid or container names
would leave that directory fails (reason ``InvalidPodPaths``) before anything is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.agent import logs as logfiles
from corral.agent import reaper
from corral.agent.cgroups import Cgroups
from corral.agent.gpus import GPU_DEVICES_ANNOTATION, AssignmentError, GpuDevice, gpu_environment
from corral.agent.identity import IdentityError, RunAs, run_as
from corral.agent.podenv import INHERITED_HOST_ENV, EnvError, command_line, container_env
from corral.agent.probes import ProbeTiming, ProbeTracker, run_probe
from corral.agent.process import (
    SIGKILL,
    SIGTERM,
    ExitInfo,
    ProcessHandle,
    adopt,
    read_pid_file,
    spawn,
    write_pid_file,
)
from corral.agent.status import ContainerRuntime, PodRuntime, Termination, will_restart
from corral.util.clock import Clock, parse_timestamp
from corral.util.datadir import ensure_pod_dir, pod_root
from corral.util.paths import PathEscapeError, inside
from corral.util.quantity import QuantityError, cpu_millis, to_int

if TYPE_CHECKING:  # the runtime core stays free of pydantic (the GPU check runs it bare)
    from corral.api.registry import Obj


@dataclass
class RuntimeConfig:
    """What every pod worker of one agent shares."""

    data_dir: Path
    node_name: str
    devices: list[GpuDevice] = field(default_factory=list)
    allocatable: dict[str, str] = field(default_factory=dict)
    cgroups: Cgroups | None = None
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    backoff_reset: float = 600.0
    log_index_period: float = 1.0
    log_max_size: int = 10 * 1024 * 1024  # containerLogMaxSize
    log_max_files: int = 5  # containerLogMaxFiles, the current file included
    host_env: dict[str, str] = field(default_factory=dict)
    pod_root: Path | None = None
    """Where pods' checkpoint directories live; never inside a data dir (default :func:`~corral.util.datadir.pod_root`)."""
    agent_uid: int = field(default_factory=os.geteuid)
    agent_gid: int = field(default_factory=os.getegid)
    orphan_reaper: reaper.OrphanReaper | None = None  # set where this process is a child subreaper

    @property
    def pods_dir(self) -> Path:
        return self.data_dir / "pods"

    @property
    def workload_root(self) -> Path:
        return self.pod_root if self.pod_root is not None else pod_root(self.data_dir)


EventSink = Callable[[str, str, str], None]
"""``(type, reason, message)`` of a Kubernetes Event about the pod (``Normal``/``Warning``)."""


@dataclass(frozen=True)
class ExecContext:
    """Where a ``kubectl exec`` command runs (:meth:`PodWorker.exec_context`)."""

    env: dict[str, str]
    cwd: str | None
    identity: RunAs
    cgroup: Path | None


def backoff_delay(config: RuntimeConfig, consecutive_crashes: int) -> float:
    """CrashLoopBackOff delay before restart number ``consecutive_crashes`` (1-based)."""
    if consecutive_crashes <= 0:
        return 0.0
    return float(min(config.backoff_initial * 2 ** (consecutive_crashes - 1), config.backoff_max))


def pod_key(pod: Obj) -> str:
    meta = pod.get("metadata", {})
    return f"{meta.get('namespace', 'default')}/{meta.get('name')}"


class PodWorker:
    """Runs one pod's containers; see the module docstring."""

    def __init__(self, pod: Obj, pod_ip: str, config: RuntimeConfig, *, clock: Clock,
                 on_change: Callable[[], None], on_event: EventSink | None = None) -> None:
        self.pod = pod
        self.key = pod_key(pod)
        self.uid = str(pod.get("metadata", {}).get("uid") or self.key.replace("/", "_"))
        self.config = config
        self.clock = clock
        self._on_change = on_change
        self._on_event = on_event
        spec = pod.get("spec", {})
        self.path_error: str | None = None
        try:
            self.dir = inside(config.pods_dir, self.uid)
            for container in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
                inside(self.dir, str(container.get("name")))
            self._checkpoint_dir()
        except PathEscapeError as error:
            self.path_error = str(error)
            # never created nor removed: a name that cannot leave pods_dir
            self.dir = config.pods_dir / f"invalid-{hashlib.sha256(self.uid.encode()).hexdigest()[:16]}"
        self.restart_policy = str(spec.get("restartPolicy") or "Always")
        self.runtime = PodRuntime(pod_ip=pod_ip)
        self.runtime.init = [ContainerRuntime(name=c["name"], image=str(c.get("image", "")), reason="PodInitializing")
                             for c in spec.get("initContainers") or []]
        self.runtime.containers = [ContainerRuntime(name=c["name"], image=str(c.get("image", "")),
                                                    reason="PodInitializing" if self.runtime.init
                                                    else "ContainerCreating")
                                   for c in spec.get("containers") or []]
        self._handles: dict[str, ProcessHandle] = {}
        self._kill_reasons: dict[str, str] = {}
        self._terminating = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._aux: set[asyncio.Task[Any]] = set()
        self._oom_before: dict[str, int] = {}
        self._cgroup_paths: dict[str, Path] = {}
        self._run_as: dict[str, RunAs] = {}
        self._runs: dict[str, int] = {}  # container → restart count of its current handle
        self._adopted = False
        self._unswept = 0  # runs started whose leftovers were not swept yet
        self.finished = asyncio.Event()

    # ----------------------------------------------------------------- lifecycle

    def start(self, adopt_existing: bool = False) -> None:
        self._adopted = adopt_existing
        self._task = asyncio.create_task(self._run(adopt_existing), name=f"pod {self.key}")

    def _changed(self) -> None:
        self._on_change()

    def _event(self, kind: str, reason: str, message: str) -> None:
        if self._on_event is not None:
            self._on_event(kind, reason, message)

    @property
    def terminating(self) -> bool:
        return self._terminating

    def container_running(self, name: str) -> bool:
        handle = self._handles.get(name)
        return handle is not None and handle.running

    def container_spec(self, name: str) -> Mapping[str, Any] | None:
        spec = self.pod.get("spec") or {}
        return next((c for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
                     if c.get("name") == name), None)

    def exec_context(self, name: str) -> ExecContext:
        """What a command run in running container ``name`` (``kubectl exec``) gets: the container's env,
        with the current run's reaper markers, and its cgroup (so the run's and the pod's cleanup take it
        along, and its limits apply), its working dir and its identity. Raises :class:`EnvError` as the
        container's start would."""
        container = self.container_spec(name) or {}
        rt = next((c for c in self.runtime.containers + self.runtime.init if c.name == name), None)
        env = {**self._container_env(container),
               **reaper.marker_env(self.uid, name, rt.restart_count if rt is not None else 0)}
        return ExecContext(env, container.get("workingDir") or None, self._run_as.get(name, RunAs()),
                           self._cgroup_paths.get(name))

    def container_dir(self, name: str) -> Path:
        return inside(self.dir, name)

    def log_file(self, name: str, previous: bool = False) -> Path | None:
        rt = next((c for c in self.runtime.containers + self.runtime.init if c.name == name), None)
        if rt is None or self.path_error is not None:
            return None  # (a pod refused for its paths has no log)
        count = rt.restart_count - 1 if previous else rt.restart_count
        if count < 0:
            return None
        path = logfiles.log_path(self.container_dir(name), count)
        if not path.exists() and not previous:
            # between runs (CrashLoopBackOff) the newest file is the last run's
            older = logfiles.log_path(self.container_dir(name), count - 1)
            if count > 0 and older.exists():
                return older
        return path

    async def _run(self, adopt_existing: bool) -> None:
        try:
            await self._run_pod(adopt_existing)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # keep the pod visible with the reason rather than dying silently
            self.runtime.message = f"agent error: {error}"
            self._changed()
        finally:
            self.finished.set()

    async def _run_pod(self, adopt_existing: bool) -> None:
        now = self.clock.now()
        if self.path_error is not None:
            self._refuse_paths(self.path_error)
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.pod.get("metadata", {})
        (self.dir / "pod.json").write_text(json.dumps({
            "namespace": meta.get("namespace", "default"), "name": meta.get("name"), "uid": self.uid,
            "podIP": self.runtime.pod_ip}))
        previous_start = (self.pod.get("status") or {}).get("startTime")
        self.runtime.start_time = parse_timestamp(previous_start) if adopt_existing and previous_start else now
        try:
            self._base_env = self._make_base_env()
        except (AssignmentError, EnvError) as error:
            for rt in self.runtime.init + self.runtime.containers:
                rt.reason, rt.message = "CreateContainerConfigError", str(error)
            self._changed()
            await self._stop.wait()
            return
        if not self._check_identities():
            await self._stop.wait()
            return
        spec = self.pod.get("spec", {})
        adopted_any = adopt_existing and any(
            self._latest_pid_file(c["name"]) is not None for c in spec.get("containers") or [])
        for index, container in enumerate(spec.get("initContainers") or []):
            rt = self.runtime.init[index]
            if adopted_any:
                rt.state, rt.reason = "terminated", "Completed"
                rt.last = Termination(exit_code=0, reason="Completed", started_at=None, finished_at=now)
                continue
            ok = await self._run_init(container, rt, adopt_existing)
            if not ok:
                return
        self.runtime.initialized_at = self.clock.now()
        for rt in self.runtime.containers:
            if rt.state == "waiting":
                rt.reason = "ContainerCreating"
        self._changed()
        loops = [asyncio.create_task(self._container_loop(c, rt, adopt_existing))
                 for c, rt in zip(spec.get("containers") or [], self.runtime.containers, strict=False)]
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()

    async def _run_init(self, container: Mapping[str, Any], rt: ContainerRuntime, adopt_existing: bool) -> bool:
        consecutive = 0
        first = True
        while not self._terminating:
            info = await self._run_once(container, rt, probes=False, adopt_existing=adopt_existing and first)
            first = False
            if self._terminating:
                return False
            if info.exit_code == 0:
                return True
            if self.restart_policy == "Never":
                self.runtime.init_failed = True
                self.runtime.reason = "InitContainerFailed"
                self._changed()
                return False
            consecutive += 1
            await self._back_off(container, rt, consecutive)
        return False

    async def _container_loop(self, container: Mapping[str, Any], rt: ContainerRuntime,
                              adopt_existing: bool) -> None:
        consecutive = 0
        first = True
        while not self._terminating:
            info = await self._run_once(container, rt, probes=True, adopt_existing=adopt_existing and first)
            first = False
            if self._terminating or not will_restart(self.restart_policy, info.exit_code):
                return
            term = rt.last
            if (term is not None and term.started_at is not None
                    and (term.finished_at - term.started_at).total_seconds() >= self.config.backoff_reset):
                consecutive = 0
            consecutive += 1
            await self._back_off(container, rt, consecutive)

    async def _back_off(self, container: Mapping[str, Any], rt: ContainerRuntime, consecutive: int) -> None:
        delay = backoff_delay(self.config, consecutive)
        rt.previous = rt.last
        rt.last = None
        rt.state = "waiting"
        rt.reason = "CrashLoopBackOff"
        rt.message = (f"back-off {delay:g}s restarting failed container={container['name']} "
                      f"pod={self.pod['metadata'].get('name')}")
        self._changed()
        self._event("Warning", "BackOff", f"Back-off restarting failed container {container['name']}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
        if not self._terminating:
            rt.restart_count += 1
            rt.message = None

    # ----------------------------------------------------------------- one run

    def _latest_pid_file(self, name: str) -> tuple[int, Path] | None:
        directory = self.container_dir(name)
        if not directory.is_dir():
            return None
        runs = sorted((int(p.stem), p) for p in directory.glob("*.pid") if p.stem.isdigit())
        return runs[-1] if runs else None

    def _check_identities(self) -> bool:
        """Each container's runAsUser/runAsGroup/runAsNonRoot (:mod:`corral.agent.identity`); when one cannot
        be honoured no container starts: they wait with ``CreateContainerConfigError``, as the kubelet's do."""
        spec = self.pod.get("spec") or {}
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        errors: dict[str, str] = {}
        for container in containers:
            try:
                self._run_as[str(container["name"])] = run_as(self.pod, container, agent_uid=self.config.agent_uid,
                                                              agent_gid=self.config.agent_gid)
            except IdentityError as error:
                errors[str(container["name"])] = str(error)
        if not errors:
            return True
        first = next(iter(errors.values()))
        for rt in self.runtime.init + self.runtime.containers:
            rt.state, rt.reason, rt.message = "waiting", "CreateContainerConfigError", errors.get(rt.name, first)
        self._event("Warning", "Failed", f"Error: {first}")
        self._changed()
        return False

    def _prepare_dirs(self, identity: RunAs, env: Mapping[str, str], cwd: str | None) -> None:
        """The checkpoint directory (under the pod root) and a missing working directory, owned by the
        container's user when it runs as another one."""
        owner = (identity.uid if identity.uid is not None else self.config.agent_uid,
                 identity.gid if identity.gid is not None else self.config.agent_gid) if identity.switches else None
        checkpoint = env.get("CORRAL_CHECKPOINT_DIR")
        root = self.config.workload_root
        if checkpoint and Path(checkpoint).is_relative_to(root) and Path(checkpoint) != root:
            ensure_pod_dir(root, Path(checkpoint), owner)
        if cwd and not Path(cwd).exists():
            Path(cwd).mkdir(parents=True, exist_ok=True)
            if owner is not None:
                os.chown(cwd, *owner)

    def _make_base_env(self) -> dict[str, str]:
        base = {k: v for k, v in self.config.host_env.items() if k in INHERITED_HOST_ENV}
        meta = self.pod.get("metadata", {})
        annotations = meta.get("annotations") or {}
        checkpoint = self._checkpoint_dir()
        base.update({
            "HOSTNAME": str(meta.get("name")),
            "POD_IP": self.runtime.pod_ip,
            "POD_NAME": str(meta.get("name")),
            "POD_NAMESPACE": str(meta.get("namespace", "default")),
            "NODE_NAME": self.config.node_name,
            "CORRAL_CHECKPOINT_DIR": str(checkpoint),
        })
        base.update(gpu_environment(annotations.get(GPU_DEVICES_ANNOTATION), self.config.devices))
        return base

    def _checkpoint_dir(self) -> Path:
        meta = self.pod.get("metadata", {})
        labels = meta.get("labels") or {}
        owner = labels.get("corral.dev/training-job") or labels.get("corral.dev/pod-group") or meta.get("name")
        return inside(self.config.workload_root / "checkpoints", str(meta.get("namespace", "default")), str(owner))

    def _refuse_paths(self, message: str) -> None:
        """A pod whose names would put files outside its directory: failed, nothing written."""
        self.runtime.init_failed = True
        self.runtime.reason = "InvalidPodPaths"
        self.runtime.message = message
        for rt in self.runtime.init + self.runtime.containers:
            rt.reason, rt.message = "CreateContainerConfigError", message
        self._event("Warning", "InvalidPodPaths", message)
        self._changed()

    def _container_env(self, container: Mapping[str, Any]) -> dict[str, str]:
        env = container_env(self.pod, container, pod_ip=self.runtime.pod_ip, node_name=self.config.node_name,
                            base=self._base_env, allocatable=self.config.allocatable)
        for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):  # never overridden by the pod
            env[name] = self._base_env[name]
        return env

    def _cgroup_for(self, container: Mapping[str, Any]) -> Path | None:
        if self.config.cgroups is None:
            return None
        limits = (container.get("resources") or {}).get("limits") or {}
        try:
            cpu = cpu_millis(limits["cpu"]) if "cpu" in limits else None
            memory = to_int(limits["memory"]) if "memory" in limits else None
        except QuantityError:
            return None
        if not self.config.cgroups.limits:
            cpu = memory = None  # a cgroup only to track the container's processes
        try:
            path = self.config.cgroups.create(self.uid, str(container["name"]), cpu, memory)
        except OSError:
            return None
        self._cgroup_paths[str(container["name"])] = path
        return path

    async def _run_once(self, container: Mapping[str, Any], rt: ContainerRuntime, *, probes: bool,
                        adopt_existing: bool) -> ExitInfo:
        name = str(container["name"])
        handle: ProcessHandle | None = None
        started_at = self.clock.now()
        try:
            env = self._container_env(container)
        except EnvError as error:
            return self._fail_to_start(rt, "CreateContainerConfigError", str(error))
        cwd = container.get("workingDir") or None
        if adopt_existing:
            found = self._latest_pid_file(name)
            if found is not None:
                count, pid_path = found
                record = read_pid_file(pid_path) or {}
                rt.restart_count = count
                handle = adopt(int(record.get("pid", 0)), int(record.get("startTicks", -1)))
                if self.config.cgroups is not None:
                    self._cgroup_paths[name] = self.config.cgroups.container_path(self.uid, name)
                if record.get("startedAt"):
                    started_at = parse_timestamp(str(record["startedAt"]))
                if handle is None:
                    finished = self.clock.now()
                    rt.state = "terminated"
                    rt.last = Termination(exit_code=137, reason="ContainerStatusUnknown", started_at=started_at,
                                          finished_at=finished, container_id=rt.container_id,
                                          message="the process was gone when the agent restarted")
                    rt.ready = False
                    self._changed()
                    return ExitInfo(exit_code=137, signal=None, known=False)
        if handle is None:
            identity = self._run_as.get(name, RunAs())
            try:
                self._prepare_dirs(identity, env, cwd)
                argv = command_line(container, env)
            except (EnvError, OSError, ValueError) as error:
                return self._fail_to_start(rt, "CreateContainerConfigError", str(error))
            cgroup = self._cgroup_for(container)
            if cgroup is not None:
                self._oom_before[name] = Cgroups.oom_kills(cgroup)
            path = logfiles.log_path(self.container_dir(name), rt.restart_count)
            run_env = {**env, **reaper.marker_env(self.uid, name, rt.restart_count)}
            try:
                handle = spawn(argv, env=run_env, cwd=cwd, log_path=path, cgroup=cgroup, user=identity.uid,
                               group=identity.gid)
            except OSError as error:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "ab") as log:
                    log.write(f"corral agent: cannot start {argv[0]!r}: {error}\n".encode())
                return self._fail_to_start(rt, "StartError", f"cannot start {argv[0]!r}: {error}", code=128)
            started_at = self.clock.now()
            write_pid_file(self.container_dir(name) / f"{rt.restart_count}.pid", handle,
                           {"startedAt": started_at.isoformat()})
            self._event("Normal", "Started", f"Started container {name}")
        self._handles[name] = handle
        self._runs[name] = rt.restart_count
        self._unswept += 1
        if self.config.orphan_reaper is not None:
            self.config.orphan_reaper.watch_main(handle.pid, handle.start_ticks)
        rt.state, rt.reason, rt.message = "running", "", None
        rt.started_at = started_at
        rt.pid = handle.pid
        rt.container_id = f"corral://{self.uid}/{name}/{rt.restart_count}"
        spec_probes = {kind: container.get(f"{kind}Probe") for kind in ("startup", "liveness", "readiness")}
        rt.started = not (probes and spec_probes["startup"])
        rt.ready = probes and not spec_probes["readiness"] and rt.started
        self._changed()
        started_event = asyncio.Event()
        if rt.started:
            started_event.set()
        aux: list[asyncio.Task[Any]] = [asyncio.create_task(self._index_logs(name, rt.restart_count, handle))]
        if probes:
            for kind, probe in spec_probes.items():
                if probe:
                    aux.append(asyncio.create_task(
                        self._probe_loop(kind, probe, container, rt=rt, handle=handle, env=env, cwd=cwd,
                                         started=started_event)))
        try:
            info = await handle.exited
        finally:
            for task in aux:
                task.cancel()
            for task in aux:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._end_run(name, handle)
        self._log_indexer(name, rt.restart_count).poll()
        finished = self.clock.now()
        reason = "Completed" if info.exit_code == 0 else "Error"
        message = self._kill_reasons.pop(name, None)
        cgroup_path = self._cgroup_paths.get(name)
        if cgroup_path is not None and Cgroups.oom_kills(cgroup_path) > self._oom_before.get(name, 0):
            reason = "OOMKilled"
        if not info.known:
            reason = "ContainerStatusUnknown"
            message = message or "the container was adopted after an agent restart; its exit status is unknown"
        rt.state = "terminated"
        rt.ready = False
        rt.pid = None
        rt.last = Termination(exit_code=info.exit_code, reason=reason, started_at=started_at, finished_at=finished,
                              signal=info.signal, message=message, container_id=rt.container_id)
        self._changed()
        return info

    def _fail_to_start(self, rt: ContainerRuntime, reason: str, message: str, code: int = 1) -> ExitInfo:
        self._event("Warning", "Failed", f"Error: {reason}: {message}")
        now = self.clock.now()
        rt.state = "terminated"
        rt.ready = False
        rt.last = Termination(exit_code=code, reason=reason, started_at=None, finished_at=now, message=message)
        self._changed()
        return ExitInfo(exit_code=code, signal=None)

    def _log_indexer(self, name: str, restart_count: int) -> logfiles.LogIndexer:
        return logfiles.LogIndexer(logfiles.log_path(self.container_dir(name), restart_count),
                                   max_size=self.config.log_max_size, max_files=self.config.log_max_files)

    async def _index_logs(self, name: str, restart_count: int, handle: ProcessHandle) -> None:
        indexer = self._log_indexer(name, restart_count)
        while handle.running:
            indexer.poll()
            await asyncio.sleep(self.config.log_index_period)

    # ----------------------------------------------------------------- every process of a run

    async def _run_processes(self, name: str, handle: ProcessHandle) -> list[reaper.ProcInfo]:
        """The live processes of a container's current run, found by marker, session and ancestry."""
        run = self._runs.get(name, 0)
        found = await asyncio.to_thread(reaper.find_run, key=reaper.CONTAINER_ID_ENV,
                                        value=reaper.container_id(self.uid, name, run), roots=[handle.pid])
        if self.config.orphan_reaper is not None:
            self.config.orphan_reaper.note(found)
        return found

    async def _signal_run(self, name: str, handle: ProcessHandle, sig: int) -> list[reaper.ProcInfo]:
        cgroup = self._cgroup_paths.get(name)
        if cgroup is not None:  # authoritative, and no /proc scan (which costs with many pods)
            handle.signal_group(sig)
            reaper.signal_cgroup(cgroup, sig)
            return []
        found = await self._run_processes(name, handle)  # first: all of them are noted alive
        handle.signal_group(sig)
        reaper.send(found, sig)
        return found

    async def _end_run(self, name: str, handle: ProcessHandle) -> None:
        """The main process exited: kill what it left behind (as a PID namespace would) and reap it."""
        found = await self._signal_run(name, handle, SIGKILL)
        await reaper.wait_gone(found, 5.0, self.config.orphan_reaper, self._cgroup_paths.get(name))
        self._unswept -= 1
        if self.config.orphan_reaper is not None:
            self.config.orphan_reaper.unwatch_main(handle.pid)

    async def _probe_loop(self, kind: str, probe: Mapping[str, Any], container: Mapping[str, Any], *,
                          rt: ContainerRuntime, handle: ProcessHandle, env: dict[str, str], cwd: str | None,
                          started: asyncio.Event) -> None:
        timing = ProbeTiming.from_spec(probe, kind)
        initial = {"readiness": False, "liveness": True, "startup": None}[kind]
        tracker = ProbeTracker(timing.success_threshold, timing.failure_threshold, initial)
        if kind != "startup":
            await started.wait()
        await asyncio.sleep(timing.initial_delay)
        while handle.running and not self._terminating:
            identity = self._run_as.get(str(container["name"]), RunAs())
            ok, message = await run_probe(probe, pod_ip=self.runtime.pod_ip, container=container, env=env,
                                          cwd=cwd, timeout=timing.timeout, user=identity.uid, group=identity.gid)
            if not handle.running:
                return
            before = tracker.result
            result = tracker.observe(ok)
            if kind == "readiness":
                if rt.ready != bool(result):
                    rt.ready = bool(result)
                    self._changed()
                    if not result:
                        self._event("Warning", "Unhealthy", f"Readiness probe failed: {message}")
            elif kind == "startup":
                if result is True:
                    rt.started = True
                    if not container.get("readinessProbe"):
                        rt.ready = True
                    started.set()
                    self._changed()
                    return
                if result is False:
                    self._kill_reasons[str(container["name"])] = f"Startup probe failed: {message}"
                    self._event("Warning", "Unhealthy", f"Startup probe failed: {message}")
                    await self._kill(str(container["name"]), handle, self.grace_seconds(), container)
                    return
            elif kind == "liveness" and result is False and before is not False:
                self._kill_reasons[str(container["name"])] = f"Liveness probe failed: {message}"
                self._event("Warning", "Unhealthy", f"Liveness probe failed: {message}")
                self._event("Normal", "Killing", f"Container {container['name']} failed liveness probe, will be "
                            "restarted")
                await self._kill(str(container["name"]), handle, self.grace_seconds(), container)
                return
            await asyncio.sleep(timing.period)

    # ----------------------------------------------------------------- termination

    def grace_seconds(self) -> float:
        meta = self.pod.get("metadata", {})
        value = meta.get("deletionGracePeriodSeconds")
        if value is None:
            value = self.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        return max(0.0, float(value if value is not None else 30))

    async def _kill(self, name: str, handle: ProcessHandle, grace: float,
                    container: Mapping[str, Any] | None = None) -> None:
        deadline = asyncio.get_running_loop().time() + grace
        pre_stop = ((container or {}).get("lifecycle") or {}).get("preStop")
        if pre_stop and handle.running and grace > 0:
            env = self._container_env(container or {}) if container else dict(self._base_env)
            identity = self._run_as.get(name, RunAs())
            with contextlib.suppress(Exception):
                await run_probe(pre_stop, pod_ip=self.runtime.pod_ip, container=container or {}, env=env,
                                cwd=(container or {}).get("workingDir"), timeout=grace, user=identity.uid,
                                group=identity.gid)
        if handle.running:
            await self._signal_run(name, handle, SIGTERM)
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining > 0 and handle.running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(handle.exited), remaining)
        if handle.running:
            found = await self._signal_run(name, handle, SIGKILL)  # the main process and every leftover
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(handle.exited), 5)
            await reaper.wait_gone(found, 5.0, self.config.orphan_reaper, self._cgroup_paths.get(name))
        # once the main process is gone, its run's _end_run kills and reaps the rest

    async def terminate(self, grace: float | None = None) -> None:
        """Stop every container (preStop, SIGTERM, grace, SIGKILL); idempotent."""
        self._terminating = True
        self._stop.set()
        if grace is None:
            grace = self.grace_seconds()
        spec = self.pod.get("spec", {})
        by_name = {c["name"]: c for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or [])}
        kills = [self._kill(name, handle, grace, by_name.get(name))
                 for name, handle in list(self._handles.items()) if handle.running]
        for name, handle in list(self._handles.items()):
            if handle.running:
                self._event("Normal", "Killing", f"Stopping container {name}")
        await asyncio.gather(*kills)
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            if not self._task.done():
                self._task.cancel()
        await self._kill_pod_leftovers()
        for rt in self.runtime.init + self.runtime.containers:
            if rt.state == "waiting":
                rt.reason = "PodTerminating" if rt.reason != "CreateContainerConfigError" else rt.reason
        self._changed()

    async def _kill_pod_leftovers(self) -> None:
        """Anything of any run of this pod still alive (a run the agent lost track of)."""
        if self.path_error is not None:
            return
        if self.config.cgroups is not None:
            pod_cgroup = self.config.cgroups.pod_path(self.uid)
            reaper.signal_cgroup(pod_cgroup, SIGKILL)
            await reaper.wait_gone([], 5.0, None, pod_cgroup)
            return
        if not self._adopted and self._unswept == 0:
            return  # every run was swept when it ended (and a /proc scan is not free)
        found = await asyncio.to_thread(reaper.find_run, key=reaper.POD_UID_ENV, value=self.uid)
        if self.config.orphan_reaper is not None:
            self.config.orphan_reaper.note(found)
        reaper.send(found, SIGKILL)
        await reaper.wait_gone(found, 5.0, self.config.orphan_reaper)

    async def detach(self) -> None:
        """Stop watching without touching the processes (an agent that is restarting)."""
        self._terminating = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for handle in self._handles.values():
            handle.close()

    def cleanup(self) -> None:
        """Remove the pod's files and cgroups once it is gone from the API."""
        if self.path_error is not None:
            return  # nothing was written
        if self.config.cgroups is not None:
            self.config.cgroups.remove_pod(self.uid)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def done(self) -> bool:
        return self.finished.is_set()
