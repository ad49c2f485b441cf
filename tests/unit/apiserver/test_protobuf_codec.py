"""The protobuf codec against bytes real clients sent, hand-derived bytes, and its own round trips."""

from __future__ import annotations

import base64
import datetime as dt
import functools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.api.kinds import default_registry
from corral.apiserver.protobuf import codec
from corral.apiserver.protobuf.codec import SERVED, SPECS, FieldSpec

# What kubectl 1.35.2 sent (its `-v=8` hex dumps of the request bodies), byte for byte.
KUBECTL_CONFIGMAP = bytes.fromhex(
    "6b 38 73 00 0a 0f 0a 02 76 31 12 09 43 6f 6e 66 69 67 4d 61 70 12 20 0a 16 0a 02 63 32 12 00 1a"
    "04 74 65 61 6d 22 00 2a 00 32 00 38 00 42 00 12 06 0a 01 61 12 01 62 1a 00 22 00")
KUBECTL_SECRET = bytes.fromhex(
    "6b 38 73 00 0a 0c 0a 02 76 31 12 06 53 65 63 72 65 74 12 34 0a 16 0a 02 70 77 12 00 1a 04 74 65"
    "61 6d 22 00 2a 00 32 00 38 00 42 00 12 12 0a 08 70 61 73 73 77 6f 72 64 12 06 73 33 63 72 65 74"
    "1a 06 4f 70 61 71 75 65 1a 00 22 00")
KUBECTL_BINARY_CONFIGMAP = bytes.fromhex(
    "6b 38 73 00 0a 0f 0a 02 76 31 12 09 43 6f 6e 66 69 67 4d 61 70 12 31 0a 17 0a 03 62 69 6e 12 00"
    "1a 04 74 65 61 6d 22 00 2a 00 32 00 38 00 42 00 12 06 0a 01 61 12 01 62 1a 0e 0a 07 62 69 6e 2e"
    "64 61 74 12 03 00 01 ff 1a 00 22 00")
KUBECTL_PRIORITY_CLASS = bytes.fromhex(
    "6b 38 73 00 0a 25 0a 14 73 63 68 65 64 75 6c 69 6e 67 2e 6b 38 73 2e 69 6f 2f 76 31 12 0d 50 72"
    "69 6f 72 69 74 79 43 6c 61 73 73 12 34 0a 14 0a 04 68 69 67 68 12 00 1a 00 22 00 2a 00 32 00 38"
    "00 42 00 10 e8 07 18 00 22 01 64 2a 14 50 72 65 65 6d 70 74 4c 6f 77 65 72 50 72 69 6f 72 69 74"
    "79 1a 00 22 00")

# `kubectl create deployment web --image=python:3.12 -- python3 -m http.server` and `kubectl create job pi
# --image=python:3.12 -- python3 -c 'print(42)'` (their `-v=9` dumps; kubectl 1.32.4 and 1.35.2 send the same bytes).
KUBECTL_DEPLOYMENT = base64.b64decode(
    "azhzAAoVCgdhcHBzL3YxEgpEZXBsb3ltZW50Es4BCh8KA3dlYhIAGgAiACoAMgA4AEIAWgoKA2FwcBIDd2ViEpwBCAESDAoKCgNh"
    "cHASA3dlYhqBAQocCgASABoAIgAqADIAOABCAFoKCgNhcHASA3dlYhJhEkMKBnB5dGhvbhILcHl0aG9uOjMuMTIaB3B5dGhvbjMa"
    "Ai1tGgtodHRwLnNlcnZlcioAQgBqAHIAgAEAiAEAkAEAogEAGgAyAEIASgBSAFgAYABoAIIBAIoBAJoBAMIBACICCgAoADgAGgwI"
    "ABAAGAAgACgAOAAaACIA")
KUBECTL_JOB = base64.b64decode(
    "azhzAAoPCghiYXRjaC92MRIDSm9iEpYBChIKAnBpEgAaACIAKgAyADgAQgASdjJ0ChAKABIAGgAiACoAMgA4AEIAEmASPQoCcGkS"
    "C3B5dGhvbjozLjEyGgdweXRob24zGgItYxoJcHJpbnQoNDIpKgBCAGoAcgCAAQCIAQCQAQCiAQAaBU5ldmVyMgBCAEoAUgBYAGAA"
    "aACCAQCKAQCaAQDCAQAaCCAAKAAwADoAGgAiAA==")


