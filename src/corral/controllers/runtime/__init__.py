"""The reconciler runtime every corral controller runs on.

A :class:`Controller` owns a :class:`~corral.client.WorkQueue` of object keys, fed by
informer events (``watch`` for the primary kind, ``watch_owned`` for the objects a
controller creates, mapped back to their owner through ``ownerReferences``). Workers
take a key, call ``Reconciler.reconcile(key)``, and:

- on success, forget the key's backoff (and requeue after ``Result.requeue_after``
  when the reconciler asks, e.g. to check a deadline);
- on an exception, requeue with per-key exponential backoff (logged with its traceback):
  one object a reconciler cannot handle is retried at a slowing pace and never stops the
  worker, which goes on with the other keys.

Workers and the resync loop run under a :class:`~corral.util.supervise.Supervisor`: a
worker that crashes anyway (outside a reconcile) is restarted with backoff and reported by
:meth:`Controller.health_checks` (``/readyz``).

Reconcilers are level-triggered: they read the current state from informers, compute
the desired state with pure functions, apply the difference idempotently and return.
Events only enqueue keys, so missing one never loses work — the next resync or change
brings the object back. :class:`Manager` bundles shared informers and controllers for
one process (``corral up`` or ``corral controllers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from corral.api.registry import Obj
from corral.client import Informer, InformerFactory, QueueClosedError, WorkQueue, object_key
from corral.util.supervise import HealthCheck, Supervisor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next: nothing, or another look after ``requeue_after`` seconds."""

    requeue_after: float | None = None


class Reconciler(Protocol):
    """Brings the world for one key closer to its desired state."""

    async def reconcile(self, key: str) -> Result | None: ...


def owner_keys(obj: Obj, owner_kind: str) -> list[str]:
    """Keys of the controlling owners of ``obj`` that have kind ``owner_kind`` (same namespace)."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    keys = []
    for reference in metadata.get("ownerReferences") or []:
        if reference.get("kind") == owner_kind and reference.get("controller", True):
            keys.append(f"{namespace}/{reference['name']}" if namespace else str(reference["name"]))
    return keys


class Controller:
    """Runs one reconciler over a work queue with ``workers`` concurrent workers."""

    def __init__(self, name: str, reconciler: Reconciler, *, workers: int = 1,
                 queue: WorkQueue | None = None, resync_seconds: float | None = None) -> None:
        self.name = name
        self.reconciler = reconciler
        self.workers = workers
        self.queue = queue if queue is not None else WorkQueue()  # an empty queue is falsy
        self.resync_seconds = resync_seconds
        self._primary: list[Informer] = []
        self.supervisor = Supervisor(name)
        self.reconciles = 0
        self.errors = 0

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def watch(self, informer: Informer, keys: Callable[[Obj], Iterable[str]] | None = None) -> None:
        """Enqueue ``keys(obj)`` (the object's own key by default) on every change of ``informer``."""
        mapper = keys or (lambda obj: [object_key(obj)])
        if keys is None:
            self._primary.append(informer)

        def on_any(obj: Obj) -> None:
            for key in mapper(obj):
                self.queue.add(key)

        informer.add_handler(on_add=on_any, on_update=lambda _old, new: on_any(new), on_delete=on_any)

    def watch_owned(self, informer: Informer, owner_kind: str) -> None:
        """Enqueue the controlling owner (of kind ``owner_kind``) of every changed object."""
        self.watch(informer, lambda obj: owner_keys(obj, owner_kind))

    async def start(self) -> None:
        for index in range(self.workers):
            self.supervisor.spawn(f"worker-{index}", self._worker)
        if self.resync_seconds:
            self.supervisor.spawn("resync", self._resync)

    def health_checks(self) -> dict[str, HealthCheck]:
        """``/readyz`` fails while a worker of this controller is crash-looping."""
        return {self.name: self.supervisor.check}

    async def stop(self) -> None:
        self.queue.shutdown()
        await self.supervisor.stop()

    async def _resync(self) -> None:
        period = self.resync_seconds or 0.0
        while True:
            await asyncio.sleep(period)
            for informer in self._primary:
                for key in informer.keys():  # noqa: SIM118 - an informer is not a dict
                    self.queue.add(key)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueClosedError:
                return
            try:
                result = await self.reconciler.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                log.exception("%s: reconcile %s failed; retrying in %.2fs", self.name, key, self.queue.backoff(key))
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
                if result is not None and result.requeue_after is not None:
                    self.queue.add_after(key, result.requeue_after)
            finally:
                self.reconciles += 1
                self.queue.done(key)


class Manager:
    """Shared informers plus the controllers that use them, started and stopped together."""

    def __init__(self, factory: InformerFactory) -> None:
        self.factory = factory
        self.controllers: list[Controller] = []

    def add(self, controller: Controller) -> Controller:
        self.controllers.append(controller)
        return controller

    async def start(self, sync_timeout: float | None = 60) -> None:
        await self.factory.start()
        await self.factory.wait_synced(sync_timeout)
        for controller in self.controllers:
            await controller.start()

    def health_checks(self) -> dict[str, HealthCheck]:
        """Every controller's (``/readyz``)."""
        return {name: check for controller in self.controllers for name, check in controller.health_checks().items()}

    async def stop(self) -> None:
        for controller in self.controllers:
            await controller.stop()
        await self.factory.stop()
