"""The CRDs ``corral crds`` generates, as a real API server takes them: each is created (under another
group, since corral serves its own kinds already), the examples' objects of each kind are accepted by its
schema, the table ``kubectl get`` prints has the CRD's printer columns in the order the embedded kind shows
them, and ``kubectl apply --dry-run=server`` of the chart's files passes where the names clash."""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.apiserver.server import RunningServer
from corral.cli.crds import crd_manifests
from corral.testing.apiserver import running_apiserver

ROOT = Path(__file__).resolve().parents[2]
COPY_GROUP = "copy.example.com"
TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1"
EXAMPLES = ["examples/queues/10-team-vision.yaml", "examples/scheduling/gang.yaml", "examples/training/ddp.yaml",
            "examples/inference/digits/digits.yaml"]


def request(server: RunningServer, method: str, path: str, body: Any = None,
            accept: str = "application/json") -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    sent = urllib.request.Request(server.url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {server.token}", "Content-Type": "application/json", "Accept": accept})
    try:
        with urllib.request.urlopen(sent) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def under_copy_group(crd: dict[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(crd)
    copied["spec"]["group"] = COPY_GROUP
    copied["metadata"] = {"name": f"{crd['spec']['names']['plural']}.{COPY_GROUP}"}
    return copied


def example_objects() -> list[dict[str, Any]]:
    found = []
    for name in EXAMPLES:
        for doc in yaml.safe_load_all((ROOT / name).read_text()):
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("corral.dev/"):
                found.append(doc)
    return found


def path_of(crd: dict[str, Any], group: str) -> str:
    version = crd["spec"]["versions"][0]["name"]
    where = "namespaces/default/" if crd["spec"]["scope"] == "Namespaced" else ""
    return f"/apis/{group}/{version}/{where}{crd['spec']['names']['plural']}"


async def test_generated_crds_install_validate_examples_and_print_their_columns(tmp_path: Path) -> None:
    generated = crd_manifests()
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in generated}
    async with running_apiserver(tmp_path, tls=False) as server:
        for crd in generated:
            code, answer = await asyncio.to_thread(request, server, "POST",
                                                   "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                                   under_copy_group(crd))
            assert code == 201, answer
        objects = example_objects()
        assert {obj["kind"] for obj in objects} == {"Queue", "PodGroup", "TrainingJob", "InferenceService"}
        for obj in objects:
            crd = by_kind[obj["kind"]]
            copied = {**copy.deepcopy(obj), "apiVersion": f"{COPY_GROUP}/{crd['spec']['versions'][0]['name']}"}
            copied["metadata"] = {"name": obj["metadata"]["name"]}
            code, answer = await asyncio.to_thread(request, server, "POST", path_of(crd, COPY_GROUP), copied)
            assert code == 201, (obj["kind"], answer)
        for crd in generated:
            _, copy_table = await asyncio.to_thread(request, server, "GET", path_of(crd, COPY_GROUP), accept=TABLE)
            _, own_table = await asyncio.to_thread(request, server, "GET", path_of(crd, "corral.dev"), accept=TABLE)
            columns = crd["spec"]["versions"][0].get("additionalPrinterColumns") or []
            # corral's CRD tables add AGE after the columns (kube adds it only to a CRD without columns)
            copy_names = [c["name"] for c in copy_table["columnDefinitions"]][:len(columns) + 1]
            own_names = [c["name"] for c in own_table["columnDefinitions"]]
            assert copy_names == ["Name", *(c["name"] for c in columns)], crd["metadata"]["name"]
            assert copy_names == [name for name in own_names if name in copy_names], (copy_names, own_names)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubectl_server_dry_run_accepts_the_chart_crds(tmp_path: Path) -> None:
    """``--dry-run=client`` needs a server too (kubectl validates against its OpenAPI), so the check is
    ``--dry-run=server`` against corral, which already has CRDs of these names: they must be the same."""
    async with running_apiserver(tmp_path) as server:
        result = await asyncio.to_thread(
            subprocess.run, ["kubectl", "--kubeconfig", str(server.kubeconfig), "apply", "--dry-run=server",
                             "-f", str(ROOT / "deploy/helm/corral/crds")],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("(server dry run)") == len(crd_manifests()), result.stdout


HELM = Path.home() / ".cache" / "corral-tools" / "bin" / "helm"


@pytest.mark.skipif(not HELM.exists(), reason="helm 4 is not installed (tests/tools/install_kubectl35.sh)")
def test_helm_lints_the_chart_and_renders_exactly_the_generated_crds() -> None:
    chart = str(ROOT / "deploy/helm/corral")
    linted = subprocess.run([str(HELM), "lint", chart], check=False, capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    rendered = subprocess.run([str(HELM), "template", "corral", chart, "--include-crds"],
                              check=False, capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    documents = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    assert documents == crd_manifests()