def test_decodes_what_kubectl_sends() -> None:
    assert codec.decode_object(KUBECTL_CONFIGMAP) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c2", "namespace": "team"}, "data": {"a": "b"}}
    assert codec.decode_object(KUBECTL_SECRET) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pw", "namespace": "team"},
        "data": {"password": base64.b64encode(b"s3cret").decode()}, "type": "Opaque"}
    assert codec.decode_object(KUBECTL_BINARY_CONFIGMAP)["binaryData"] == {"bin.dat": base64.b64encode(b"\0\1\xff").decode()}
    # globalDefault=false is on the wire (a plain Go bool) and dropped as JSON's omitempty does;
    # preemptionPolicy is a Go pointer and kept.
    assert codec.decode_object(KUBECTL_PRIORITY_CLASS) == {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"},
        "value": 1000, "description": "d", "preemptionPolicy": "PreemptLowerPriority"}



def test_decodes_what_typed_kubectl_create_deployment_and_job_send() -> None:
    # Go's JSON for the same objects (`--dry-run=client -o json`): empty structs kubectl fills in stay ({}),
    # the zero template.metadata.creationTimestamp does not.
    template_metadata: dict[str, Any] = {"labels": {"app": "web"}}
    assert codec.decode_object(KUBECTL_DEPLOYMENT) == {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": template_metadata, "spec": {"containers": [{
                "name": "python", "image": "python:3.12", "command": ["python3", "-m", "http.server"],
                "resources": {}}]}}, "strategy": {}},
        "status": {}}
    assert codec.decode_object(KUBECTL_JOB) == {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
        "spec": {"template": {"metadata": {}, "spec": {
            "containers": [{"name": "pi", "image": "python:3.12", "command": ["python3", "-c", "print(42)"],
                            "resources": {}}],
            "restartPolicy": "Never"}}},
        "status": {}}
    # what the server answers in protobuf (zero scalars left out, unlike Go) reads back as the same object
    for body in (KUBECTL_DEPLOYMENT, KUBECTL_JOB):
        obj = codec.decode_object(body)
        assert codec.decode_object(codec.encode_object(obj)) == obj

def test_encodes_the_bytes_derived_from_generated_proto() -> None:
    # Namespace{metadata: ObjectMeta{name(1): "a", labels(11): {"k": "v"}}}, then the Unknown envelope's empty
    # contentEncoding (3) and contentType (4) as Go writes them.
    meta = b"\x0a\x01a" + b"\x5a\x06" + b"\x0a\x01k\x12\x01v"
    expected = (b"k8s\x00" + b"\x0a\x0f\x0a\x02v1\x12\x09Namespace" + b"\x12" + bytes([len(meta) + 2]) + b"\x0a"
                + bytes([len(meta)]) + meta + b"\x1a\x00\x22\x00")
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "labels": {"k": "v"}}}
    assert codec.encode_object(obj) == expected
    # DeleteOptions{gracePeriodSeconds(1): 0, preconditions(2): {resourceVersion(2): "7"}, propagationPolicy(4): "Background"}
    options = b"\x08\x00" + b"\x12\x03\x12\x017" + b"\x22\x0aBackground"
    body = b"k8s\x00\x0a\x13\x0a\x02v1\x12\x0dDeleteOptions\x12" + bytes([len(options)]) + options + b"\x1a\x00\x22\x00"
    assert codec.decode_object(body) == {
        "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
        "preconditions": {"resourceVersion": "7"}, "propagationPolicy": "Background"}


