"""``corral demo``: start corral in a fresh temporary data dir, apply ``examples/``, show the result.

It keeps running until Ctrl-C; ``--once`` exits 0 after showing (what the tests run).
It grows with every area: add steps to :func:`show`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from corral.cli.up import Running, run_until_signal, start_corral


def default_examples() -> Path:
    here = Path.cwd() / "examples"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "examples"


async def kubectl(running: Running, *args: str, check: bool = True) -> str:
    """Run kubectl against this corral and echo what it prints."""
    env = {**os.environ, "KUBECONFIG": str(running.context.kubeconfig)}
    print(f"$ kubectl {' '.join(args)}", flush=True)
    process = await asyncio.create_subprocess_exec("kubectl", *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    text = out.decode()
    print(text, end="" if text.endswith("\n") or not text else "\n", flush=True)
    if check and process.returncode != 0:
        raise click.ClickException(f"kubectl {' '.join(args)} failed with exit code {process.returncode}")
    return text


async def show(running: Running, examples: Path) -> None:
    """The demo's story, step by step."""
    await kubectl(running, "apply", "-f", str(examples))
    await kubectl(running, "get", "namespaces")
    await kubectl(running, "get", "pods", "-A", "-o", "wide")


async def _demo(examples: Path, once: bool, port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="corral-demo-") as data_dir:
        running = await start_corral(Path(data_dir), port=port)
        print(f"corral is ready: {running.context.url} (kubeconfig: {running.context.kubeconfig})", flush=True)

        async def story(running: Running) -> None:
            await show(running, examples)
            if not once:
                print(f"corral keeps running; try: KUBECONFIG={running.context.kubeconfig} kubectl get pods -A"
                      "\nCtrl-C stops it.", flush=True)
                await asyncio.Event().wait()

        await run_until_signal(running, story)


@click.command("demo")
@click.option("--once", is_flag=True, help="Exit after showing the result (for tests).")
@click.option("--examples", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Directory of manifests to apply (default: ./examples).")
@click.option("--port", type=int, default=0, show_default=True, help="API server port (0: any free port).")
def demo(once: bool, examples: Path | None, port: int) -> None:
    """Start corral in a temporary data dir, apply examples/, and show the result with kubectl."""
    if shutil.which("kubectl") is None:
        raise click.ClickException("corral demo shows its results with kubectl, which is not on PATH")
    examples = examples or default_examples()
    if not examples.is_dir():
        raise click.ClickException(f"no examples directory at {examples}")
    asyncio.run(_demo(examples, once, port))
    sys.stdout.flush()
