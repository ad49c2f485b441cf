"""``corral explain pod|podgroup NAME``: why it waits, the nearest misses, what would change it.

Reads the cluster through the API (nodes, pods, PodGroups, PriorityClasses), feeds the
same scheduler brain the live scheduler runs, and explains the group without reserving
anything (:mod:`corral.scheduler.explain`).
"""

from __future__ import annotations

import asyncio

import click

from corral.cli.queues import queue_explanation
from corral.client import ApiClient, ApiError, KubeconfigError
from corral.scheduler.cycle import Scheduler
from corral.scheduler.explain import explain_group
from corral.scheduler.framework.profile import Profile
from corral.scheduler.pods import GPU_DEVICES_ANNOTATION, group_key
from corral.scheduler.service import default_framework
from corral.util.clock import SystemClock


async def _load(client: ApiClient, sched: Scheduler) -> None:
    async def items(api_version: str, plural: str) -> list[dict[str, object]]:
        try:
            found, _ = await client.list_all(api_version, plural)
        except ApiError as error:
            if error.not_found:
                return []
            raise
        return found

    for obj in await items("scheduling.k8s.io/v1", "priorityclasses"):
        sched.priority_class_upsert(obj)
    for obj in await items("corral.dev/v1alpha1", "podgroups"):
        sched.podgroup_upsert(obj)
    for obj in await items("v1", "nodes"):
        sched.node_upsert(obj)
    sched.sync_nodes()
    for obj in await items("v1", "pods"):
        sched.pod_upsert(obj)


async def explain(client: ApiClient, kind: str, name: str, namespace: str) -> str:
    lines: list[str] = []
    if kind == "pod":
        pod = await client.get("v1", "pods", name, namespace)
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        if spec.get("nodeName"):
            devices = ((pod.get("metadata") or {}).get("annotations") or {}).get(GPU_DEVICES_ANNOTATION)
            return (f"pod {namespace}/{name} is bound to node {spec['nodeName']}"
                    + (f" with GPUs {devices}" if devices else "") + f" (phase {status.get('phase', 'Pending')})")
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                lines.append(f"scheduler says: {condition.get('reason')}: {condition.get('message')}")
        if status.get("nominatedNodeName"):
            lines.append(f"nominated node: {status['nominatedNodeName']} (waiting for preempted pods to leave)")
        key = group_key(pod)
    else:
        group = await client.get("corral.dev/v1alpha1", "podgroups", name, namespace)
        for condition in (group.get("status") or {}).get("conditions") or []:
            lines.append(f"scheduler says: {condition.get('reason')}: {condition.get('message')}")
        key = f"group:{namespace}/{name}"
    sched = Scheduler(framework=default_framework(Profile.default(), 100), clock=SystemClock(), preemption=False)
    await _load(client, sched)
    lines.append(explain_group(sched, key).render())
    queue_lines = await queue_explanation(client, key, None if kind == "pod" else group)
    if queue_lines:
        lines.append("queue:")
        lines.extend(f"  {line}" if not line.startswith("  ") else line for line in queue_lines)
    return "\n".join(lines)


@click.command("explain")
@click.argument("kind", type=click.Choice(["pod", "podgroup", "pg"]))
@click.argument("name")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), envvar="KUBECONFIG", default=None,
              help="kubeconfig of the API server (default $KUBECONFIG or ~/.kube/config).")
def explain_command(kind: str, name: str, namespace: str, kubeconfig: str | None) -> None:
    """Explain why a pod or PodGroup is not scheduled, and what would change it."""

    async def main() -> str:
        try:
            client = ApiClient.from_kubeconfig(kubeconfig)
        except KubeconfigError as error:
            raise click.ClickException(str(error)) from None
        try:
            return await explain(client, "podgroup" if kind == "pg" else kind, name, namespace)
        except ApiError as error:
            raise click.ClickException(error.message or str(error)) from None
        finally:
            await client.close()

    click.echo(asyncio.run(main()))