def test_time_int_or_string_quantity_and_negative_numbers() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "creationTimestamp": "2024-02-29T23:59:59Z",
                                                           "deletionGracePeriodSeconds": -1},
           "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}],
                                    "livenessProbe": {"httpGet": {"port": "http"}},
                                    "readinessProbe": {"tcpSocket": {"port": 8080}},
                                    "resources": {"limits": {"cpu": "500m", "nvidia.com/gpu": 2}}}]}}
    decoded = codec.decode_object(codec.encode_object(pod))
    container = decoded["spec"]["containers"][0]
    assert decoded["metadata"]["creationTimestamp"] == "2024-02-29T23:59:59Z"
    assert decoded["metadata"]["deletionGracePeriodSeconds"] == -1
    assert container["livenessProbe"]["httpGet"]["port"] == "http"
    assert container["readinessProbe"]["tcpSocket"]["port"] == 8080
    assert container["resources"]["limits"] == {"cpu": "500m", "nvidia.com/gpu": "2"}  # quantities are strings
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
             "spec": {"renewTime": "2024-01-01T00:00:01.250000Z", "leaseDurationSeconds": 0}}
    # MicroTime keeps microseconds; leaseDurationSeconds is a Go pointer, so 0 survives.
    assert codec.decode_object(codec.encode_object(lease))["spec"] == lease["spec"]


def test_unrepresentable_values_are_refused_not_dropped() -> None:
    with pytest.raises(codec.NotRepresentableError, match="spec: no protobuf field for madeUp"):
        codec.encode_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {}, "spec": {"madeUp": 1}})
    with pytest.raises(codec.NotRepresentableError, match="expected an integer"):
        codec.encode_object({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {}, "value": "1"})
    with pytest.raises(codec.NotRepresentableError, match="no protobuf form"):
        codec.encode_object({"apiVersion": "corral.dev/v1alpha1", "kind": "Queue", "metadata": {}})
    with pytest.raises(codec.NotRepresentableError, match=r"cannot read protobuf bodies of corral\.dev/v1alpha1 Queue"):
        codec.decode_object(codec._envelope("corral.dev/v1alpha1", "Queue", b""))
    with pytest.raises(codec.ProtobufError, match="magic"):
        codec.decode_object(b'{"kind": "Pod"}')
    with pytest.raises(codec.ProtobufError, match="runs past the end"):
        codec.decode_object(KUBECTL_SECRET[:40])
    huge_time = b"\x0a\x0c\x42\x0a\x08" + b"\xff" * 8 + b"\x7f"  # ObjectMeta.creationTimestamp.seconds = 2**63-1
    with pytest.raises(codec.ProtobufError, match="out of range"):
        codec.decode_object(codec._envelope("v1", "Namespace", huge_time))


def test_every_served_builtin_kind_has_a_protobuf_form() -> None:
    for rt in default_registry().all():
        if rt.group in ("", "coordination.k8s.io", "scheduling.k8s.io", "apps", "batch"):
            assert codec.message_name(rt.api_version, rt.kind) == rt.kind
            assert codec.message_name(rt.api_version, f"{rt.kind}List") == f"{rt.kind}List"
        else:
            assert codec.message_name(rt.api_version, rt.kind) is None  # corral's kinds: JSON, like CRDs


def test_watch_frame_is_length_prefixed_bare_watch_event() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "5"}}
    frame = codec.watch_frame("ADDED", obj)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    event = codec.decode_message("meta.WatchEvent", frame[4:])
    assert event == {"type": "ADDED", "object": obj}


# --- every field populated, and generated objects --------------------------------------------

SPECIAL_VALUES: dict[str, Any] = {
    "Quantity": "1500m", "IntOrString": "http", "meta.Time": "2024-05-06T07:08:09Z",
    "meta.MicroTime": "2024-05-06T07:08:09.123456Z", "meta.FieldsV1": {"f:metadata": {}},
    "runtime.RawExtension": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
}
SCALAR_VALUES: dict[str, Any] = {"string": "s", "bool": True, "int32": -7, "int64": 1 << 40, "bytes": "AAH/"}


def full_object(name: str, depth: int = 0) -> dict[str, Any]:
    """Message ``name`` with every field set (nested messages down to a depth), as JSON."""
    obj: dict[str, Any] = {}
    for spec in SPECS[name].fields:
        if spec.inline:
            obj.update(full_object(spec.type, depth))
            continue
        value = _full_value(spec, depth)
        if value is not None:
            obj[spec.name] = {"k": value} if spec.map else [value] if spec.repeated else value
    return obj


