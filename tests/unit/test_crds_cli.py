"""``corral crds``: the checked-in chart CRDs are current, the output formats, and the generated CRDs are
what a real cluster accepts (kube's CRD checks, structural schemas, served/storage, the status subresource,
printer columns that show what ``kubectl get`` shows on the embedded server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from corral.api import crds
from corral.api.kinds import default_registry
from corral.cli.crds import crd_files, crd_manifests
from corral.cli.main import cli

CHART_CRDS = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "corral" / "crds"


def test_the_chart_crds_are_what_corral_crds_generates() -> None:
    """Fails when a model changed and ``make crds`` was not run."""
    expected = crd_files(crd_manifests())
    checked_in = {path.name: path.read_text() for path in CHART_CRDS.glob("*.yaml")}
    assert sorted(checked_in) == sorted(expected), "stale deploy/helm/corral/crds: run `make crds`"
    for name, content in expected.items():
        assert checked_in[name] == content, f"stale {name}: run `make crds`"


def test_yaml_stream_json_list_and_output_dir_carry_the_same_crds(tmp_path: Path) -> None:
    runner = CliRunner()
    generated = crd_manifests()
    first = runner.invoke(cli, ["crds"])
    assert first.exit_code == 0, first.output
    assert first.output == runner.invoke(cli, ["crds"]).output  # deterministic
    assert list(yaml.safe_load_all(first.output)) == generated
    assert [crd["metadata"]["name"] for crd in generated] == sorted(crd["metadata"]["name"] for crd in generated)

    listed = runner.invoke(cli, ["crds", "-o", "json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": generated}

    written = runner.invoke(cli, ["crds", "--output-dir", str(tmp_path / "out")])
    assert written.exit_code == 0, written.output
    files = sorted((tmp_path / "out").iterdir())
    assert [path.name for path in files] == [f"{crd['metadata']['name']}.yaml" for crd in generated]
    assert [yaml.safe_load(path.read_text()) for path in files] == generated

    refused = runner.invoke(cli, ["crds", "-o", "json", "--output-dir", str(tmp_path / "json")])
    assert refused.exit_code == 2 and "--output-dir writes YAML" in refused.output


def untyped_nodes(schema: Any, path: str = "") -> list[str]:
    """Paths of schema nodes a structural schema may not have: no type, unless unknown fields are preserved
    or the node is int-or-string."""
    if not isinstance(schema, dict):
        return []
    found = []
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields") \
            and not schema.get("x-kubernetes-int-or-string"):
        found.append(path or "<root>")
    for key in ("anyOf", "oneOf", "allOf", "$ref", "definitions", "$defs"):
        if key in schema:
            found.append(f"{path} has {key}")
    for name, child in (schema.get("properties") or {}).items():
        found += untyped_nodes(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += untyped_nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += untyped_nodes(schema["additionalProperties"], f"{path}{{}}")
    return found


def test_every_generated_crd_is_one_a_real_cluster_accepts() -> None:
    registry = default_registry()
    generated = crd_manifests()
    assert {crd["spec"]["names"]["kind"] for crd in generated} == {
        "Queue", "PodGroup", "TrainingJob", "InferenceService", "InferenceRevision"}
    for crd in generated:
        name = crd["metadata"]["name"]
        assert crds.crd_problems(crd) == [], name
        [version] = crd["spec"]["versions"]
        assert version["served"] is True and version["storage"] is True, name
        schema = version["schema"]["openAPIV3Schema"]
        assert untyped_nodes(schema) == [], name
        rt = registry.by_resource(crd["spec"]["group"], version["name"], crd["spec"]["names"]["plural"])
        has_status = "status" in schema["properties"]
        assert has_status == ("status" in rt.subresources), name
        assert ("status" in (version.get("subresources") or {})) == has_status, name
        assert crd["spec"]["scope"] == ("Namespaced" if rt.namespaced else "Cluster")


SAMPLES: dict[str, dict[str, Any]] = {
    "queues": {"spec": {"cohort": "research"}, "status": {"pending": 3, "admitted": 2}},
    "podgroups": {"spec": {"minMember": 4, "queue": "vision", "priority": 7},
                  "status": {"phase": "Running", "scheduled": 4, "running": 3}},
    "trainingjobs": {"spec": {"queue": "nlp"}, "status": {"phase": "Running", "restarts": 2}},
    "inferenceservices": {"status": {"url": "http://x", "latestRevision": "s-00002"}},
    "inferencerevisions": {"spec": {"service": "s"}, "status": {"failureReason": "CrashLoop"}},
}


def test_crd_printer_columns_show_what_the_embedded_server_shows() -> None:
    """Each CRD column is one of the kind's columns, in the same order, and its JSONPath finds the value
    the embedded server's column computes; only computed columns (sums, ``ready/total``) are left out."""
    registry = default_registry()
    for crd in crd_manifests():
        [version] = crd["spec"]["versions"]
        plural = crd["spec"]["names"]["plural"]
        rt = registry.by_resource(crd["spec"]["group"], version["name"], plural)
        columns = version.get("additionalPrinterColumns") or []
        embedded = {column.name: column for column in rt.columns}
        names = [column["name"] for column in columns]
        assert names == [c.name for c in rt.columns if c.name in names], plural  # same order
        assert "Name" not in names  # kubectl prints NAME itself
        sample = {"metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"}, **SAMPLES[plural]}
        for column in columns:
            mine = embedded[column["name"]]
            assert (column["type"], column.get("priority", 0)) == (mine.type, mine.priority), (plural, column)
            assert crds.jsonpath(column["jsonPath"])(sample) == mine.value(sample), (plural, column)
        assert [c.name for c in rt.columns if c.json_path and c.format != "name"] == names
