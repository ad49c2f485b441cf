"""CustomResourceDefinitions with real kubectl (1.32 and 1.35) against `corral up`: apply a CRD and its
objects, printer columns, explain, scale, validation errors, pruning warnings, delete, and corral's own
kinds listed as CRDs."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.test_real_clients import Cluster, cluster, kubectl, name_for, ok, run, tools

__all__ = ["cluster", "kubectl", "tools"]  # fixtures shared with test_real_clients
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.example.com}}
spec:
  group: example.com
  scope: Namespaced
  names: {{plural: {plural}, singular: {singular}, kind: {kind}, shortNames: [{short}], categories: [widgets]}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {{}}
      scale: {{specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}}
    additionalPrinterColumns:
    - {{name: Size, type: string, jsonPath: .spec.size}}
    - {{name: Replicas, type: integer, jsonPath: .spec.replicas}}
    schema:
      openAPIV3Schema:
        type: object
        description: A widget of some size.
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {{type: string, enum: [S, M, L], description: How big the widget is.}}
              replicas: {{type: integer, minimum: 0, maximum: 10, default: 1}}
          status:
            type: object
            properties:
              replicas: {{type: integer}}
"""

OBJECT = """
apiVersion: example.com/v1
kind: {kind}
metadata: {{name: {name}}}
spec: {{size: {size}{extra}}}
"""


def names(kubectl: str) -> dict[str, str]:
    suffix = name_for(kubectl, "w").split("-")[1]  # one CRD per kubectl version: the module shares a cluster
    return {"plural": f"widgets{suffix}", "singular": f"widget{suffix}", "kind": f"Widget{suffix.upper()}",
            "short": f"wd{suffix}"}


def test_a_crd_applied_with_kubectl_serves_its_kind(cluster: Cluster, kubectl: str) -> None:
    crd = names(kubectl)
    ok(run(cluster, kubectl, "apply", "-f", "-", stdin=CRD.format(**crd)))
    ok(run(cluster, kubectl, "wait", "--for=condition=Established", f"crd/{crd['plural']}.example.com",
           "--timeout=20s"))
    ok(run(cluster, kubectl, "apply", "-f", "-", stdin=OBJECT.format(kind=crd["kind"], name="a", size="M", extra="")))
    table = ok(run(cluster, kubectl, "get", crd["short"]))
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "SIZE", "REPLICAS"], table  # kube adds AGE only to CRDs without columns
    assert row.split()[:3] == ["a", "M", "1"], table  # replicas defaulted
    assert crd["plural"] in ok(run(cluster, kubectl, "api-resources", "--api-group=example.com"))
    assert "a" in ok(run(cluster, kubectl, "get", "widgets"))  # the category

    explained = ok(run(cluster, kubectl, "explain", f"{crd['plural']}.spec.size"))
    assert "How big the widget is." in explained, explained

    ok(run(cluster, kubectl, "scale", crd["plural"], "a", "--replicas=4"))
    got = json.loads(ok(run(cluster, kubectl, "get", crd["plural"], "a", "-o", "json")))
    assert got["spec"]["replicas"] == 4

    invalid = run(cluster, kubectl, "apply", "-f", "-",
                  stdin=OBJECT.format(kind=crd["kind"], name="b", size="XL", extra=", replicas: 11"))
    assert invalid.returncode != 0
    assert "spec.size" in invalid.stderr and "spec.replicas" in invalid.stderr, invalid.stderr

    pruned = run(cluster, kubectl, "apply", "-f", "-", "--validate=warn",
                 stdin=OBJECT.format(kind=crd["kind"], name="c", size="S", extra=", colour: red"))
    assert pruned.returncode == 0, pruned.stderr
    assert "unknown field" in pruned.stderr and "spec.colour" in pruned.stderr, pruned.stderr
    stored = json.loads(ok(run(cluster, kubectl, "get", crd["plural"], "c", "-o", "json")))
    assert "colour" not in stored["spec"]

    ok(run(cluster, kubectl, "delete", "crd", f"{crd['plural']}.example.com", "--timeout=30s"))
    gone = run(cluster, kubectl, "get", crd["plural"])
    assert gone.returncode != 0
    ok(run(cluster, kubectl, "apply", "-f", "-", stdin=CRD.format(**crd)))
    deadline = time.monotonic() + 10
    while (listed := run(cluster, kubectl, "get", crd["plural"], "-o", "name")).returncode != 0:
        assert time.monotonic() < deadline, listed.stderr  # kubectl's discovery cache catches up
        time.sleep(0.5)
    assert listed.stdout.strip() == ""  # the old objects went with the CRD
    ok(run(cluster, kubectl, "delete", "crd", f"{crd['plural']}.example.com"))


def test_get_crd_lists_corral_kinds(cluster: Cluster, kubectl: str) -> None:
    listed = ok(run(cluster, kubectl, "get", "crd"))
    for name in ("queues.corral.dev", "podgroups.corral.dev", "trainingjobs.corral.dev", "inferenceservices.corral.dev"):
        assert name in listed, listed
    refused = run(cluster, kubectl, "delete", "crd", "queues.corral.dev")
    assert refused.returncode != 0 and "corral's own kind" in refused.stderr
