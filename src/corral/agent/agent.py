"""The node agent: corral's kubelet for one machine.

:class:`Agent` composes the parts:

- **Registration and heartbeat** (:class:`~corral.agent.node.NodeReporter`): the
  Node with capacity, GPU labels and the device inventory; a Lease renewed every
  ``heartbeat_interval``; node conditions.
- **Pods**: an informer on pods with ``spec.nodeName=<node>``; every change
  enqueues the pod's key, and :meth:`Agent._sync` compares the pod with the
  workers the agent has (level-triggered): start a :class:`PodWorker` for a new
  pod, terminate and then delete (``gracePeriodSeconds=0``) a pod whose
  ``deletionTimestamp`` is set, stop the worker of a pod that vanished.
- **Status**: a worker's changes mark its pod dirty; a writer turns the runtime
  into ``status`` with :func:`~corral.agent.status.pod_status` and writes it
  (merge patch of the status subresource) only when it changed.
- **Logs**: an HTTP endpoint (``/containerLogs/<ns>/<pod>/<container>``)
  advertised in ``status.daemonEndpoints.kubeletEndpoint.Port`` of the node; the
  API server's ``pods/log`` proxies to it.
- **Restart**: pods bound here whose directory exists under ``<data>/pods`` are
  adopted (their processes found through pid files); directories of pods the
  API no longer has are cleaned up and their processes killed.

``stop()`` terminates every pod (``stop(kill_pods=False)`` leaves them running
for a restarting agent to adopt).

A pod the agent cannot run as written (a spec it cannot read, e.g. stored by an older
version past validation) is rejected as the kubelet rejects a pod it cannot admit: phase
``Failed`` with reason ``InvalidPod`` and a message naming the problem, and a Warning
Event; the agent goes on with the other pods. Its loops (heartbeat, status, sync) run
under a :class:`~corral.util.supervise.Supervisor` (restarted with backoff if they crash,
reported on ``/readyz`` through :meth:`Agent.health_checks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from corral.agent import exec as exec_streams
from corral.agent import logs as logfiles
from corral.agent import reaper
from corral.agent.cgroups import Cgroups
from corral.agent.gpus import GpuDevice, discover_nvml, parse_simulated
from corral.agent.ipblocks import ClaimedBlock, claim_block, default_lock_dir, read_previous, record
from corral.agent.node import (
    NodeFacts,
    NodeReporter,
    default_node_name,
    disk_bytes,
    machine_resources,
    node_resources,
)
from corral.agent.podenv import PodIPAllocator
from corral.agent.process import SIGKILL, proc_start_ticks, read_pid_file
from corral.agent.status import pod_status
from corral.agent.worker import PodWorker, RuntimeConfig, pod_key
from corral.api.registry import Obj
from corral.client import ApiClient, ApiError, EventRecorder, Informer, WorkQueue
from corral.client.tokenreview import TokenCheck
from corral.client.workqueue import QueueClosedError
from corral.controllers.nodelifecycle import NodeLifecycleConfig, NodeLifecycleController
from corral.util.clock import Clock, SystemClock
from corral.util.datadir import AGENT_ENTRIES, make_private, private_umask
from corral.util.streamproto import EXEC_PROTOCOLS, PORTFORWARD_PROTOCOLS, choose_protocol
from corral.util.supervise import HealthCheck, Supervisor, describe

log = logging.getLogger(__name__)


@dataclass
class AgentConfig:
    """Everything tunable about one agent; defaults are Kubernetes' where one exists."""

    data_dir: Path
    node_name: str = field(default_factory=default_node_name)
    simulated_gpus: list[str] = field(default_factory=list)
    discover_gpus: bool = True
    heartbeat_interval: float = 10.0
    lease_duration: int = 40
    status_interval: float = 60.0
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    backoff_reset: float = 600.0
    log_index_period: float = 1.0
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    max_pods: int = 250
    pod_cidr: str | None = None  # None: claim a free automatic block (corral.agent.ipblocks)
    lock_dir: Path = field(default_factory=default_lock_dir)  # machine-wide claims on pod IP blocks
    cgroup_root: Path | None = None
    enforce_limits: bool = True
    use_cgroups: bool = True  # a cgroup per container where possible (tracking; limits need controllers)
    container_log_max_size: int = 10 * 1024 * 1024  # kubelet's containerLogMaxSize
    container_log_max_files: int = 5  # kubelet's containerLogMaxFiles (the current file included)
    shutdown_grace: float = 5.0
    status_writers: int = 8
    pod_events: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    pod_root: Path | None = None  # pods' checkpoint dirs; default DATA-pods beside data_dir (corral.util.datadir)


