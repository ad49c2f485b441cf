"""``corral logs trainingjob/NAME [--follow]``: every rank's log, each line prefixed with its rank.

Without ``--follow`` it prints the current log of each worker pod in rank order. With
``--follow`` it streams all ranks at once and keeps going across gang restarts (the
restarted pods have the same names and new uids; each pod's log is streamed once), until
the job has finished and every rank's last pod has been read. ``pod/NAME`` works too.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import click

from corral.api.registry import Obj
from corral.client import ApiClient, ApiError

API_VERSION = "corral.dev/v1alpha1"
JOB_LABEL = "corral.dev/training-job"
INDEX_LABEL = "corral.dev/replica-index"
FINISHED = ("Succeeded", "Failed")
STARTED = ("Running", "Succeeded", "Failed")

Write = Callable[[str], None]


def _index(pod: Obj) -> int:
    try:
        return int(((pod.get("metadata") or {}).get("labels") or {}).get(INDEX_LABEL, "0"))
    except ValueError:
        return 0


async def _print_stream(client: ApiClient, namespace: str, pod: str, prefix: str, *, follow: bool,
                        write: Write) -> None:
    buffer = b""
    try:
        async for chunk in client.pod_log(namespace, pod, follow=follow):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                write(f"{prefix}{line.decode(errors='replace')}")
    except ApiError as error:
        if not error.not_found:
            raise
    if buffer:
        write(f"{prefix}{buffer.decode(errors='replace')}")


async def job_logs(client: ApiClient, namespace: str, name: str, *, follow: bool, write: Write,
                   poll: float = 0.5) -> None:
    """Print (or follow) the logs of every rank of TrainingJob ``name``."""
    job = await client.get_or_none(API_VERSION, "trainingjobs", name, namespace)
    if job is None:
        raise click.ClickException(f'trainingjob "{name}" not found in namespace "{namespace}"')
    if not follow:
        listed = await client.list("v1", "pods", namespace, label_selector=f"{JOB_LABEL}={name}")
        for pod in sorted(listed.get("items") or [], key=_index):
            await _print_stream(client, namespace, pod["metadata"]["name"], f"[rank {_index(pod)}] ", follow=False, write=write)
        return
    spec = job.get("spec") or {}
    ranks = int(spec.get("maxReplicas") or spec.get("replicas") or 1)

    async def follow_rank(index: int) -> None:
        seen: set[str] = set()
        pod_name = f"{name}-worker-{index}"
        while True:
            pod = await client.get_or_none("v1", "pods", pod_name, namespace)
            uid = str((pod or {}).get("metadata", {}).get("uid") or "")
            if pod is not None and uid not in seen and (pod.get("status") or {}).get("phase") in STARTED:
                seen.add(uid)
                await _print_stream(client, namespace, pod_name, f"[rank {index}] ", follow=True, write=write)
                continue
            current = await client.get_or_none(API_VERSION, "trainingjobs", name, namespace)
            finished = current is None or (current.get("status") or {}).get("phase") in FINISHED
            if finished and (pod is None or uid in seen or (pod.get("status") or {}).get("phase") not in STARTED):
                return
            await asyncio.sleep(poll)

    await asyncio.gather(*(follow_rank(index) for index in range(ranks)))


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@click.command("logs")
@click.argument("target")
@click.option("-n", "--namespace", default=None, help="namespace (default: the kubeconfig's)")
@click.option("-f", "--follow", is_flag=True, help="stream until the job finishes, across restarts")
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None, help="kubeconfig (default $KUBECONFIG, ~/.kube/config)")
def logs(target: str, namespace: str | None, follow: bool, kubeconfig: str | None) -> None:
    """Print logs: trainingjob/NAME (every rank, prefixed with its rank) or pod/NAME."""
    kind, _, name = target.partition("/")
    if not name:
        raise click.BadParameter("use trainingjob/NAME or pod/NAME", param_hint="TARGET")

    async def run() -> None:
        async with ApiClient.from_kubeconfig(kubeconfig) as client:
            ns = namespace or client.namespace
            if kind in ("trainingjob", "trainingjobs", "tj"):
                await job_logs(client, ns, name, follow=follow, write=_write)
            elif kind in ("pod", "pods", "po"):
                await _print_stream(client, ns, name, "", follow=follow, write=_write)
            else:
                raise click.BadParameter(f"unknown kind {kind!r}: use trainingjob/NAME or pod/NAME",
                                         param_hint="TARGET")

    try:
        asyncio.run(run())
    except ApiError as error:
        raise click.ClickException(error.message or str(error)) from None
