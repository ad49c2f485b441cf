"""A tiny in-memory world for the workload plans: the pods and ReplicaSets the controllers'
plans create, applied as a fast API server would, with pods made ready or failed on request."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from corral.controllers.deployment import plan as deployment_plan
from corral.controllers.job import plan as job_plan
from corral.controllers.replicaset import plan as replicaset_plan
from corral.util.clock import format_timestamp

Obj = dict[str, Any]
START = datetime(2026, 1, 1, tzinfo=UTC)


class World:
    def __init__(self) -> None:
        self.now = START
        self.pods: dict[str, Obj] = {}
        self.sets: dict[str, Obj] = {}
        self._ids = itertools.count(1)

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)

    def stamp(self) -> str:
        return format_timestamp(self.now)

    def _new_meta(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        serial = next(self._ids)
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{serial:05d}"
        meta.update(uid=f"uid-{serial}", creationTimestamp=self.stamp(), generation=1, namespace="default")
        return obj

    def create_pod(self, pod: Obj) -> Obj:
        pod = self._new_meta(copy.deepcopy(pod))
        pod["status"] = {"phase": "Pending"}
        self.pods[pod["metadata"]["name"]] = pod
        return pod

    def ready(self, name: str) -> None:
        pod = self.pods[name]
        pod["spec"]["nodeName"] = "n"
        pod["status"] = {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": self.stamp()}]}

    def finish(self, name: str, phase: str) -> None:
        self.pods[name]["status"] = {"phase": phase, "containerStatuses": [{"name": "c", "state": {"terminated": {
            "exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": self.stamp()}}}]}

    def active_pods(self) -> list[Obj]:
        return [p for p in self.pods.values() if p["status"]["phase"] not in ("Succeeded", "Failed")]

    # --- controllers, applied instantly ---------------------------------------------------------

    def sync_set(self, rs: Obj) -> None:
        todo = replicaset_plan.plan(rs, list(self.pods.values()), self.now)
        assert not todo.adopt and not todo.release
        for pod in todo.create:
            self.create_pod(pod)
        for name in todo.delete:
            del self.pods[name]
        rs["status"] = todo.status

    def sync_sets(self) -> None:
        for rs in list(self.sets.values()):
            self.sync_set(rs)

    def sync_deployment(self, deployment: Obj) -> deployment_plan.Plan:
        todo = deployment_plan.plan(deployment, list(self.sets.values()), self.now)
        if todo.create is not None:
            rs = self._new_meta(copy.deepcopy(todo.create))
            self.sets[rs["metadata"]["name"]] = rs
        for rs in todo.update:
            self.sets[rs["metadata"]["name"]] = copy.deepcopy(rs)
        for name in todo.delete:
            del self.sets[name]
        deployment["status"] = todo.status
        return todo

    def sync_job(self, job: Obj) -> job_plan.Plan:
        todo = job_plan.plan(job, list(self.pods.values()), self.now)
        for pod in todo.create:
            self.create_pod(pod)
        for name in todo.delete:
            pod = self.pods[name]
            if pod["status"]["phase"] not in ("Succeeded", "Failed"):
                del self.pods[name]
        job["status"] = todo.status
        return todo
