"""Kubernetes' schema of the core kinds (``knownfields.json``) is current, and the unknown-field walk finds what kube drops."""

from __future__ import annotations

import json
from importlib import resources

from corral.api.kinds import default_registry
from corral.apiserver import knownfields


def test_knownfields_json_matches_the_kubernetes_client() -> None:
    stored = json.loads(resources.files("corral.apiserver").joinpath("knownfields.json").read_text())
    assert stored == knownfields.generate(), (
        "regenerate: PYTHONPATH=src python -m corral.apiserver.knownfields > src/corral/apiserver/knownfields.json")


def test_unknown_fields_of_a_pod_are_found_and_kubernetes_fields_are_not() -> None:
    pod_rt = default_registry().by_kind("v1", "Pod")
    pod = {"apiVersion": "v1", "kind": "Pod", "foo": 1,
           "metadata": {"name": "p", "labels": {"any.key/x": "y"}, "bogus": 2},
           "spec": {"dnsPolicy": "ClusterFirst", "topologySpreadConstraints": [{"maxSkew": 1, "whenUnsatisfiable": "x"}],
                    "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 1}}, "extra": 3,
                                    "ports": [{"containerPort": 1, "nope": 4}]}],
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "In", "x": 1}]}]}}}},
           "status": {"phase": "Pending", "weird": True}}
    found = knownfields.unknown_fields(pod_rt, pod)
    assert sorted(found, key=str) == sorted([
        ("foo",), ("metadata", "bogus"), ("spec", "containers", 0, "extra"), ("spec", "containers", 0, "ports", 0, "nope"),
        ("spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", 0,
         "matchExpressions", 0, "x"),
        ("status", "weird")], key=str)


def test_corral_kinds_are_left_to_their_strict_models() -> None:
    queue_rt = default_registry().by_kind("corral.dev/v1alpha1", "Queue")
    assert knownfields.unknown_fields(queue_rt, {"spec": {"anything": 1}}) == []
