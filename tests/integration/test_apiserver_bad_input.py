"""Bad input against a real API server: every case a 4xx ``Status`` naming the field, nothing stored, server healthy.

The table holds what kube-apiserver rejects (issue 22): bodies that cannot be decoded
faithfully (deep nesting, lone surrogates, non-finite numbers, YAML alias bombs), names,
labels and annotations, pod specs (containers, ports, probes, env, volumes, quantities,
wrong JSON types anywhere a component indexes), Queues, DeleteOptions, ``continue``
tokens, ``fieldValidation=Strict`` on core kinds, and objects over the size limit once
decoded or patched.

Each case runs through both HTTP fronts: the lean HTTP/1.1 front (small bodies) and
aiohttp (the same request as HTTP/1.0, which the lean front hands over), and must be
answered identically. After each: the store's resourceVersion has not moved (nothing was
written anywhere) and a good pod create succeeds.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from corral.apiserver.server import RunningServer
from corral.testing.apiserver import running_apiserver

NS = "/api/v1/namespaces/default"
PODS = f"{NS}/pods"
BASE = f"{PODS}/base"
QUEUES = "/apis/corral.dev/v1alpha1/queues"
JSON = "application/json"
YAML = "application/yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"

pytestmark = pytest.mark.asyncio(loop_scope="module")


def pod(name: str = "bad", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec}}


def with_container(**fields: Any) -> dict[str, Any]:
    body = pod()
    body["spec"]["containers"][0].update(fields)
    return body


def with_meta(**fields: Any) -> dict[str, Any]:
    body = pod()
    body["metadata"].update(fields)
    return body


def resources(requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {}
    if requests is not None:
        value["requests"] = requests
    if limits is not None:
        value["limits"] = limits
    return with_container(resources=value)


def queue(weight: Any = 1, quota: Any = 4, name: str = "q-bad") -> dict[str, Any]:
    return {"apiVersion": "corral.dev/v1alpha1", "kind": "Queue", "metadata": {"name": name},
            "spec": {"fairSharing": {"weight": weight},
                     "resourceGroups": [{"flavors": [{"name": "any", "resources": [
                         {"name": "nvidia.com/gpu", "nominalQuota": quota}]}]}]}}


def deep(levels: int, leaf: str = "[]", opener: str = "[", closer: str = "]") -> str:
    return opener * levels + leaf + closer * levels


def deep_object(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode() if not isinstance(value, bytes) else value).decode()


@dataclass
class Case:
    id: str
    method: str
    path: str
    body: bytes | None
    code: int
    words: str
    content_type: str = JSON


CASES: list[Case] = []


def add(case_id: str, method: str, path: str, body: Any, code: int, words: str, content_type: str = JSON) -> None:
    if isinstance(body, dict) and isinstance(body.get("metadata"), dict) and body["metadata"].get("name") == "bad":
        body = {**body, "metadata": {**body["metadata"], "name": f"bad-{len(CASES)}"}}  # a wrong accept can't mask later cases
    if body is None or isinstance(body, bytes):
        raw = body
    elif isinstance(body, str):
        raw = body.encode("utf-8", "surrogatepass")
    else:
        raw = json.dumps(body).encode()
    CASES.append(Case(case_id, method, path, raw, code, words, content_type))


def create(case_id: str, body: Any, code: int, words: str, path: str = PODS, content_type: str = JSON) -> None:
    add(case_id, "POST", path, body, code, words, content_type)


# ---- decoding: nesting, surrogates, non-finite numbers, YAML aliases, malformed bodies ----------

for levels in (101, 1000, 5000, 100_000):
    create(f"deep-json-array-{levels}", '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad"},"spec":'
           '{"containers":[{"name":"main"}],"x":' + deep(levels) + "}}", 400, "nested more than 100 levels")
    create(f"deep-json-object-{levels}", '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad"},"spec":'
           '{"containers":[{"name":"main"}],"x":' + deep_object(levels) + "}}", 400, "nested more than 100 levels")
    add(f"deep-merge-patch-{levels}", "PATCH", BASE, '{"metadata":{"annotations":null},"x":' + deep_object(levels) + "}",
        400, "nested more than 100 levels", MERGE)
for levels in (101, 1000, 5000):
    create(f"deep-yaml-flow-{levels}", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  x: " + deep(levels),
           400, "nested more than 100 levels", path=PODS, content_type=YAML)
    add(f"deep-strategic-patch-{levels}", "PATCH", BASE, '{"spec":{"x":' + deep(levels) + "}}", 400,
        "nested more than 100 levels", STRATEGIC)
    add(f"deep-json-patch-{levels}", "PATCH", BASE, '[{"op":"add","path":"/spec/x","value":' + deep(levels) + "}]",
        400, "nested more than 100 levels", JSON_PATCH)
    add(f"deep-delete-options-{levels}", "DELETE", BASE, '{"preconditions":' + deep_object(levels) + "}", 400,
        "nested more than 100 levels")

for levels in (101, 1000):
    create(f"deep-yaml-block-{levels}", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n"
           + "".join("  " * (i + 1) + "a:\n" for i in range(levels)), 400, "nested more than 100 levels",
           content_type=YAML)

SURROGATE = "\\ud800"
for where, template in [
    ("name", '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a%s"},"spec":{"containers":[{"name":"main"}]}}'),
    ("label-value", '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad","labels":{"a":"%s"}},"spec":{"containers":[{"name":"main"}]}}'),
    ("annotation", '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad","annotations":{"a":"x%s"}},"spec":{"containers":[{"name":"main"}]}}'),
    ("command", '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad"},"spec":{"containers":[{"name":"main","command":["%s"]}]}}'),
    ("key", '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad","labels":{"%s":"a"}},"spec":{"containers":[{"name":"main"}]}}'),
    ("low-surrogate", '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad","annotations":{"a":"\\udc00"}},"spec":{"containers":[{"name":"m%s"}]}}'),
]:
    create(f"lone-surrogate-{where}", template % SURROGATE, 400, "surrogate")
add("lone-surrogate-merge-patch", "PATCH", BASE, '{"metadata":{"labels":{"a":"\\ud800"}}}', 400, "surrogate", MERGE)
add("lone-surrogate-configmap", "POST", f"{NS}/configmaps",
    '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bad"},"data":{"k":"\\udfff"}}', 400, "surrogate")

for literal in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400"):
    create(f"nonfinite-json-weight-{literal}", json.dumps(queue()).replace('"weight": 1', '"weight": ' + literal),
           400, "finite", path=QUEUES)
    create(f"nonfinite-json-pod-{literal}", '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad"},"spec":'
           '{"containers":[{"name":"main"}],"x":' + literal + "}}", 400, "finite")
for literal in (".inf", "-.inf", ".nan", ".Inf", ".NaN"):
    create(f"nonfinite-yaml-weight-{literal}", "apiVersion: corral.dev/v1alpha1\nkind: Queue\nmetadata: {name: q-bad}\n"
           f"spec:\n  fairSharing: {{weight: {literal}}}\n  resourceGroups: [{{flavors: [{{name: any, resources: "
           "[{name: nvidia.com/gpu, nominalQuota: 4}]}]}]\n", 400, "spec.fairSharing.weight", path=QUEUES,
           content_type=YAML)
    create(f"nonfinite-yaml-pod-{literal}", f"apiVersion: v1\nkind: Pod\nmetadata: {{name: bad}}\nspec:\n  containers: "
           f"[{{name: main}}]\n  x: {{y: [{literal}]}}\n", 400, "spec.x.y[0]", content_type=YAML)
add("nonfinite-merge-patch", "PATCH", BASE, '{"spec":{"priority":1e999}}', 400, "finite", MERGE)
add("nonfinite-json-patch", "PATCH", BASE, '[{"op":"add","path":"/spec/x","value":1e999}]', 400, "finite", JSON_PATCH)

LAUGHS = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
          + "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
                    f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(6)))
create("yaml-billion-laughs", LAUGHS, 400, "aliases expand", path=f"{NS}/configmaps", content_type=YAML)
add("yaml-billion-laughs-apply", "PATCH", f"{NS}/configmaps/bad?fieldManager=t", LAUGHS, 400, "aliases expand", APPLY)
create("yaml-recursive-alias", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec: &s\n  containers: [{name: main}]\n"
       "  x: *s\n", 400, "recursive", content_type=YAML)
create("yaml-alias-size", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata:\n  a: &a " + "y" * 200_000
       + "\n" + "".join(f"  b{i}: *a\n" for i in range(10)), 413, "1.5 MiB", path=f"{NS}/configmaps", content_type=YAML)
create("yaml-non-string-key", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\n  labels: {1: a}\nspec: {containers: [{name: main}]}\n",
       400, "keys must be strings", content_type=YAML)
create("yaml-binary", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec: {containers: [{name: main}], x: !!binary aGk=}\n",
       400, "spec.x", content_type=YAML)
create("yaml-two-documents", "apiVersion: v1\nkind: Pod\n---\napiVersion: v1\n", 400, "not valid YAML", content_type=YAML)
create("yaml-malformed", "apiVersion: v1\nkind: [Pod\n", 400, "not valid YAML", content_type=YAML)
for body_id, raw in [("truncated", b'{"apiVersion":"v1"'), ("garbage", b"{not json"), ("trailing", b'{"kind":"Pod"} x'),
                     ("list", b"[1, 2]"), ("string", b'"pod"'), ("number", b"5"), ("null", b"null"), ("empty", b"  "),
                     ("bom-latin1", b'{"metadata":{"name":"\xff"}}')]:
    create(f"malformed-json-{body_id}", raw, 400, "")

# ---- names, labels, annotations, generateName, finalizers ---------------------------------------

for bad in ("Bad_Name", "-a", "a-", "a..b", "UPPER", "a b", "é", "a" * 254, ".a", "a/b", "../../x"):
    create(f"pod-name-{bad[:12]}", pod(bad), 422, "metadata.name")
for bad in ("a.b", "a" * 64, "A", "-x", "x_y"):
    create(f"namespace-name-{bad[:12]}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": bad}}, 422,
           "metadata.name", path="/api/v1/namespaces")
for bad in ("1abc", "a.b", "a" * 64, "Svc"):
    create(f"service-name-{bad[:12]}", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": bad}}, 422,
           "metadata.name", path=f"{NS}/services")
for bad in ("Bad_", "a..", ".", "UP-", "a" * 260 + "-"):
    body = pod()
    body["metadata"] = {"generateName": bad}
    create(f"generate-name-{bad[:12]}", body, 422, "metadata.generateName")
create("name-and-generate-name-missing", {**pod(), "metadata": {}}, 422, "metadata.name")
create("name-int", with_meta(name=5), 422, "metadata.name")
for bad in ("a b", "-a", "a-", "a/b/c", "/a", "a/", "Example.com/a", "a" * 64, "x" * 254 + "/a", "ä", "a@b", ""):
    create(f"label-key-{bad[:14]}", with_meta(labels={bad: "v"}), 422, "metadata.labels")
for bad in ("a b", "-a", "a-", "a" * 64, "a/b", "é", "a@b"):
    create(f"label-value-{bad[:14]}", with_meta(labels={"k": bad}), 422, "metadata.labels")
for bad in ("a b", "-a", "a/b/c", "Example.com/a", "a" * 64, ""):
    create(f"annotation-key-{bad[:14]}", with_meta(annotations={bad: "v"}), 422, "metadata.annotations")
create("annotations-too-big", with_meta(annotations={"a": "x" * (256 * 1024 + 1)}), 422, "must have at most 262144 bytes")
create("annotations-too-big-summed", with_meta(annotations={f"k{i}": "x" * 70_000 for i in range(4)}), 422,
       "metadata.annotations")
for bad in ("a b", "a/b/c", "-x"):
    create(f"finalizer-{bad}", with_meta(finalizers=[bad]), 422, "metadata.finalizers[0]")
create("labels-list", with_meta(labels=["a"]), 422, "metadata.labels")
create("label-value-int", with_meta(labels={"a": 1}), 422, "metadata.labels")
create("annotations-string", with_meta(annotations="x"), 422, "metadata.annotations")
create("metadata-list", {**pod(), "metadata": []}, 400, "metadata")
create("finalizers-string", with_meta(finalizers="x"), 422, "metadata.finalizers")
create("owner-references-object", with_meta(ownerReferences={}), 422, "metadata.ownerReferences")

# ---- pods: containers ------------------------------------------------------------------------------

create("no-containers", pod(containers=[]), 422, "spec.containers: Required value")
create("containers-missing", {**pod(), "spec": {}}, 422, "spec.containers: Required value")
create("containers-object", pod(containers={}), 422, 'spec.containers: Invalid value: "object": must be an array')
create("containers-string", pod(containers="x"), 422, "spec.containers")
create("containers-null-item", pod(containers=[None]), 422, "spec.containers[0]")
create("container-string", pod(containers=["main"]), 422, "spec.containers[0]")
create("container-no-name", pod(containers=[{"image": "x"}]), 422, "spec.containers[0].name: Required value")
create("container-empty-name", pod(containers=[{"name": ""}]), 422, "spec.containers[0].name")
for bad in ("../../../x", "A", "a_b", "a" * 64, "a/b", ".", "..", "-a", "a.b", "x\ny"):
    create(f"container-name-{bad[:12]}", pod(containers=[{"name": bad}]), 422, "spec.containers[0].name")
    create(f"init-container-name-{bad[:12]}", pod(initContainers=[{"name": bad}]), 422, "spec.initContainers[0].name")
create("duplicate-container-names", pod(containers=[{"name": "a"}, {"name": "a"}]), 422,
       'spec.containers[1].name: Duplicate value: "a"')
create("duplicate-init-and-container-name", pod(initContainers=[{"name": "main"}]), 422,
       'spec.containers[0].name: Duplicate value: "main"')
create("duplicate-init-container-names", pod(initContainers=[{"name": "i"}, {"name": "i"}]), 422,
       "spec.initContainers[1].name: Duplicate value")
create("container-name-int", pod(containers=[{"name": 5}]), 422, "spec.containers[0].name")
create("init-containers-string", pod(initContainers="x"), 422, "spec.initContainers")
create("command-string", with_container(command="sleep 1"), 422, "spec.containers[0].command")
create("args-ints", with_container(args=[1, 2]), 422, "spec.containers[0].args[0]")
create("image-int", with_container(image=5), 422, "spec.containers[0].image")
create("working-dir-list", with_container(workingDir=[]), 422, "spec.containers[0].workingDir")

# ports
for field, bad in [("containerPort", 0), ("containerPort", -1), ("containerPort", 70000), ("containerPort", 65536),
                   ("containerPort", 2**40), ("hostPort", -1), ("hostPort", 70000), ("hostPort", 65536)]:
    port = {"containerPort": 80, field: bad}
    create(f"port-{field}-{bad}", with_container(ports=[port]), 422, f"spec.containers[0].ports[0].{field}")
create("port-missing-container-port", with_container(ports=[{"name": "http"}]), 422, "containerPort: Required value")
create("port-string", with_container(ports=[{"containerPort": "80"}]), 422, "spec.containers[0].ports[0].containerPort")
create("port-float", with_container(ports=[{"containerPort": 80.5}]), 422, "spec.containers[0].ports[0].containerPort")
create("port-bool", with_container(ports=[{"containerPort": True}]), 422, "spec.containers[0].ports[0].containerPort")
for bad in ("FOO", "tcp", "HTTP", "tcp "):
    create(f"port-protocol-{bad or 'empty'}", with_container(ports=[{"containerPort": 80, "protocol": bad}]), 422,
           "spec.containers[0].ports[0].protocol: Unsupported value")
for bad in ("HTTP", "a--b", "123", "-a", "a-", "abcdefghijklmnop", "a_b"):
    create(f"port-name-{bad}", with_container(ports=[{"containerPort": 80, "name": bad}]), 422,
           "spec.containers[0].ports[0].name")
create("duplicate-port-names", with_container(ports=[{"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]),
       422, 'spec.containers[0].ports[1].name: Duplicate value: "web"')
create("duplicate-port-names-across-containers",
       pod(containers=[{"name": "a", "ports": [{"containerPort": 80, "name": "web"}]},
                       {"name": "b", "ports": [{"containerPort": 81, "name": "web"}]}]), 422, "spec.containers[1].ports[0].name")
create("ports-object", with_container(ports={"containerPort": 80}), 422, "spec.containers[0].ports")

# probes
for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
    for action, bad in [("httpGet", 0), ("httpGet", 70000), ("httpGet", "BAD_NAME"), ("tcpSocket", -1),
                        ("tcpSocket", "a--b"), ("grpc", 0)]:
        create(f"{probe}-{action}-port-{bad}", with_container(**{probe: {action: {"port": bad}}}), 422,
               f"spec.containers[0].{probe}.{action}.port")
    create(f"{probe}-period-negative", with_container(**{probe: {"exec": {"command": ["true"]}, "periodSeconds": -1}}), 422,
           f"spec.containers[0].{probe}.periodSeconds")
    create(f"{probe}-string", with_container(**{probe: "x"}), 422, f"spec.containers[0].{probe}")
create("probe-http-port-missing", with_container(livenessProbe={"httpGet": {"path": "/"}}), 422, "httpGet.port: Required value")
create("probe-port-float", with_container(livenessProbe={"tcpSocket": {"port": 1.5}}), 422, "livenessProbe.tcpSocket.port")

# env
for bad in ("", "A=B", "a\x01", "\u00e9"):
    create(f"env-name-{bad!r}", with_container(env=[{"name": bad, "value": "x"}]), 422, "spec.containers[0].env[0].name")
create("env-object", with_container(env={"A": "b"}), 422, "spec.containers[0].env")
create("env-name-int", with_container(env=[{"name": 5}]), 422, "spec.containers[0].env[0].name")
create("env-value-int", with_container(env=[{"name": "A", "value": 5}]), 422, "spec.containers[0].env[0].value")
create("env-name-missing", with_container(env=[{"value": "x"}]), 422, "spec.containers[0].env[0].name: Required value")

# volumes
for bad in ("A", "a_b", "../x", "a" * 64, ""):
    create(f"volume-name-{bad[:10] or 'empty'}", pod(volumes=[{"name": bad, "emptyDir": {}}]), 422, "spec.volumes[0].name")
create("duplicate-volume-names", pod(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]), 422,
       'spec.volumes[1].name: Duplicate value: "v"')
create("volumes-string", pod(volumes="x"), 422, "spec.volumes")
create("volume-mount-no-path", with_container(volumeMounts=[{"name": "v"}]), 422, "volumeMounts[0].mountPath: Required value")

# ---- pods: quantities ----------------------------------------------------------------------------

for bad in ("abc", "-1", "1e5000", "inf", "nan", "Infinity", "1e10000000", "--1", "", "1Gx", "1.2.3", "0x10", "1 Gi",
            "9" * 100, "1e31", -1, -0.5):
    create(f"cpu-request-{bad!r:.14}", resources(requests={"cpu": bad}), 422,
           "spec.containers[0].resources.requests[cpu]")
for bad in ("-1Gi", "abc", "1e5000", "1Zi"):
    create(f"memory-limit-{bad}", resources(limits={"memory": bad}), 422, "spec.containers[0].resources.limits[memory]")
create("cpu-limit-below-request", resources(requests={"cpu": "2"}, limits={"cpu": "1"}), 422,
       'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1')
create("memory-limit-below-request", resources(requests={"memory": "2Gi"}, limits={"memory": "1Gi"}), 422,
       "must be less than or equal to memory limit")
for bad in ("0.5", "1e10000000", "1e5000", "500m", "-1", "abc", 1.5):
    create(f"gpu-limit-{bad}", resources(limits={"nvidia.com/gpu": bad}), 422,
           "spec.containers[0].resources.limits[nvidia.com/gpu]")
create("gpu-request-not-limit", resources(requests={"nvidia.com/gpu": 2}, limits={"nvidia.com/gpu": 1}), 422,
       "must be equal to nvidia.com/gpu limit of 1")
create("gpu-request-without-limit", resources(requests={"nvidia.com/gpu": 1}), 422,
       "spec.containers[0].resources.limits: Required value")
create("gpu-request-1e10000000", resources(requests={"nvidia.com/gpu": "1e10000000"}, limits={"nvidia.com/gpu": 1}),
       422, "resources.requests[nvidia.com/gpu]")
create("mig-fraction", resources(limits={"nvidia.com/mig-1g.10gb": "0.5"}), 422, "must be an integer")
create("resource-name-unqualified", resources(limits={"gpu": 1}), 422, "must be a standard resource type or fully qualified")
create("resource-name-bad", resources(limits={"example.com/a b": 1}), 422, "resources.limits[example.com/a b]")
create("requests-list", resources(requests=[]), 422, "spec.containers[0].resources.requests")
create("requests-bool", resources(requests={"cpu": True}), 422, "spec.containers[0].resources.requests[cpu]")
create("requests-object", resources(requests={"cpu": {}}), 422, "spec.containers[0].resources.requests[cpu]")
create("resources-string", with_container(resources="x"), 422, "spec.containers[0].resources")
for bad in ("abc", "-1", "1e5000"):
    create(f"overhead-cpu-{bad}", pod(overhead={"cpu": bad}), 422, "spec.overhead[cpu]")
create("overhead-list", pod(overhead=[]), 422, "spec.overhead")
create("init-container-gpu-fraction", pod(initContainers=[{"name": "i", "resources": {"limits": {"nvidia.com/gpu": "0.5"}}}]),
       422, "spec.initContainers[0].resources.limits[nvidia.com/gpu]")

# ---- pods: wrong JSON types anywhere a component indexes -------------------------------------------

for field, bad, words in [
    ("affinity", "x", 'spec.affinity: Invalid value: "string": must be an object'),
    ("affinity", [], "spec.affinity"),
    ("affinity", {"nodeAffinity": "x"}, 'spec.affinity.nodeAffinity: Invalid value: "string": must be an object'),
    ("affinity", {"nodeAffinity": []}, "spec.affinity.nodeAffinity"),
    ("affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": "x"}},
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"),
    ("affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": {}}}},
     "nodeSelectorTerms"),
    ("affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": ["x"]}}},
     "nodeSelectorTerms[0]"),
    ("affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": "x"}]}}}, "nodeSelectorTerms[0].matchExpressions"),
    ("affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "a", "operator": "Foo"}]}]}}}, "matchExpressions[0].operator: Unsupported value"),
    ("affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "a", "operator": "In", "values": "b"}]}]}}}, "matchExpressions[0].values"),
    ("affinity", {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": "x"}},
     "preferredDuringSchedulingIgnoredDuringExecution"),
    ("affinity", {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": "x", "preference": {}}]}},
     "preferredDuringSchedulingIgnoredDuringExecution[0].weight"),
    ("affinity", {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": "x"}]}},
     "preferredDuringSchedulingIgnoredDuringExecution[0].preference"),
    ("affinity", {"podAffinity": "x"}, "spec.affinity.podAffinity"),
    ("affinity", {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
     "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution"),
    ("affinity", {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": "x", "topologyKey": "z"}]}},
     "requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector"),
    ("tolerations", "x", "spec.tolerations"),
    ("tolerations", {}, "spec.tolerations"),
    ("tolerations", ["x"], "spec.tolerations[0]"),
    ("tolerations", [{"operator": "Foo"}], "spec.tolerations[0].operator: Unsupported value"),
    ("tolerations", [{"effect": "NoRun"}], "spec.tolerations[0].effect: Unsupported value"),
    ("tolerations", [{"key": 5}], "spec.tolerations[0].key"),
    ("tolerations", [{"tolerationSeconds": "x"}], "spec.tolerations[0].tolerationSeconds"),
    ("nodeSelector", [], 'spec.nodeSelector: Invalid value: "array": must be an object'),
    ("nodeSelector", "x", "spec.nodeSelector"),
    ("nodeSelector", {"a": 1}, "spec.nodeSelector.a"),
    ("nodeSelector", {"kubernetes.io/os": 1}, "spec.nodeSelector[kubernetes.io/os]"),
    ("restartPolicy", "Sometimes", 'spec.restartPolicy: Unsupported value: "Sometimes"'),
    ("restartPolicy", 1, "spec.restartPolicy"),
    ("terminationGracePeriodSeconds", "x", "spec.terminationGracePeriodSeconds"),
    ("terminationGracePeriodSeconds", -1, "spec.terminationGracePeriodSeconds"),
    ("terminationGracePeriodSeconds", 1.5, "spec.terminationGracePeriodSeconds"),
    ("activeDeadlineSeconds", -5, "spec.activeDeadlineSeconds"),
    ("priority", "high", "spec.priority"),
    ("nodeName", 5, "spec.nodeName"),
    ("schedulerName", 5, "spec.schedulerName"),
    ("hostNetwork", "yes", "spec.hostNetwork"),
    ("volumes", [{"name": 5}], "spec.volumes[0].name"),
    ("imagePullSecrets", "x", "spec.imagePullSecrets"),
]:
    create(f"type-{field}-{words.replace(' ', '')[-60:]}-{json.dumps(bad)[-30:]}", pod(**{field: bad}), 422, words)
create("spec-string", {**pod(), "spec": "x"}, 422, 'spec: Invalid value: "string": must be an object')
create("spec-null", {**pod(), "spec": None}, 422, "spec")
create("status-phase-bogus", {**pod(), "status": {"phase": "Bogus"}}, 422, "status.phase: Unsupported value")
create("status-conditions-string", {**pod(), "status": {"conditions": "x"}}, 422, "status.conditions")
create("many-errors-at-once", pod(containers=[{"name": "A", "ports": [{"containerPort": 0}]}], restartPolicy="x"), 422,
       "spec.containers[0].name")

# ---- other kinds -----------------------------------------------------------------------------------

for weight, words in [(-1, "spec.fairSharing.weight"), ("x", "spec.fairSharing.weight"), ([], "spec.fairSharing.weight")]:
    create(f"queue-weight-{weight}", queue(weight=weight), 422, words, path=QUEUES)
for quota in ("abc", "-1", "1e5000", "1e10000000", [], True):
    create(f"queue-quota-{quota}", queue(quota=quota), 422, "nominalQuota", path=QUEUES)
create("queue-name", queue(name="Q_bad"), 422, "metadata.name", path=QUEUES)
create("queue-unknown-field", {**queue(), "spec": {**queue()["spec"], "weight": 1}}, 400,
       'strict decoding error: unknown field "spec.weight"', path=QUEUES)
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n-bad"}}
for bad in ("abc", "-1", "1e5000"):
    create(f"node-capacity-{bad}", {**NODE, "status": {"capacity": {"cpu": bad}}}, 422, "status.capacity[cpu]",
           path="/api/v1/nodes")
create("node-gpu-fraction", {**NODE, "status": {"allocatable": {"nvidia.com/gpu": "0.5"}}}, 422,
       "status.allocatable[nvidia.com/gpu]", path="/api/v1/nodes")
create("node-taint-effect", {**NODE, "spec": {"taints": [{"key": "a", "effect": "Maybe"}]}}, 422,
       "spec.taints[0].effect", path="/api/v1/nodes")
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}}
for port, words in [({"port": 0}, "spec.ports[0].port"), ({"port": 70000}, "spec.ports[0].port"),
                    ({"port": 80, "targetPort": 70000}, "spec.ports[0].targetPort"),
                    ({"port": 80, "targetPort": "BAD_NAME"}, "spec.ports[0].targetPort"),
                    ({"port": 80, "protocol": "HTTP"}, "spec.ports[0].protocol"),
                    ({"port": 80, "nodePort": -1}, "spec.ports[0].nodePort"),
                    ({"port": 80, "name": "Web"}, "spec.ports[0].name"),
                    ({"port": "80"}, "spec.ports[0].port")]:
    create(f"service-port-{json.dumps(port)[:40]}", {**SERVICE, "spec": {"ports": [port]}}, 422, words,
           path=f"{NS}/services")
create("service-duplicate-port-names", {**SERVICE, "spec": {"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]}},
       422, "spec.ports[1].name: Duplicate value", path=f"{NS}/services")
create("configmap-data-int", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}, "data": {"a": 1}}, 422,
       "data.a", path=f"{NS}/configmaps")
create("secret-data-list", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"}, "data": []}, 422, "data",
       path=f"{NS}/secrets")
create("priorityclass-value-string", {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                      "metadata": {"name": "bad"}, "value": "high"}, 422, "value",
       path="/apis/scheduling.k8s.io/v1/priorityclasses")
create("lease-duration-string", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "bad"},
                                 "spec": {"leaseDurationSeconds": "x"}}, 422, "spec.leaseDurationSeconds",
       path="/apis/coordination.k8s.io/v1/namespaces/default/leases")
create("configmap-too-large", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"},
                               "data": {"a": "x" * (1600 * 1024)}}, 413, "1.5 MiB", path=f"{NS}/configmaps")

# ---- fieldValidation=Strict on core kinds, and unknown values of fieldValidation --------------------

for where, body, field in [
    ("spec", pod(foo=1), "spec.foo"),
    ("top", {**pod(), "foo": 1}, "foo"),
    ("metadata", with_meta(foo=1), "metadata.foo"),
    ("container", with_container(foo=1), "spec.containers[0].foo"),
    ("port", with_container(ports=[{"containerPort": 80, "bogus": 1}]), "spec.containers[0].ports[0].bogus"),
    ("affinity", pod(affinity={"nodeAffinity": {"weird": 1}}), "spec.affinity.nodeAffinity.weird"),
]:
    create(f"strict-create-{where}", body, 400, f'strict decoding error: unknown field "{field}"',
           path=PODS + "?fieldValidation=Strict")
add("strict-update", "PUT", BASE + "?fieldValidation=Strict", pod("base", foo=1), 400,
    'unknown field "spec.foo"')
add("strict-merge-patch", "PATCH", BASE + "?fieldValidation=Strict", {"spec": {"foo": 1}}, 400,
    'unknown field "spec.foo"', MERGE)
add("strict-strategic-patch", "PATCH", BASE + "?fieldValidation=Strict", {"spec": {"containers": [{"name": "main", "x": 1}]}},
    400, 'unknown field "spec.containers[0].x"', STRATEGIC)
add("strict-json-patch", "PATCH", BASE + "?fieldValidation=Strict", [{"op": "add", "path": "/spec/foo", "value": 1}], 400,
    'unknown field "spec.foo"', JSON_PATCH)
add("strict-status-patch", "PATCH", BASE + "/status?fieldValidation=Strict", {"status": {"foo": 1}}, 400,
    'unknown field "status.foo"', MERGE)
add("strict-configmap", "POST", f"{NS}/configmaps?fieldValidation=Strict",
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}, "extra": 1}, 400, 'unknown field "extra"')
create("strict-duplicate-spec", b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad"},"spec":{"containers":[]},'
       b'"spec":{"containers":[{"name":"main"}]}}', 400, 'strict decoding error: duplicate field "spec"',
       path=PODS + "?fieldValidation=Strict")
create("strict-duplicate-container-name", b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad"},"spec":{"containers":'
       b'[{"name":"main","name":"other"}]}}', 400, 'duplicate field "spec.containers[0].name"', path=PODS + "?fieldValidation=Strict")
add("strict-duplicate-merge-patch", "PATCH", BASE + "?fieldValidation=Strict", b'{"metadata":{"labels":{"a":"1","a":"2"}}}',
    400, 'duplicate field "metadata.labels.a"', MERGE)
create("strict-duplicate-queue", json.dumps(queue())[:-1].encode() + b',"kind":"Queue"}', 400, 'duplicate field "kind"',
       path=QUEUES)
create("field-validation-bogus", pod(), 400, "fieldValidation", path=PODS + "?fieldValidation=Bogus")

# ---- updates and patches of a stored object -------------------------------------------------------

add("update-container-port", "PUT", BASE, with_container(ports=[{"containerPort": 70000}]) | {"metadata": {"name": "base"}},
    422, "containerPort")
add("update-container-name", "PUT", BASE, pod("base", containers=[{"name": "../x"}]), 422, "spec.containers[0].name")
add("merge-patch-port", "PATCH", BASE, {"spec": {"containers": [{"name": "main", "ports": [{"containerPort": 70000}]}]}},
    422, "containerPort", MERGE)
add("merge-patch-affinity", "PATCH", BASE, {"spec": {"affinity": {"nodeAffinity": "x"}}}, 422,
    "spec.affinity.nodeAffinity", MERGE)
add("strategic-patch-container-name", "PATCH", BASE, {"spec": {"containers": [{"name": "../../../x"}]}}, 422,
    "spec.containers[1].name", STRATEGIC)
add("strategic-patch-gpu", "PATCH", BASE, {"spec": {"containers": [{"name": "main", "resources": {"limits": {
    "nvidia.com/gpu": "1e5000"}}}]}}, 422, "limits[nvidia.com/gpu]", STRATEGIC)
add("json-patch-label", "PATCH", BASE, [{"op": "add", "path": "/metadata/labels", "value": {"a b": "c"}}], 422,
    "metadata.labels", JSON_PATCH)
add("json-patch-no-containers", "PATCH", BASE, [{"op": "replace", "path": "/spec/containers", "value": []}], 422,
    "spec.containers: Required value", JSON_PATCH)
add("json-patch-tolerations", "PATCH", BASE, [{"op": "add", "path": "/spec/tolerations", "value": "x"}], 422,
    "spec.tolerations", JSON_PATCH)
add("status-patch-phase", "PATCH", BASE + "/status", {"status": {"phase": "Exploded"}}, 422, "status.phase", MERGE)
add("apply-bad-port", "PATCH", BASE + "?fieldManager=t", "apiVersion: v1\nkind: Pod\nmetadata: {name: base}\nspec:\n"
    "  containers: [{name: main, ports: [{containerPort: 0}]}]\n", 422, "containerPort", APPLY)
add("json-patch-grows-past-limit", "PATCH", f"{NS}/configmaps/base",
    [{"op": "add", "path": "/data", "value": {"a": "x" * 200_000}}]
    + [{"op": "copy", "from": "/data/a", "path": f"/data/b{i}"} for i in range(10)], 413, "1.5 MiB", JSON_PATCH)
add("json-patch-doubling", "PATCH", f"{NS}/configmaps/base",
    [{"op": "add", "path": "/data", "value": {"a": "x" * 1000}}]
    + [{"op": "copy", "from": "/data", "path": f"/data/d{i}"} for i in range(40)], 422, "accumulated copy size limit",
    JSON_PATCH)
add("json-patch-too-many-operations", "PATCH", BASE, [{"op": "test", "path": "/kind", "value": "Pod"}] * 10_001, 422,
    "at most 10000", JSON_PATCH)
add("merge-patch-annotation-too-long", "PATCH", BASE, {"metadata": {"annotations": {"a": "x" * 300_000}}}, 422,
    "metadata.annotations", MERGE)

# ---- DeleteOptions and continue tokens -------------------------------------------------------------

for field, bad, words in [
    ("gracePeriodSeconds", "abc", "gracePeriodSeconds"), ("gracePeriodSeconds", -1, "gracePeriodSeconds"),
    ("gracePeriodSeconds", 10**30, "gracePeriodSeconds"), ("gracePeriodSeconds", 1.5, "gracePeriodSeconds"),
    ("gracePeriodSeconds", True, "gracePeriodSeconds"), ("gracePeriodSeconds", [], "gracePeriodSeconds"),
    ("preconditions", "x", "preconditions"), ("preconditions", [], "preconditions"),
    ("preconditions", {"uid": 5}, "preconditions.uid"), ("preconditions", {"resourceVersion": []}, "preconditions.resourceVersion"),
    ("dryRun", "All", "dryRun"), ("dryRun", ["Bogus"], "dryRun"), ("propagationPolicy", "Bogus", "propagationPolicy"),
    ("propagationPolicy", 5, "propagationPolicy"), ("orphanDependents", "x", "orphanDependents"),
]:
    add(f"delete-body-{field}-{json.dumps(bad)[:20]}", "DELETE", BASE, {"kind": "DeleteOptions", field: bad}, 400, words)
for body_id, raw in [("list", b"[]"), ("string", b'"x"'), ("garbage", b"{nope"), ("nan", b'{"gracePeriodSeconds": NaN}'),
                     ("huge", b'{"gracePeriodSeconds": 1e999}')]:
    add(f"delete-body-{body_id}", "DELETE", BASE, raw, 400, "")
for query, words in [("gracePeriodSeconds=-1", "gracePeriodSeconds"), ("gracePeriodSeconds=abc", "gracePeriodSeconds"),
                     (f"gracePeriodSeconds={10**30}", "gracePeriodSeconds"), ("gracePeriodSeconds=1.5", "gracePeriodSeconds"),
                     ("propagationPolicy=Bogus", "propagationPolicy"), ("orphanDependents=maybe", "orphanDependents")]:
    add(f"delete-query-{query}", "DELETE", f"{BASE}?{query}", None, 400, words)
add("delete-collection-grace", "DELETE", f"{PODS}?gracePeriodSeconds=-3", None, 400, "gracePeriodSeconds")
for token_id, value in [("not-base64", "!!!"), ("garbage", "abc"), ("list", token([])), ("start-int", token({"start": 5, "rv": 1})),
                        ("rv-string", token({"start": ["a", "b"], "rv": "x"})),
                        ("rv-inf", base64.urlsafe_b64encode(b'{"start":["a","b"],"rv":1e999}').decode()),
                        ("rv-negative", token({"start": ["a", "b"], "rv": -1})),
                        ("rv-huge", token({"start": ["a", "b"], "rv": 10**30})),
                        ("start-short", token({"start": ["a"], "rv": 1})), ("start-ints", token({"start": [1, 2], "rv": 1})),
                        ("deep", base64.urlsafe_b64encode(deep(1000).encode()).decode()),
                        ("bad-utf8", base64.urlsafe_b64encode(b"\xff\xfe").decode())]:
    add(f"continue-{token_id}", "GET", f"{PODS}?limit=1&continue={value}", None, 400, "continue key is not valid")

assert len(CASES) >= 250, len(CASES)
assert len({case.id for case in CASES}) == len(CASES), [c.id for c in CASES if sum(d.id == c.id for d in CASES) > 1]


# ---- the harness --------------------------------------------------------------------------------------

@dataclass
class Harness:
    server: RunningServer
    session: aiohttp.ClientSession
    legacy: aiohttp.ClientSession  # HTTP/1.0: the lean front hands every such request to aiohttp
    counter: itertools.count[int]

    async def call(self, method: str, path: str, body: bytes | None = None, content_type: str = JSON, *,
                   front: str = "lean") -> tuple[int, Any, dict[str, str]]:
        session = self.session if front == "lean" else self.legacy
        headers = {"Authorization": f"Bearer {self.server.token}", "Content-Type": content_type}
        data: Any = io.BytesIO(body) if body is not None and len(body) > 1024 * 1024 else body
        async with session.request(method, self.server.url + path, data=data, headers=headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text), dict(response.headers)
            except ValueError:
                return response.status, text, dict(response.headers)

    async def store_rv(self) -> str:
        status, body, _ = await self.call("GET", "/api/v1/namespaces")
        assert status == 200, body
        return str(body["metadata"]["resourceVersion"])


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    data: Path = tmp_path_factory.mktemp("bad-input")
    # a new connection per request: a connection the lean front handed over stays with aiohttp
    async with running_apiserver(data, tls=False) as server, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), version=aiohttp.HttpVersion10) as legacy:
        h = Harness(server, session, legacy, itertools.count())
        status, body, _ = await h.call("POST", PODS, json.dumps(pod("base")).encode())
        assert status == 201, body
        status, body, _ = await h.call("POST", f"{NS}/configmaps", json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "base"}}).encode())
        assert status == 201, body
        yield h


@pytest.mark.parametrize("front", ["lean", "aiohttp"])
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_bad_input_is_a_4xx_status_naming_the_field_and_stores_nothing(harness: Harness, case: Case, front: str) -> None:
    before = await harness.store_rv()
    lean_front = harness.server.server._front
    assert lean_front is not None
    served_lean = lean_front.requests
    status, answer, _ = await harness.call(case.method, case.path, case.body, case.content_type, front=front)
    if case.method == "POST" and status < 300 and isinstance(answer, dict):  # wrongly accepted: don't fail later cases too
        await harness.call("DELETE", f"{case.path.split('?')[0]}/{answer['metadata']['name']}?gracePeriodSeconds=0")
    assert status == case.code, answer
    assert isinstance(answer, dict) and answer["kind"] == "Status" and answer["code"] == case.code, answer
    assert answer["status"] == "Failure" and answer["reason"], answer
    assert case.words in answer["message"], answer["message"]
    if front == "aiohttp" or len(case.body or b"") > 64 * 1024:
        assert lean_front.requests == served_lean  # it really went through aiohttp
    else:
        assert lean_front.requests == served_lean + 1  # it really went through the lean front
    assert await harness.store_rv() == before, "a rejected request changed the store"
    _, current, _ = await harness.call("GET", BASE)
    assert current["metadata"]["name"] == "base" and "x" not in current["spec"]
    name = f"good-{next(harness.counter)}"
    status, created, _ = await harness.call("POST", PODS, json.dumps(pod(name)).encode(), front=front)
    assert status == 201, created
    status, _, _ = await harness.call("DELETE", f"{PODS}/{name}", front=front)
    assert status == 200


async def test_both_fronts_answer_the_same(harness: Harness) -> None:
    """The lean front and aiohttp give the same Status for the same bad request (the table, compared)."""
    for case in CASES[::7]:
        lean = await harness.call(case.method, case.path, case.body, case.content_type, front="lean")
        legacy = await harness.call(case.method, case.path, case.body, case.content_type, front="aiohttp")
        assert (lean[0], lean[1]) == (legacy[0], legacy[1]), case.id


async def test_default_field_validation_warns_and_drops_unknown_core_fields(harness: Harness) -> None:
    body = pod("warned", foo=1)
    body["spec"]["containers"][0]["bogus"] = 2
    body["spec"]["dnsPolicy"] = "ClusterFirst"  # a Kubernetes field corral does not model: kept
    status, created, headers = await harness.call("POST", PODS, json.dumps(body).encode())
    assert status == 201, created
    assert 'unknown field \\"spec.foo\\"' in headers.get("Warning", "") or 'unknown field "spec.foo"' in headers.get("Warning", "")
    assert "spec.containers[0].bogus" in headers.get("Warning", "")
    assert "foo" not in created["spec"] and "bogus" not in created["spec"]["containers"][0]
    assert created["spec"]["dnsPolicy"] == "ClusterFirst"
    status, patched, headers = await harness.call("PATCH", f"{PODS}/warned/status", json.dumps(
        {"status": {"foo": 1, "phase": "Pending"}}).encode(), MERGE)
    assert status == 200 and "foo" not in patched["status"] and "status.foo" in headers.get("Warning", "")
    status, ignored, headers = await harness.call("POST", PODS + "?fieldValidation=Ignore",
                                                  json.dumps(pod("ignored", foo=1)).encode())
    assert status == 201 and "foo" not in ignored["spec"] and "Warning" not in headers


async def test_corral_kinds_status_defaults_to_warn(harness: Harness) -> None:
    """Like a CRD's /status: unknown status fields are dropped with a warning, not refused (kopf writes them)."""
    status, created, _ = await harness.call("POST", QUEUES, json.dumps(queue(name="q-status")).encode())
    assert status == 201, created
    status, patched, headers = await harness.call("PATCH", f"{QUEUES}/q-status/status", json.dumps(
        {"status": {"kopf": {"progress": {}}}}).encode(), MERGE)
    assert status == 200, patched
    assert "kopf" not in (patched.get("status") or {}) and "status.kopf" in headers.get("Warning", "")


