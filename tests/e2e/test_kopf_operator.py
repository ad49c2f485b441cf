"""A real operator framework against `corral up`: kopf installs its CRD, handles objects, and stores
its handler results in ``status`` with no error in its log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.e2e.corral_up import unavailable
from tests.e2e.test_real_clients import Cluster, cluster, ok, run

__all__ = ["cluster"]  # the `corral up` fixture shared with test_real_clients
pytestmark = [pytest.mark.e2e, pytest.mark.slow]
OPERATOR = Path(__file__).parent / "operators" / "kopf_widgets.py"
EXAMPLE = """
apiVersion: kopf.dev/v1
kind: KopfExample
metadata: {name: kex1}
spec: {field: world}
"""


@pytest.fixture
def operator(cluster: Cluster) -> Iterator[Path]:
    try:
        import kopf  # noqa: F401
    except ImportError:
        unavailable("kopf is not installed (pip install -e '.[dev]')")
    log = cluster.home / "kopf.log"
    with log.open("w") as out, subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", "--verbose", str(OPERATOR)],
            stdout=out, stderr=subprocess.STDOUT, env=cluster.env()) as process:
        try:
            yield log
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(cluster: Cluster, kubectl: str, what: str, ready: str, log: Path, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        got = run(cluster, kubectl, "get", what, "-o", "json")
        if got.returncode == 0 and ready in got.stdout:
            result: dict[str, object] = json.loads(got.stdout)
            return result
        assert time.monotonic() < deadline, f"{what} never had {ready!r}: {got.stdout}{got.stderr}\n{log.read_text()}"
        time.sleep(0.5)


def test_kopf_operator_stores_handler_results_in_status(cluster: Cluster, operator: Path) -> None:
    kubectl = require_tool("kubectl")
    deadline = time.monotonic() + 60
    while run(cluster, kubectl, "get", "crd", "kopfexamples.kopf.dev").returncode != 0:
        assert time.monotonic() < deadline, operator.read_text()
        time.sleep(0.5)
    time.sleep(2)  # kopf notices the new resource on its CRD watch
    ok(run(cluster, kubectl, "apply", "-f", "-", stdin=EXAMPLE))
    obj = wait_for(cluster, kubectl, "kopfexamples/kex1", "hello world", operator)
    assert obj["status"]["greet"] == {"message": "hello world"}  # type: ignore[index]
    ok(run(cluster, kubectl, "patch", "kopfexamples", "kex1", "--type=merge", "-p", '{"spec": {"field": "again"}}'))
    wait_for(cluster, kubectl, "kopfexamples/kex1", "hello again again", operator)
    ok(run(cluster, kubectl, "delete", "kopfexamples", "kex1", "--timeout=30s"))  # kopf's finalizer comes off
    log = operator.read_text()
    problems = [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line or "WARNING" in line]
    assert problems == [], log
