"""Structural schemas (defaulting, pruning, validation) and CRD validation, as pure functions."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.api import crds, structural
from corral.api.kinds import default_registry

WIDGET_SCHEMA: dict[str, Any] = crds.object_schema({
    "type": "object",
    "properties": {
        "spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "string", "enum": ["S", "M", "L"]},
            "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
            "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
            "ports": {"type": "array", "maxItems": 2, "items": {"type": "object", "properties": {
                "port": {"x-kubernetes-int-or-string": True}, "nick": {"type": "string", "nullable": True}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        }},
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
})


def widget(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": "M", **spec}}


def messages(obj: dict[str, Any]) -> dict[str, str]:
    return {structural.format_loc(p.loc): p.message for p in structural.value_problems(WIDGET_SCHEMA, obj)}


def test_each_rule_names_the_field() -> None:
    assert messages(widget()) == {}
    assert messages({"spec": {}}) == {"spec.size": "Required value"}
    assert "supported values" in messages(widget(size="X"))["spec.size"]
    assert messages(widget(replicas=11))["spec.replicas"] == "spec.replicas in body should be less than or equal to 10"
    assert messages(widget(replicas="3"))["spec.replicas"] == 'spec.replicas in body must be of type integer: "string"'
    assert messages(widget(replicas=True))["spec.replicas"].endswith('"boolean"')
    assert "should match" in messages(widget(name="A1"))["spec.name"]
    assert "at most 5 chars" in messages(widget(name="abcdef"))["spec.name"]
    assert "at most 2 items" in messages(widget(ports=[{}, {}, {}]))["spec.ports"]
    assert messages(widget(ports=[{"port": 80}, {"port": "http", "nick": None}])) == {}
    assert "integer or string" in messages(widget(ports=[{"port": 1.5}]))["spec.ports[0].port"]
    assert "must be of type string" in messages(widget(labels={"a": 1}))["spec.labels.a"]


def test_defaults_fill_absent_fields_and_replace_non_nullable_nulls() -> None:
    obj = widget(replicas=None)
    structural.apply_defaults(WIDGET_SCHEMA, obj)
    assert obj["spec"]["replicas"] == 1
    kept = widget(replicas=4, ports=[{"nick": None}])
    structural.apply_defaults(WIDGET_SCHEMA, kept)
    assert kept["spec"]["replicas"] == 4 and kept["spec"]["ports"] == [{"nick": None}]


def test_pruning_drops_undeclared_fields_and_keeps_preserved_ones() -> None:
    obj = widget(extra=1, ports=[{"port": 1, "bogus": True}], config={"any": {"thing": 1}})
    obj["top"] = "x"
    removed = structural.prune(WIDGET_SCHEMA, obj)
    assert sorted(structural.format_loc(loc) for loc in removed) == ["spec.extra", "spec.ports[0].bogus", "top"]
    assert obj["spec"]["config"] == {"any": {"thing": 1}} and obj["spec"]["ports"] == [{"port": 1}]
    assert obj["metadata"] == {"name": "w"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 20) | st.text("abcXYZ", max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["size", "replicas", "name", "ports", "port", "nick", "labels", "config", "x", "spec"]),
        inner, max_size=4),
    max_leaves=12)


def allowed(schema: dict[str, Any], value: Any) -> bool:
    """Whether every field of ``value`` is declared by ``schema`` (what pruning must leave)."""
    return not structural.unknown_fields(schema, value)


@settings(max_examples=300, deadline=None)
@given(spec=json_values, extra=st.dictionaries(st.text("qrs", min_size=1, max_size=3), json_values, max_size=2))
def test_pruning_never_keeps_a_field_the_schema_does_not_allow(spec: Any, extra: dict[str, Any]) -> None:
    obj: dict[str, Any] = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                           "spec": spec, **extra}
    structural.prune(WIDGET_SCHEMA, obj)
    assert allowed(WIDGET_SCHEMA, obj)
    assert structural.prune(WIDGET_SCHEMA, obj) == []  # idempotent


valid_specs = st.fixed_dictionaries({"size": st.sampled_from(["S", "M", "L"])}, optional={
    "replicas": st.integers(0, 10),
    "name": st.text("abcdefgh", min_size=1, max_size=5),
    "ports": st.lists(st.fixed_dictionaries({}, optional={"port": st.integers(1, 65535) | st.text("ab", min_size=1),
                                                          "nick": st.none() | st.text("xy")}), max_size=2),
    "labels": st.dictionaries(st.text("kl", min_size=1), st.text("v")),
    "config": st.dictionaries(st.text("c", min_size=1), json_values, max_size=2),
})


@settings(max_examples=300, deadline=None)
@given(spec=valid_specs)
def test_valid_objects_round_trip_unchanged(spec: dict[str, Any]) -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}
    original = copy.deepcopy(obj)
    original["spec"].setdefault("replicas", 1)
    structural.apply_defaults(WIDGET_SCHEMA, obj)
    assert structural.prune(WIDGET_SCHEMA, obj) == []
    assert structural.value_problems(WIDGET_SCHEMA, obj) == []
    assert obj == original


def crd(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}}}],
    }
    spec.update(overrides)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": crds.KIND, "metadata": {"name": "widgets.example.com"},
            "spec": spec}


def crd_fields(obj: dict[str, Any]) -> dict[str, str]:
    return {".".join(str(p) for p in loc): message for loc, message, _, _ in crds.crd_problems(obj)}


def test_crd_essentials_are_checked_field_by_field() -> None:
    assert crd_fields(crd()) == {}
    assert "metadata.name" in crd_fields({**crd(), "metadata": {"name": "gadgets.example.com"}})
    assert "at least one dot" in crd_fields(crd(group="example"))["spec.group"]
    assert "spec.scope" in crd_fields(crd(scope="Global"))
    assert "spec.names.kind" in crd_fields(crd(names={"plural": "widgets"}))
    two_storage = crd(versions=[{**crd()["spec"]["versions"][0]}, {**crd()["spec"]["versions"][0], "name": "v2"}])
    assert "exactly one version marked as storage" in crd_fields(two_storage)["spec.versions"]
    unserved = crd(versions=[{**crd()["spec"]["versions"][0], "served": False}])
    assert "at least one version marked as served" in crd_fields(unserved)["spec.versions"]
    assert "spec.versions" in crd_fields(crd(versions=[]))
    no_schema = crd(versions=[{"name": "v1", "served": True, "storage": True}])
    assert "spec.versions.0.schema.openAPIV3Schema" in crd_fields(no_schema)
    untyped = crd(versions=[{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}}}])
    assert "spec.versions.0.schema.openAPIV3Schema.properties.spec.type" in crd_fields(untyped)


def test_printer_columns_follow_jsonpaths_and_only_a_crd_without_columns_gets_age() -> None:
    columns = crds.printer_columns({"additionalPrinterColumns": [
        {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
        {"name": "First", "type": "integer", "jsonPath": ".spec.ports[0].port"},
        {"name": "Team", "type": "string", "jsonPath": ".metadata.labels['team']"}]})
    obj = widget(ports=[{"port": 8}])
    obj["metadata"]["labels"] = {"team": "ml"}
    assert [c.name for c in columns] == ["Size", "First", "Team"]  # NAME is implicit; no AGE added (kube)
    assert [c.value(obj) for c in columns] == ["M", 8, "ml"]
    assert [c.name for c in crds.printer_columns({})] == ["Age"]


def test_versions_are_served_in_kube_priority_order() -> None:
    names = ["v1alpha1", "v2", "v1beta1", "v1", "foo"]
    assert sorted(names, key=crds.version_priority) == ["v2", "v1", "v1beta1", "v1alpha1", "foo"]


def test_corral_kinds_become_valid_structural_crds() -> None:
    manifests = crds.corral_crds(default_registry())
    assert {m["metadata"]["name"] for m in manifests} >= {"queues.corral.dev", "podgroups.corral.dev",
                                                           "trainingjobs.corral.dev", "inferenceservices.corral.dev"}
    for manifest in manifests:
        assert crds.crd_problems(manifest) == [], manifest["metadata"]["name"]