async def test_all_problems_are_reported_in_one_status(harness: Harness) -> None:
    body = pod(containers=[{"name": "A", "ports": [{"containerPort": 0, "protocol": "X"}]}, {"name": "A"}],
               restartPolicy="x", affinity={"nodeAffinity": "x"})
    body["metadata"]["labels"] = {"a b": "c"}
    status, answer, _ = await harness.call("POST", PODS, json.dumps(body).encode())
    assert status == 422
    fields = {cause["field"] for cause in answer["details"]["causes"]}
    assert {"spec.containers[0].name", "spec.containers[0].ports[0].containerPort", "spec.containers[0].ports[0].protocol",
            "spec.restartPolicy", "spec.affinity.nodeAffinity", "metadata.labels"} <= fields, fields
    assert answer["reason"] == "Invalid" and answer["details"]["kind"] == "Pod"


async def test_a_good_pod_with_every_checked_field_is_accepted(harness: Harness) -> None:
    body = pod("full", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}]}}},
        tolerations=[{"operator": "Exists"}], nodeSelector={"kubernetes.io/os": "linux"}, overhead={"cpu": "10m"},
        volumes=[{"name": "data", "emptyDir": {}}], initContainers=[{"name": "init"}])
    body["metadata"].update(labels={"app.kubernetes.io/name": "x", "v": ""}, annotations={"example.com/a": "b"},
                            finalizers=["example.com/f"])
    body["spec"]["containers"][0].update(
        ports=[{"containerPort": 80, "name": "http", "protocol": "TCP", "hostPort": 0}],
        env=[{"name": "A_B", "value": "1"}, {"name": "my.dotted-name", "value": "2"}],
        resources={"requests": {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": 1},
                   "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}},
        livenessProbe={"httpGet": {"port": "http"}}, readinessProbe={"tcpSocket": {"port": 80}})
    status, created, headers = await harness.call("POST", PODS, json.dumps(body).encode())
    assert status == 201, created
    assert "Warning" not in headers, headers
    assert created["metadata"]["finalizers"] == ["example.com/f"]


async def test_grace_period_at_the_int64_bound_is_accepted(harness: Harness) -> None:
    """The largest valid grace period does not overflow the deadline (a bound pod deletes gracefully)."""
    status, _, _ = await harness.call("POST", PODS, json.dumps(pod("graceful", nodeName="n1")).encode())
    assert status == 201
    status, answer, _ = await harness.call("DELETE", f"{PODS}/graceful", json.dumps(
        {"gracePeriodSeconds": 2**63 - 1}).encode())
    assert status == 200, answer
    assert answer["metadata"]["deletionTimestamp"]