class Agent:
    """Runs this node's pods; a ``corral up`` component (``start``/``stop``)."""

    def __init__(self, client: ApiClient, config: AgentConfig, clock: Clock | None = None) -> None:
        self.client = client
        self.config = config
        self.clock = clock or SystemClock()
        self.workers: dict[str, PodWorker] = {}
        self.devices: list[GpuDevice] = []
        self.gpu_message = ""
        self.limits_message = ""
        self._queue = WorkQueue()
        self._dirty: set[str] = set()
        self._dirty_event = asyncio.Event()
        self._written: dict[str, Any] = {}
        self.supervisor = Supervisor("agent", clock=self.clock)
        self._terminations: dict[str, asyncio.Task[None]] = {}
        self._event_tasks: set[asyncio.Task[None]] = set()
        self._termination_grace: dict[str, float] = {}
        self._finished: dict[str, Path] = {}  # pods that ended before this agent started: their files
        self._informer: Informer | None = None
        self._runner: web.AppRunner | None = None
        self._ips: PodIPAllocator | None = None
        self.pod_block: ClaimedBlock | None = None
        self._runtime: RuntimeConfig | None = None
        self.reporter: NodeReporter | None = None
        self.port = 0
        self.events = EventRecorder(client, "corral-agent", clock=self.clock, host=config.node_name)
        self.token_check = TokenCheck.for_client(client, clock=self.clock)
        self._public_resource: web.AbstractResource | None = None
        self.status_writes = 0
        self.heartbeat_late = 0
        self.max_heartbeat_gap = 0.0

    # ------------------------------------------------------------------ start/stop

    async def start(self) -> None:
        cfg = self.config
        private_umask()  # pod logs, pid files: corral's user only (the data dir holds no pod-facing path)
        make_private(cfg.data_dir, AGENT_ENTRIES)  # including what an older agent left 0644/0755
        devices: list[GpuDevice] = []
        messages = []
        if cfg.discover_gpus:
            real, message = await asyncio.to_thread(discover_nvml)
            devices.extend(real)
            messages.append(message)
        for spec in cfg.simulated_gpus:
            devices.extend(parse_simulated(spec, first_index=len(devices), node_name=cfg.node_name))
        if cfg.simulated_gpus:
            messages.append(f"{sum(1 for d in devices if d.simulated)} simulated GPU(s) declared")
        self.devices = devices
        self.gpu_message = "; ".join(messages)
        cgroups: Cgroups | None = None
        if cfg.use_cgroups:
            cgroups, self.limits_message = await asyncio.to_thread(
                Cgroups.detect, cfg.node_name, cfg.cgroup_root, want_limits=cfg.enforce_limits)
        else:
            self.limits_message = "cgroups disabled by configuration"
        if not cfg.enforce_limits:
            self.limits_message = "resource limits disabled by configuration"
        limits_enforced = cgroups is not None and cgroups.limits
        if not limits_enforced:
            self.limits_message = "limits.cpu/limits.memory are NOT enforced: " + self.limits_message
        cpus, memory = machine_resources()
        cidr_file = cfg.data_dir / "pod-cidr"
        self.pod_block = claim_block(cfg.lock_dir, cfg.node_name, previous=read_previous(cidr_file),
                                     explicit=ipaddress.IPv4Network(cfg.pod_cidr) if cfg.pod_cidr else None)
        record(cidr_file, self.pod_block.network)
        self._ips = PodIPAllocator(self.pod_block.network)
        await self._start_http()
        facts = NodeFacts(name=cfg.node_name, cpu=cpus, memory_bytes=memory, devices=devices,
                          max_pods=cfg.max_pods, address=cfg.listen_host if cfg.listen_host != "0.0.0.0" else
                          "127.0.0.1", port=self.port, limits_enforced=limits_enforced,
                          limits_message=self.limits_message, gpu_message=self.gpu_message,
                          extra_labels=dict(cfg.labels), storage_bytes=disk_bytes(cfg.data_dir),
                          pod_cidr=str(self.pod_block.network))
        self._runtime = RuntimeConfig(data_dir=cfg.data_dir, node_name=cfg.node_name, devices=devices,
                                      allocatable=node_resources(facts), cgroups=cgroups,
                                      backoff_initial=cfg.backoff_initial, backoff_max=cfg.backoff_max,
                                      backoff_reset=cfg.backoff_reset, log_index_period=cfg.log_index_period,
                                      log_max_size=cfg.container_log_max_size,
                                      log_max_files=cfg.container_log_max_files,
                                      host_env=dict(os.environ), pod_root=cfg.pod_root,
                                      # without a cgroup per container, orphans must come back to us
                                      orphan_reaper=reaper.OrphanReaper()
                                      if cgroups is None and reaper.enable_subreaper() else None)
        self.reporter = NodeReporter(self.client, facts, self.clock, lease_duration=cfg.lease_duration,
                                     data_dir=cfg.data_dir, status_interval=cfg.status_interval)
        node = await self.reporter.register()
        await self.reporter.ensure_lease_namespace()
        await self.reporter.renew_lease()
        if not limits_enforced:
            await self.events.record(node, "Warning", "ResourceLimitsNotEnforced", self.limits_message)
        self._informer = Informer(self.client, "v1", "pods", field_selector=f"spec.nodeName={cfg.node_name}")
        self._informer.add_handler(on_add=self._on_pod, on_update=lambda _o, n: self._on_pod(n),
                                   on_delete=self._on_pod)
        await self._informer.start()
        await self._informer.wait_synced(60)
        await self._adopt_or_clean()
        self.supervisor.spawn("heartbeat", self._heartbeat_loop)
        self.supervisor.spawn("status", self._status_loop)
        self.supervisor.spawn("sync", self._sync_loop)
        orphan_reaper = self._runtime.orphan_reaper
        if orphan_reaper is not None:
            self.supervisor.spawn("reaper", lambda: self._reap_loop(orphan_reaper))

    def health_checks(self) -> dict[str, HealthCheck]:
        """``/readyz`` fails while one of the agent's loops is crash-looping."""
        return {"agent": self.supervisor.check}

    async def stop(self, kill_pods: bool = True) -> None:
        self._queue.shutdown()
        await self.supervisor.stop()
        if self._informer is not None:
            await self._informer.stop()
        workers = list(self.workers.values())
        if kill_pods:
            await asyncio.gather(*(w.terminate(min(w.grace_seconds(), self.config.shutdown_grace))
                                   for w in workers), return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush_statuses(), 3)
        else:
            await asyncio.gather(*(w.detach() for w in workers), return_exceptions=True)
        for task in list(self._terminations.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.workers.clear()
        for event_task in list(self._event_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(event_task, 2)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._runtime is not None and self._runtime.cgroups is not None and kill_pods:
            for worker in workers:  # their processes are gone: a restarted agent makes new cgroups
                self._runtime.cgroups.remove_pod(worker.uid)
            with contextlib.suppress(OSError):
                self._runtime.cgroups.base.rmdir()  # only when empty: no pod left behind
        if self.pod_block is not None:
            self.pod_block.release()  # after the pods are gone: their addresses are free again

    # ------------------------------------------------------------------ pods

    def _on_pod(self, pod: Obj) -> None:
        self._queue.add(pod_key(pod))

    async def _sync_loop(self) -> None:
        while True:
            try:
                key = await self._queue.get()
            except QueueClosedError:
                return
            try:
                await self._sync(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("agent: syncing pod %s failed; retrying", key)
                self._queue.add_rate_limited(key)
            else:
                self._queue.forget(key)
            finally:
                self._queue.done(key)

    async def _sync(self, key: str) -> None:
        assert self._informer is not None and self._runtime is not None and self._ips is not None
        pod = self._informer.get(key)
        worker = self.workers.get(key)
        leftover = self._finished.get(key)
        if leftover is not None and (pod is None or str(pod["metadata"].get("uid")) != leftover.name):
            self._remove_leftover(self._finished.pop(key))
        if worker is not None and (pod is None or pod["metadata"].get("uid") != worker.pod["metadata"].get("uid")):
            # the pod was removed (or replaced by a namesake): stop what ran for it
            self._begin_termination(key, worker, delete_after=False, grace=0.0)
            worker = None
        if pod is None:
            return
        if pod.get("spec", {}).get("nodeName") != self.config.node_name:
            return
        if pod["metadata"].get("deletionTimestamp"):
            if worker is not None:
                worker.pod = pod
                self._begin_termination(key, worker, delete_after=True)
            elif key not in self._terminations:
                await self._delete_now(pod)
            return
        if worker is not None:
            worker.pod["metadata"] = pod["metadata"]
            worker.pod["status"] = pod.get("status") or worker.pod.get("status")
            return
        if key in self._terminations:
            self._queue.add_after(key, 0.2)  # wait for the namesake to be gone
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return  # finished before this agent started; nothing to run again
        try:
            self._start_worker(pod, adopt_existing=False)
        except Exception as error:
            await self._reject(pod, error)

    async def _reject(self, pod: Obj, error: Exception) -> None:
        """A pod the agent cannot run as written: ``Failed``/``InvalidPod`` with the problem, and an Event."""
        key = pod_key(pod)
        self.workers.pop(key, None)
        message = f"the agent cannot run this pod: {describe(error)}"
        log.warning("agent: rejecting pod %s: %s", key, message, exc_info=error)
        meta = pod.get("metadata") or {}
        status = {"phase": "Failed", "reason": "InvalidPod", "message": message}
        try:
            await self.client.patch("v1", "pods", str(meta.get("name")), {"status": status},
                                    namespace=meta.get("namespace"), subresource="status")
        except ApiError as api_error:
            if not api_error.not_found:
                raise
            return
        if self.config.pod_events:
            await self.events.record(pod, "Warning", "InvalidPod", message)

    def _start_worker(self, pod: Obj, adopt_existing: bool, pod_ip: str | None = None) -> PodWorker:
        assert self._runtime is not None and self._ips is not None
        key = pod_key(pod)
        ip = pod_ip or self._ips.allocate()
        try:
            worker = PodWorker(pod, ip, self._runtime, clock=self.clock, on_change=lambda: self._mark_dirty(key),
                               on_event=lambda kind, reason, message: self._record(key, kind, reason, message))
        except Exception:
            if pod_ip is None:
                self._ips.release(ip)
            raise
        self.workers[key] = worker
        worker.start(adopt_existing=adopt_existing)
        self._mark_dirty(key)
        return worker

    def _record(self, key: str, kind: str, reason: str, message: str) -> None:
        """Record an Event about a pod in the background (events never block the pod)."""
        if not self.config.pod_events:
            return
        worker = self.workers.get(key)
        pod = worker.pod if worker is not None else (self._informer.get(key) if self._informer else None)
        if pod is None:
            return
        event_type: Literal["Normal", "Warning"] = "Warning" if kind == "Warning" else "Normal"
        task = asyncio.create_task(self.events.record(pod, event_type, reason, message))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    def _begin_termination(self, key: str, worker: PodWorker, *, delete_after: bool,
                           grace: float | None = None) -> None:
        wanted = worker.grace_seconds() if grace is None else grace
        if key in self._terminations:
            if wanted < self._termination_grace.get(key, wanted):
                # a later delete shortened the grace period (or force-deleted the pod): hurry up
                self._termination_grace[key] = wanted
                hurry = asyncio.create_task(worker.terminate(wanted))
                self._event_tasks.add(hurry)
                hurry.add_done_callback(self._event_tasks.discard)
            return
        self._termination_grace[key] = wanted
        self._terminations[key] = asyncio.create_task(self._terminate(key, worker, delete_after, wanted))

    async def _terminate(self, key: str, worker: PodWorker, delete_after: bool, grace: float | None) -> None:
        try:
            await worker.terminate(grace)
            if delete_after:
                await self._write_status(key, worker, force=True)
                await self._delete_now(worker.pod)
        except Exception:
            log.exception("agent: terminating %s failed", key)
        finally:
            if self.workers.get(key) is worker:
                del self.workers[key]
            if self._ips is not None:
                self._ips.release(worker.runtime.pod_ip)
            worker.cleanup()
            self._written.pop(key, None)
            self._terminations.pop(key, None)
            self._termination_grace.pop(key, None)
            self._queue.add(key)

    async def _delete_now(self, pod: Obj) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            await self.client.delete("v1", "pods", meta["name"], meta.get("namespace"), grace_period_seconds=0,
                                     uid=meta.get("uid"))

    async def _adopt_or_clean(self) -> None:
        """After a restart: adopt pods we still run, kill processes of pods the API no longer has."""
        assert self._informer is not None
        pods_dir = self.config.data_dir / "pods"
        by_uid = {str(p["metadata"].get("uid")): p for p in self._informer.list()}
        if not pods_dir.is_dir():
            return
        for directory in sorted(pods_dir.iterdir()):
            if not directory.is_dir():
                continue
            pod = by_uid.get(directory.name)
            if pod is not None and not pod["metadata"].get("deletionTimestamp") and \
                    (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                try:
                    saved = json.loads((directory / "pod.json").read_text())
                except (OSError, ValueError):
                    saved = {}
                ip = saved.get("podIP") or (pod.get("status") or {}).get("podIP")
                if ip and self._ips is not None and self._ips.reserve(ip):
                    self._start_worker(pod, adopt_existing=True, pod_ip=ip)
                    continue
            if pod is not None and pod["metadata"].get("deletionTimestamp"):
                self._start_worker(pod, adopt_existing=True,
                                   pod_ip=(pod.get("status") or {}).get("podIP") or None)
                continue
            await asyncio.to_thread(_kill_leftovers, directory, self._runtime)
            if pod is not None:  # finished before the restart: keep its logs until the pod is deleted
                self._finished[pod_key(pod)] = directory
                continue
            self._remove_leftover(directory)

    def _remove_leftover(self, directory: Path) -> None:
        """The files (and empty cgroups) of a pod no worker runs any more."""
        if self._runtime is not None and self._runtime.cgroups is not None:
            with contextlib.suppress(ValueError):
                self._runtime.cgroups.remove_pod(directory.name)
        shutil.rmtree(directory, ignore_errors=True)

    # ------------------------------------------------------------------ status

    def _mark_dirty(self, key: str) -> None:
        self._dirty.add(key)
        self._dirty_event.set()

    async def _status_loop(self) -> None:
        semaphore = asyncio.Semaphore(self.config.status_writers)

        async def write(key: str) -> None:
            async with semaphore:
                worker = self.workers.get(key)
                if worker is not None:
                    try:
                        await self._write_status(key, worker)
                    except Exception as error:
                        log.warning("agent: status of %s not written (%s); will retry", key, error)
                        await asyncio.sleep(0.5)
                        self._mark_dirty(key)

        while True:
            await self._dirty_event.wait()
            self._dirty_event.clear()
            keys = list(self._dirty)
            self._dirty.clear()
            await asyncio.gather(*(write(k) for k in keys))

    async def _flush_statuses(self) -> None:
        for key, worker in list(self.workers.items()):
            with contextlib.suppress(Exception):
                await self._write_status(key, worker, force=True)

    async def _write_status(self, key: str, worker: PodWorker, force: bool = False) -> None:
        assert self._informer is not None
        pod = self._informer.get(key) or worker.pod
        if pod["metadata"].get("uid") != worker.pod["metadata"].get("uid"):
            return
        status = pod_status(pod, worker.runtime, self.clock.now())
        comparable = json.dumps(status, sort_keys=True)
        if not force and self._written.get(key) == comparable:
            return
        meta = pod["metadata"]
        try:
            await self.client.patch("v1", "pods", meta["name"], {"status": status}, namespace=meta.get("namespace"),
                                    subresource="status")
        except ApiError as error:
            if error.not_found:
                return
            raise
        self._written[key] = comparable
        worker.pod["status"] = status
        self.status_writes += 1

    async def _reap_loop(self, orphan_reaper: reaper.OrphanReaper) -> None:
        """Reap container processes that were re-parented to us and exited on their own."""
        while True:
            await asyncio.sleep(1.0)
            try:
                orphan_reaper.reap()
            except OSError as error:  # /proc unreadable for a moment: try again next time
                log.warning("agent: reaping orphans failed: %s", error)

    # ------------------------------------------------------------------ heartbeat

    async def _heartbeat_loop(self) -> None:
        assert self.reporter is not None
        interval = self.config.heartbeat_interval
        last = time.monotonic()
        while True:
            await self.clock.sleep(interval)
            now = time.monotonic()
            gap = now - last
            self.max_heartbeat_gap = max(self.max_heartbeat_gap, gap)
            if gap > interval * 1.5:
                self.heartbeat_late += 1
            last = now
            try:
                await self.reporter.heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("agent: heartbeat failed: %s", error)

    # ------------------------------------------------------------------ logs endpoint

    async def _start_http(self) -> None:
        app = web.Application(middlewares=[self._authenticate])
        self._public_resource = app.router.add_get("/healthz", self._healthz).resource
        app.router.add_get("/containerLogs/{namespace}/{pod}", self._logs)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/pods", self._pods)
        for kind in ("exec", "attach"):
            app.router.add_route("*", f"/{kind}/{{namespace}}/{{pod}}/{{container}}", self._streams)
        app.router.add_route("*", "/portforward/{namespace}/{pod}", self._streams)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.listen_host, self.config.listen_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else self.config.listen_port

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Every endpoint but ``/healthz`` needs a bearer token the API server accepts (see
        :mod:`corral.client.tokenreview`). Decided on the route aiohttp matched — the one that answers."""
        public = self._public_resource is not None and request.match_info.route.resource is self._public_resource
        if not public and not await self.token_check.check(request.headers.get("Authorization")):
            return _status_error(401, "Unauthorized", "Unauthorized: a bearer token the API server accepts is required")
        response: web.StreamResponse = await handler(request)
        return response

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _pods(self, _request: web.Request) -> web.Response:
        items = [{"metadata": w.pod["metadata"], "status": pod_status(w.pod, w.runtime, self.clock.now())}
                 for w in self.workers.values()]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "items": items})

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        namespace = request.match_info["namespace"]
        name = request.match_info["pod"]
        key = f"{namespace}/{name}"
        worker = self.workers.get(key)
        if worker is None and key in self._finished:
            return await self._finished_logs(request, self._finished[key])
        if worker is None:
            return _status_error(404, "NotFound", f"pod {name!r} in namespace {namespace!r} is not running on "
                                 f"node {self.config.node_name!r}")
        container = request.match_info.get("container") or request.query.get("container")
        names = [c.name for c in worker.runtime.containers]
        all_names = names + [c.name for c in worker.runtime.init]
        if not container:
            if len(names) != 1:
                return _status_error(400, "BadRequest", f"a container name must be specified for pod {name}, "
                                     f"choose one of: [{' '.join(names)}]")
            container = names[0]
        if container not in all_names:
            return _status_error(400, "BadRequest", f"container {container} is not valid for pod {name}")
        try:
            params = _log_params(request.query)
        except ValueError as error:
            return _status_error(400, "BadRequest", str(error))
        path = worker.log_file(container, previous=params["previous"])
        if path is None or not path.exists():
            reason = "previous terminated container" if params["previous"] else "container"
            return _status_error(400, "BadRequest", f"{reason} {container!r} in pod {name!r} has no logs yet")
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        current = worker.log_file(container) == path and not params["previous"]
        chunks = logfiles.stream(path, follow=params["follow"] and current, timestamps=params["timestamps"],
                                 tail_lines=params["tail_lines"], since_seconds=params["since_seconds"],
                                 limit_bytes=params["limit_bytes"], still_running=lambda: worker.container_running(container) and
                                 worker.log_file(container) == path)
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            async for chunk in chunks:
                await response.write(chunk)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _finished_logs(self, request: web.Request, directory: Path) -> web.StreamResponse:
        """Logs of a pod that finished before this agent started (no worker, files only)."""
        containers = sorted(p.name for p in directory.iterdir() if p.is_dir())
        container = request.match_info.get("container") or request.query.get("container")
        if not container and len(containers) == 1:
            container = containers[0]
        if not container or container not in containers:
            return _status_error(400, "BadRequest", f"choose a container of this pod: [{' '.join(containers)}]")
        try:
            params = _log_params(request.query)
        except ValueError as error:
            return _status_error(400, "BadRequest", str(error))
        runs = sorted(int(p.stem) for p in (directory / container).glob("*.log") if p.stem.isdigit())
        wanted = runs[-2] if params["previous"] and len(runs) > 1 else (runs[-1] if runs and not params["previous"]
                                                                         else None)
        if wanted is None:
            return _status_error(400, "BadRequest", f"container {container!r} has no such logs")
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        async for chunk in logfiles.stream(logfiles.log_path(directory / container, wanted), follow=False,
                                           timestamps=params["timestamps"], tail_lines=params["tail_lines"],
                                           since_seconds=params["since_seconds"],
                                           limit_bytes=params["limit_bytes"], still_running=lambda: False):
            await response.write(chunk)
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ exec, attach, port-forward

    async def _streams(self, request: web.Request) -> web.StreamResponse:
        """A WebSocket session of ``/exec``, ``/attach`` or ``/portforward`` (see :mod:`corral.agent.exec`)."""
        kind = request.path.split("/")[1]
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        protocol = choose_protocol(offered, PORTFORWARD_PROTOCOLS if kind == "portforward" else EXEC_PROTOCOLS)
        if protocol is None:
            return _status_error(400, "BadRequest", f"none of the offered WebSocket subprotocols ({offered}) is "
                                 "supported")
        ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return _status_error(400, "BadRequest", "Upgrade request required (a WebSocket)")
        namespace, name = request.match_info["namespace"], request.match_info["pod"]
        worker = self.workers.get(f"{namespace}/{name}")
        container = request.match_info.get("container", "")
        problem = None
        if worker is None:
            problem = f"pod {name!r} in namespace {namespace!r} is not running on node {self.config.node_name!r}"
        elif kind != "portforward" and worker.container_spec(container) is None:
            problem = f"container {container} is not valid for pod {name}"
        elif kind != "portforward" and not worker.container_running(container):
            problem = f"container {container} is not running"
        await ws.prepare(request)
        options = exec_streams.StreamOptions.from_query(request.query)
        if problem is not None or worker is None:
            await exec_streams.Channels(ws, protocol).finish(None, problem or "")
            return ws
        if kind == "exec":
            argv = request.query.getall("command", [])
            try:
                context = worker.exec_context(container)
            except ValueError as error:
                await exec_streams.Channels(ws, protocol).finish(None, str(error))
                return ws
            if not argv:
                await exec_streams.Channels(ws, protocol).finish(None, "you must specify at least one command")
                return ws
            await exec_streams.run_exec(ws, protocol, argv, context, options=options)
        elif kind == "attach":
            if options.stdin:
                spec = worker.container_spec(container) or {}
                message = ("stdin is not enabled for this container" if not spec.get("stdin") else
                           "attaching stdin is not supported: corral starts containers with stdin closed")
                await exec_streams.Channels(ws, protocol).finish(None, message)
                return ws
            path = worker.log_file(container)

            def output() -> Any:
                if path is None:
                    return _nothing()
                return logfiles.stream(path, follow=True, timestamps=False, tail_lines=0, since_seconds=None,
                                       still_running=lambda: worker.container_running(container)
                                       and worker.log_file(container) == path)
            await exec_streams.run_attach(ws, protocol, output)
        else:
            try:
                ports = [int(port) for value in request.query.getall("ports", [])
                         for port in value.split(",") if port.strip()]
            except ValueError:
                ports = []
            if not ports or any(not 0 < port < 65536 for port in ports):
                await exec_streams.Channels(ws, protocol).finish(None, "ports: at least one port in 1-65535 is required")
                return ws
            await exec_streams.run_port_forward(ws, worker.runtime.pod_ip, ports, pod=name)
        return ws

    # ------------------------------------------------------------------ introspection

    def pod_ip(self, key: str) -> str | None:
        worker = self.workers.get(key)
        return worker.runtime.pod_ip if worker else None


async def _nothing() -> Any:
    return
    yield


def _log_params(query: Any) -> dict[str, Any]:
    def flag(name: str) -> bool:
        return str(query.get(name, "false")).lower() in ("true", "1", "yes")

    def number(name: str) -> int | None:
        raw = query.get(name)
        if raw in (None, ""):
            return None
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{name}: {raw!r} is not an integer") from None
        if value < 0:
            raise ValueError(f"{name}: must not be negative")
        return value

    return {"follow": flag("follow"), "previous": flag("previous"), "timestamps": flag("timestamps"),
            "tail_lines": number("tailLines"), "since_seconds": number("sinceSeconds"),
            "limit_bytes": number("limitBytes")}


def _status_error(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, status=code)


def _kill_leftovers(directory: Path, runtime: RuntimeConfig | None) -> None:
    """SIGKILL every process of a pod directory whose pod is gone: its cgroup, its
    marked processes (:mod:`corral.agent.reaper`) and the process groups of its pid files."""
    if runtime is not None and runtime.cgroups is not None:
        with contextlib.suppress(ValueError):
            reaper.signal_cgroup(runtime.cgroups.pod_path(directory.name), SIGKILL)
    reaper.send(reaper.find_run(key=reaper.POD_UID_ENV, value=directory.name), SIGKILL)
    for pid_file in directory.glob("*/*.pid"):
        record = read_pid_file(pid_file) or {}
        handle_pid = int(record.get("pid", 0))
        ticks = int(record.get("startTicks", -1))
        if handle_pid <= 0:
            continue
        if proc_start_ticks(handle_pid) == ticks:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(handle_pid, SIGKILL)


class AgentComponent:
    """This machine's agent plus the node lifecycle controller, as one ``corral up`` component.

    It owns its API client (from the kubeconfig ``corral up`` wrote), so it talks to
    the API server over HTTP like any other component.
    """

    def __init__(self, kubeconfig: Path, config: AgentConfig, clock: Clock | None = None,
                 lifecycle: NodeLifecycleConfig | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.config = config
        self.clock = clock
        self.lifecycle_config = lifecycle or NodeLifecycleConfig()
        self.client: ApiClient | None = None
        self.agent: Agent | None = None
        self.lifecycle: NodeLifecycleController | None = None

    async def start(self) -> None:
        self.client = ApiClient.from_kubeconfig(self.kubeconfig, user_agent="corral-agent")
        self.agent = Agent(self.client, self.config, self.clock)
        await self.agent.start()
        self.lifecycle = NodeLifecycleController(self.client, self.lifecycle_config, self.clock)
        await self.lifecycle.start()

    def health_checks(self) -> dict[str, HealthCheck]:
        """The agent's supervised loops and the node lifecycle controller's, on ``/readyz``."""
        checks = self.agent.health_checks() if self.agent is not None else {}
        if self.lifecycle is not None:
            checks.update(self.lifecycle.controller.health_checks())
        return checks

    async def stop(self) -> None:
        if self.lifecycle is not None:
            await self.lifecycle.stop()
        if self.agent is not None:
            await self.agent.stop()
        if self.client is not None:
            await self.client.close()
