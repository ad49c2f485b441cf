"""Writes :mod:`corral.apiserver.protobuf.schema` from Kubernetes' own sources (a dev tool).

Usage: ``python src/corral/apiserver/protobuf/generate.py API_REPO APIMACHINERY_REPO > schema.py``,
with checkouts of ``k8s.io/api`` and ``k8s.io/apimachinery`` (the table in the tree is from
kubernetes/api 10b39a39bcee and kubernetes/apimachinery eed236ceee2c; regenerate from
the same commits so a change only adds messages). It reads the message layouts
(field numbers, types, repeated, maps) from their ``generated.proto`` files and, from the Go
``types.go`` next to them, the two facts the ``.proto`` files do not carry but the wire
format depends on: which fields are Go pointers (a zero value sent on the wire is kept,
e.g. ``automountServiceAccountToken: false``) and which scalars are not ``omitempty``
(their zero value still appears in JSON). Only the messages reachable from :data:`ROOTS`
are written, one compact line per message.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOTS = (
    "Namespace", "NamespaceList", "Pod", "PodList", "Node", "NodeList", "Event", "EventList",
    "ConfigMap", "ConfigMapList", "Secret", "SecretList", "Service", "ServiceList", "Binding", "List",
    "Lease", "LeaseList", "PriorityClass", "PriorityClassList", "SelfSubjectAccessReview", "SelfSubjectRulesReview",
    "Deployment", "DeploymentList", "ReplicaSet", "ReplicaSetList", "Job", "JobList", "Scale",
    "meta.Status", "meta.DeleteOptions", "meta.WatchEvent", "runtime.Unknown",
)
SOURCES = (
    # (prefix, repo index, proto file, Go files)
    ("", 0, "core/v1/generated.proto", ("core/v1/types.go",)),
    ("", 0, "coordination/v1/generated.proto", ("coordination/v1/types.go",)),
    ("", 0, "scheduling/v1/generated.proto", ("scheduling/v1/types.go",)),
    ("", 0, "authorization/v1/generated.proto", ("authorization/v1/types.go",)),
    ("", 0, "apps/v1/generated.proto", ("apps/v1/types.go",)),
    ("", 0, "batch/v1/generated.proto", ("batch/v1/types.go",)),
    ("", 0, "autoscaling/v1/generated.proto", ("autoscaling/v1/types.go",)),
    ("scheduling.v1alpha3.", 0, "scheduling/v1alpha3/generated.proto", ("scheduling/v1alpha3/types.go",)),
    ("meta.", 1, "pkg/apis/meta/v1/generated.proto", ("pkg/apis/meta/v1/types.go",)),
    ("runtime.", 1, "pkg/runtime/generated.proto", ("pkg/runtime/types.go",)),
    ("", 1, "pkg/api/resource/generated.proto", ()),
    ("", 1, "pkg/util/intstr/generated.proto", ()),
)
PACKAGES = {
    # the k8s.io/api groups share one namespace of message names (parse refuses a clash)
    "k8s.io.api.core.v1.": "",
    "k8s.io.api.apps.v1.": "",
    "k8s.io.api.batch.v1.": "",
    "k8s.io.api.autoscaling.v1.": "",
    "k8s.io.api.scheduling.v1alpha3.": "scheduling.v1alpha3.",  # batch/v1's pod-group policies
    "k8s.io.apimachinery.pkg.apis.meta.v1.": "meta.",
    "k8s.io.apimachinery.pkg.runtime.": "runtime.",
    "k8s.io.apimachinery.pkg.runtime.schema.": "schema.",
    "k8s.io.apimachinery.pkg.api.resource.": "",
    "k8s.io.apimachinery.pkg.util.intstr.": "",
}
SPECIAL = {"Quantity", "IntOrString", "meta.Time", "meta.MicroTime", "meta.Duration", "meta.FieldsV1",
           "runtime.RawExtension"}
FIELD = re.compile(r"^\s*(optional|repeated)\s+(\S+)\s+(\w+)\s*=\s*(\d+)\s*;|^\s*map<(\w+),\s*(\S+)>\s+(\w+)\s*=\s*(\d+)\s*;")
GO_INLINE = re.compile(r'^\s+(\w+)\s+`json:"(?:,inline)?" protobuf:"bytes,\d+,\w+(?:,name=(\w+))?')
GO_FIELD = re.compile(r'^\s+\w+\s+(\S+)\s+`json:"([^"]*)".*?protobuf:"[^"]*name=(\w+)')


def qualify(type_name: str, prefix: str) -> str:
    if type_name.startswith("."):
        name = type_name[1:]
        for package, short in PACKAGES.items():
            if name.startswith(package):
                return short + name[len(package):]
        raise ValueError(f"unknown package in {type_name}")
    return type_name if type_name in ("string", "bool", "int32", "int64", "bytes") else prefix + type_name


def go_facts(text: str, prefix: str) -> dict[tuple[str, str], str]:
    """(message, proto field) -> "?" Go pointer, "!" non-omitempty scalar, "^" inlined struct."""
    facts: dict[tuple[str, str], str] = {}
    struct = ""
    for line in text.splitlines():
        start = re.match(r"^type (\w+) struct \{", line)
        if start:
            struct = prefix + start.group(1)
            continue
        inline = GO_INLINE.match(line)
        if struct and inline:
            go_name, proto_name = inline.groups()
            facts[(struct, proto_name or go_name[0].lower() + go_name[1:])] = "^"
            continue
        match = GO_FIELD.match(line)
        if struct and match:
            go_type, json_tag, proto_name = match.groups()
            if go_type.startswith("*"):
                facts[(struct, proto_name)] = "?"
            elif "omitempty" not in json_tag and go_type in ("string", "bool", "int32", "int64"):
                facts[(struct, proto_name)] = "!"
    return facts


def parse(texts: list[tuple[str, str, str]]) -> dict[str, list[str]]:
    messages: dict[str, list[str]] = {}
    facts: dict[tuple[str, str], str] = {}
    for prefix, proto, go in texts:
        facts.update(go_facts(go, prefix))
        current = ""
        for line in proto.splitlines():
            start = re.match(r"^message (\w+) \{", line)
            if start:
                current = prefix + start.group(1)
                if current in messages:
                    raise ValueError(f"two messages named {current}: give their package a prefix in SOURCES")
                messages[current] = []
                continue
            match = FIELD.match(line)
            if not (current and match):
                continue
            if match.group(1):
                label, type_name, name, number = match.group(1, 2, 3, 4)
                spec = qualify(type_name, prefix) + ("[]" if label == "repeated" else "")
            else:
                _, value, name, number = match.group(5, 6, 7, 8)
                spec = f"{{{qualify(value, prefix)}}}"
            messages[current].append(f"{number} {name} {spec}{facts.get((current, name), '')}")
    return messages


def reachable(messages: dict[str, list[str]]) -> list[str]:
    seen: list[str] = []
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        if name in SPECIAL:
            continue
        for field in messages[name]:
            type_name = field.split()[2].strip("[]{}?!^")
            if type_name in messages:
                todo.append(type_name)
    return sorted(seen)


def main() -> None:
    roots = [Path(sys.argv[1]), Path(sys.argv[2])]
    texts = [
        (prefix, (roots[repo] / proto).read_text(), "".join((roots[repo] / go).read_text() for go in gos))
        for prefix, repo, proto, gos in SOURCES
    ]
    messages = parse(texts)
    print('"""Kubernetes protobuf message layouts, written by ``corral.apiserver.protobuf.generate``.')
    print()
    print("One entry per message: ``number name type`` per field, ``;``-separated. ``T[]`` is repeated,")
    print("``{T}`` a map from string, a trailing ``?`` marks a Go pointer (a zero value on the wire is")
    print("kept), ``!`` a scalar that JSON shows even when zero and ``^`` a message whose fields")
    print("JSON inlines into its parent. Do not edit by hand.")
    print('"""')
    print()
    print("MESSAGES: dict[str, str] = {")
    for name in reachable(messages):
        print(f'    "{name}": "{"; ".join(messages[name])}",')
    print("}")


if __name__ == "__main__":
    main()
