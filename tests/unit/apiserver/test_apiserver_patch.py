"""Patch semantics: JSON merge, strategic merge with the models' merge keys, server-side apply."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from corral.api.core import Pod, Service
from corral.apiserver.patch import merge_patch, patch_meta, server_side_apply, strategic_merge

POD_META = patch_meta(Pod)


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a"]}, "spec": spec}


def test_merge_keys_come_from_the_models() -> None:
    spec = POD_META.fields["spec"].child
    assert spec is not None
    assert spec.fields["containers"].merge_key == "name"
    container = spec.fields["containers"].child
    assert container is not None and container.fields["ports"].merge_key == "containerPort"
    assert container.fields["env"].merge_key == "name"
    assert container.fields["volumeMounts"].merge_key == "mountPath"
    service_spec = patch_meta(Service).fields["spec"].child
    assert service_spec is not None and service_spec.fields["ports"].merge_key == "port"


def test_strategic_merge_lists_by_key_sets_and_directives() -> None:
    original = pod(containers=[{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]},
                               {"name": "b", "image": "y"}], tolerations=[{"key": "k", "operator": "Exists"}])
    patched = strategic_merge(original, {
        "metadata": {"finalizers": ["b"], "labels": {"l": "1"}},
        "spec": {"containers": [{"name": "a", "env": [{"name": "F", "value": "2"}]}, {"name": "b", "$patch": "delete"},
                                {"name": "c", "image": "z"}],
                 "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}]},
    }, POD_META)
    assert [c["name"] for c in patched["spec"]["containers"]] == ["a", "c"]
    assert patched["spec"]["containers"][0] == {"name": "a", "image": "x", "env": [{"name": "E", "value": "1"},
                                                                                 {"name": "F", "value": "2"}]}
    assert patched["metadata"]["finalizers"] == ["a", "b"]
    assert original["spec"]["containers"][1]["name"] == "b"  # the original is untouched
    replaced = strategic_merge(original, {"spec": {"containers": [{"name": "only", "image": "i"}, {"$patch": "replace"}]}},
                               POD_META)
    assert replaced["spec"]["containers"] == [{"name": "only", "image": "i"}]
    removed = strategic_merge(original, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}, "spec": {"tolerations": None}},
                              POD_META)
    assert removed["metadata"]["finalizers"] == [] and "tolerations" not in removed["spec"]


def test_lists_without_merge_key_are_replaced() -> None:
    original = pod(containers=[{"name": "a", "args": ["1", "2"]}])
    patched = strategic_merge(original, {"spec": {"containers": [{"name": "a", "args": ["3"]}]}}, POD_META)
    assert patched["spec"]["containers"][0]["args"] == ["3"]


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                           lambda children: st.dictionaries(st.text(max_size=3), children, max_size=3), max_leaves=8)


@given(target=st.dictionaries(st.text(max_size=3), json_values, max_size=4),
       patch=st.dictionaries(st.text(max_size=3), json_values, max_size=4))
def test_merge_patch_is_idempotent_and_deletes_nulls(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once
    for key, value in patch.items():
        if value is None:
            assert key not in once


def test_server_side_apply_tracks_owners() -> None:
    live: dict[str, Any] = {"metadata": {"name": "c"}}
    first, conflicts = server_side_apply(live, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                                "data": {"a": "1", "b": "2"}}, "one", force=False, meta=patch_meta(Pod), now="t")
    assert not conflicts and first["data"] == {"a": "1", "b": "2"}
    second, _ = server_side_apply(first, {"apiVersion": "v1", "kind": "ConfigMap", "data": {"b": "2"}}, "one",
                                  force=False, meta=patch_meta(Pod), now="t")
    assert second["data"] == {"b": "2"}
    _, conflicts = server_side_apply(second, {"apiVersion": "v1", "kind": "ConfigMap", "data": {"b": "3"}}, "two",
                                     force=False, meta=patch_meta(Pod), now="t")
    assert [c.manager for c in conflicts] == ["one"]
    forced, conflicts = server_side_apply(second, {"apiVersion": "v1", "kind": "ConfigMap", "data": {"b": "3"}}, "two",
                                          force=True, meta=patch_meta(Pod), now="t")
    assert not conflicts and forced["data"] == {"b": "3"}
    owners = {m["manager"]: m["fieldsV1"] for m in forced["metadata"]["managedFields"]}
    assert owners["two"] == {"f:data": {"f:b": {}}} and owners["one"] == {}