def _full_value(spec: FieldSpec, depth: int) -> Any:
    if spec.type in SCALAR_VALUES:
        return SCALAR_VALUES[spec.type]
    if spec.type in SPECIAL_VALUES:
        return SPECIAL_VALUES[spec.type]
    return full_object(spec.type, depth + 1) if depth < 6 else None


@pytest.mark.parametrize("api_version,kind", sorted((v, k) for v, kinds in SERVED.items() for k in kinds))
def test_every_field_of_every_served_kind_round_trips(api_version: str, kind: str) -> None:
    obj = {"apiVersion": api_version, "kind": kind, **full_object(kind)}
    if kind.endswith("List") and kind != "List":
        obj["items"] = [full_object(kind.removesuffix("List"))]
    assert codec.decode_object(codec.encode_object(obj)) == obj


def canonical_value(spec: FieldSpec, depth: int) -> st.SearchStrategy[Any]:
    """JSON values in the form the server's JSON path keeps them (what a round trip must reproduce)."""
    keep_zero = spec.pointer or spec.keep_zero
    scalars: dict[str, st.SearchStrategy[Any]] = {
        "string": st.text(min_size=0 if keep_zero else 1, max_size=8),
        "bool": st.booleans() if keep_zero else st.just(True),
        "int32": st.integers(-(2**31), 2**31 - 1).filter(lambda n: keep_zero or n != 0),
        "int64": st.integers(-(2**63), 2**63 - 1).filter(lambda n: keep_zero or n != 0),
        "bytes": st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode()).filter(lambda s: keep_zero or s != ""),
        "Quantity": st.sampled_from(["0", "1", "500m", "1Gi", "2.5"]),
        "IntOrString": st.one_of(st.integers(-(2**31), 2**31 - 1), st.text(max_size=6)),
        "meta.Time": st.datetimes(min_value=dt.datetime(1970, 1, 2)).map(
            lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
        "meta.MicroTime": st.datetimes(min_value=dt.datetime(1970, 1, 2)).map(
            lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
        "meta.FieldsV1": st.dictionaries(st.text(max_size=4), st.just({}), min_size=1, max_size=2),
        "runtime.RawExtension": st.dictionaries(st.text(max_size=4), st.integers(), min_size=1, max_size=2),
    }
    if spec.type in scalars:
        return scalars[spec.type]
    return canonical_message(spec.type, depth + 1)


@functools.cache
def canonical_message(name: str, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    if depth > 3:
        return st.just({})
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for spec in SPECS[name].fields:
        if spec.inline:
            continue
        value = canonical_value(spec, depth)
        if spec.map:
            value = st.dictionaries(st.text(max_size=6), value, min_size=1, max_size=2)
        elif spec.repeated:
            value = st.lists(value, min_size=1, max_size=2)
        parts[spec.name] = value
    inlined = [canonical_message(spec.type, depth) for spec in SPECS[name].fields if spec.inline]
    chosen = st.fixed_dictionaries({}, optional=parts)
    if inlined:
        return st.tuples(chosen, *inlined).map(lambda ds: {k: v for d in ds for k, v in d.items()})
    return chosen


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(["Pod", "Node", "Service", "Secret", "ConfigMap", "Event", "Namespace", "Lease", "PriorityClass",
                        "Deployment", "ReplicaSet", "Job", "Scale"])
       .flatmap(lambda kind: canonical_message(kind).map(lambda body: (kind, body))))
def test_decode_of_encode_is_the_json_object(kind_and_body: tuple[str, dict[str, Any]]) -> None:
    kind, body = kind_and_body
    api_version = {"Lease": "coordination.k8s.io/v1", "PriorityClass": "scheduling.k8s.io/v1", "Deployment": "apps/v1",
                   "ReplicaSet": "apps/v1", "Job": "batch/v1", "Scale": "autoscaling/v1"}.get(kind, "v1")
    obj = {"apiVersion": api_version, "kind": kind, **body}
    assert codec.decode_object(codec.encode_object(obj)) == obj
