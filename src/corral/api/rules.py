"""Kubernetes' field rules: names, labels, annotations, ports, quantities, and a pod's spec.

The pydantic models check the *types* of what clients send; these pure functions check
the *values* the way kube-apiserver's ``ValidateObjectMeta`` / ``ValidatePodSpec`` do, and
return ``(field path, problem)`` pairs worded as Kubernetes words them
(``spec.containers[0].name: Invalid value: "../x": a lowercase RFC 1123 label must ...``),
so that every problem in an object is reported in one 422 at once.

They read plain JSON dicts and never assume a field has the right type (a type error is
the model's to report; here it is skipped), so they can run on anything a client sends.
Regexes are compiled once; the checks walk only the fields they judge (they run on every
write, on the API server's hot path).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from corral.util.quantity import QuantityError, parse_quantity

Problems = list[tuple[str, str]]
"""``(field path, problem)`` pairs, e.g. ``("metadata.labels", 'Invalid value: "a b": ...')``."""

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_IANA_SVC_NAME = re.compile(r"[-a-z0-9]+")
_HAS_LETTER = re.compile(r"[a-z]")

DNS1123_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1123_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035_LABEL_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
QUANTITY_MESSAGE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"

LABEL_MAX = 63
SUBDOMAIN_MAX = 253
ANNOTATIONS_MAX_BYTES = 256 * 1024
PORT_MAX = 65535
MAX_QUANTITY = Fraction(2**63 - 1)
"""Kubernetes stores quantities as 64-bit integers (of milli-units for CPU): nothing above this is a quantity."""
STANDARD_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage", "storage", "pods"})
PROTOCOLS = ("SCTP", "TCP", "UDP")


def show(value: Any) -> str:
    """A value as Kubernetes quotes it in ``Invalid value: ...``: strings in double quotes, others as JSON would."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return '"object"' if isinstance(value, dict) else '"array"'
    return str(value)


def invalid(value: Any, why: str) -> str:
    return f"Invalid value: {show(value)}: {why}"


# ---- names -------------------------------------------------------------------------------

def dns1123_label(value: str) -> str | None:
    """Why ``value`` is not a DNS-1123 label (container, volume, namespace names), or ``None``."""
    if len(value) > LABEL_MAX:
        return f"must be no more than {LABEL_MAX} characters"
    if not _DNS1123_LABEL.fullmatch(value):
        return DNS1123_LABEL_MESSAGE
    return None


def dns1123_subdomain(value: str) -> str | None:
    """Why ``value`` is not a DNS-1123 subdomain (most object names), or ``None``."""
    if len(value) > SUBDOMAIN_MAX:
        return f"must be no more than {SUBDOMAIN_MAX} characters"
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        return DNS1123_SUBDOMAIN_MESSAGE
    return None


def dns1035_label(value: str) -> str | None:
    """Why ``value`` is not a DNS-1035 label (Service names), or ``None``."""
    if len(value) > LABEL_MAX:
        return f"must be no more than {LABEL_MAX} characters"
    if not _DNS1035_LABEL.fullmatch(value):
        return DNS1035_LABEL_MESSAGE
    return None


def qualified_name(value: str) -> str | None:
    """Why ``value`` is not a qualified name (label and annotation keys: ``[prefix/]name``), or ``None``."""
    parts = value.split("/")
    if len(parts) > 2:
        return ("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
                "and '/' (e.g. 'example.com/MyName')")
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return "prefix part must be non-empty"
        why = dns1123_subdomain(prefix)
        if why:
            return f"prefix part {why}"
    if not name:
        return "name part must be non-empty"
    if len(name) > LABEL_MAX:
        return f"name part must be no more than {LABEL_MAX} characters"
    if not _QUALIFIED_NAME.fullmatch(name):
        return QUALIFIED_NAME_MESSAGE
    return None


def label_value(value: str) -> str | None:
    if len(value) > LABEL_MAX:
        return f"must be no more than {LABEL_MAX} characters"
    if not _LABEL_VALUE.fullmatch(value):
        return LABEL_VALUE_MESSAGE
    return None


def port_name(value: str) -> str | None:
    """Why ``value`` is not an IANA service name (port names), or ``None``."""
    if len(value) > 15:
        return "must be no more than 15 characters"
    if not _IANA_SVC_NAME.fullmatch(value):
        return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    if "--" in value:
        return "must not contain consecutive hyphens"
    if not _HAS_LETTER.search(value):
        return "must contain at least one letter (a-z)"
    if value[0] == "-" or value[-1] == "-":
        return "must not begin or end with a hyphen"
    return None


def _port_number(value: Any, path: str, problems: Problems, *, zero_ok: bool = False) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and not (1 <= value <= PORT_MAX or (zero_ok and value == 0)):
        problems.append((path, invalid(value, f"must be between 1 and {PORT_MAX}, inclusive")))


def _int_or_port_name(value: Any, path: str, problems: Problems) -> None:
    if isinstance(value, str):
        why = port_name(value)
        if why:
            problems.append((path, invalid(value, why)))
    else:
        _port_number(value, path, problems)


def _protocol(value: Any, path: str, problems: Problems) -> None:
    if value is not None and value not in PROTOCOLS:
        problems.append((path, f"Unsupported value: {show(value)}: supported values: "
                               + ", ".join(f'"{p}"' for p in PROTOCOLS)))


def generate_name(value: str, name_rule: Callable[[str], str | None]) -> str | None:
    """``generateName`` is a prefix: it may end in ``-`` (the random suffix follows)."""
    return name_rule(value[:-1] + "a" if value.endswith("-") else value)


# ---- metadata ----------------------------------------------------------------------------

def metadata_problems(meta: Mapping[str, Any], name_rule: Callable[[str], str | None]) -> Problems:
    """Labels, annotations and ``generateName`` as ``ValidateObjectMeta`` checks them."""
    problems: Problems = []
    labels = meta.get("labels")
    if isinstance(labels, dict):
        for key, value in labels.items():
            why = qualified_name(key)
            if why:
                problems.append(("metadata.labels", invalid(key, why)))
            if isinstance(value, str):
                why = label_value(value)
                if why:
                    problems.append(("metadata.labels", invalid(value, why)))
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        total = 0
        for key, value in annotations.items():
            why = qualified_name(key)
            if why:
                problems.append(("metadata.annotations", invalid(key, why)))
            total += len(key.encode()) + (len(value.encode()) if isinstance(value, str) else 0)
        if total > ANNOTATIONS_MAX_BYTES:
            problems.append(("metadata.annotations", f"Too long: must have at most {ANNOTATIONS_MAX_BYTES} bytes"))
    generate = meta.get("generateName")
    if isinstance(generate, str) and generate:
        why = generate_name(generate, name_rule)
        if why:
            problems.append(("metadata.generateName", invalid(generate, why)))
    finalizers = meta.get("finalizers")
    if isinstance(finalizers, list):
        for i, finalizer in enumerate(finalizers):
            if isinstance(finalizer, str):
                why = qualified_name(finalizer)
                if why:
                    problems.append((f"metadata.finalizers[{i}]", invalid(finalizer, why)))
    return problems


# ---- quantities --------------------------------------------------------------------------

def is_extended_resource(name: str) -> bool:
    """A resource outside the ``kubernetes.io`` namespace (``nvidia.com/gpu``): whole units, requests == limits."""
    return "/" in name and not name.split("/", 1)[0].endswith("kubernetes.io") and not name.startswith("requests.")


def _resource_name(name: str) -> str | None:
    if name in STANDARD_RESOURCES or name.startswith("hugepages-"):
        return None
    if "/" not in name:
        return "must be a standard resource type or fully qualified"
    return qualified_name(name)


def quantity(value: Any) -> tuple[Fraction | None, str | None]:
    """A quantity's value, or why it is not a non-negative, finite Kubernetes quantity."""
    kind = type(value)
    if kind is str:
        return _quantity_text(value)  # the same few texts ("100m", "1Gi") on every pod: parsed once
    if kind is int:
        if 0 <= value <= MAX_QUANTITY:
            return Fraction(value), None
    elif kind is not float:
        return None, "must be a quantity (a string such as \"500m\" or a number)"
    return _quantity(value)


@functools.lru_cache(maxsize=4096)
def _quantity_text(value: str) -> tuple[Fraction | None, str | None]:
    return _quantity(value)


def _quantity(value: str | float) -> tuple[Fraction | None, str | None]:
    try:
        amount = parse_quantity(value)
    except QuantityError as exc:  # out of range (1e5000) says so; anything else gets Kubernetes' words
        return None, QUANTITY_MESSAGE if "not a valid quantity" in str(exc) else str(exc)
    if amount < 0:
        return None, "must be greater than or equal to 0"
    if amount > MAX_QUANTITY:
        return None, f"must be no more than {MAX_QUANTITY}"
    return amount, None


def resource_list(resources: Any, path: str, problems: Problems) -> dict[str, Fraction]:
    """Check a ``{name: quantity}`` map; return the values of the valid entries."""
    values: dict[str, Fraction] = {}
    if not isinstance(resources, dict):
        return values
    for name, value in resources.items():
        where = f"{path}[{name}]"
        why = _resource_name(name)
        if why:
            problems.append((where, invalid(name, why)))
            continue
        amount, why = quantity(value)
        if why or amount is None:
            problems.append((where, invalid(value, why or QUANTITY_MESSAGE)))
            continue
        if is_extended_resource(name) and amount.denominator != 1:
            problems.append((where, invalid(value, "must be an integer")))
            continue
        values[name] = amount
    return values


def _resources(resources: Any, path: str, problems: Problems) -> None:
    if not isinstance(resources, dict):
        return
    limits = resource_list(resources.get("limits"), f"{path}.limits", problems)
    requests = resource_list(resources.get("requests"), f"{path}.requests", problems)
    for name, requested in requests.items():
        limit = limits.get(name)
        raw = resources["requests"][name]
        if is_extended_resource(name):
            if limit is None:
                problems.append((f"{path}.limits", "Required value: Limit must be set for non overcommitable resources"))
            elif requested != limit:
                problems.append((f"{path}.requests", invalid(raw, f"must be equal to {name} limit of {resources['limits'][name]}")))
        elif limit is not None and requested > limit:
            problems.append((f"{path}.requests", invalid(raw, f"must be less than or equal to {name} limit of "
                                                               f"{resources['limits'][name]}")))


# ---- pods --------------------------------------------------------------------------------

def _env_name(value: str) -> str | None:
    if not value:
        return "Required value"
    if "=" in value or not all(" " <= ch <= "~" for ch in value):
        return invalid(value, "a valid environment variable name must consist only of printable ASCII characters "
                              "other than '='")
    return None


def _probe(probe: Any, path: str, problems: Problems) -> None:
    if not isinstance(probe, dict):
        return
    for action in ("httpGet", "tcpSocket", "grpc"):
        handler = probe.get(action)
        if isinstance(handler, dict) and "port" in handler:
            if action == "grpc":
                _port_number(handler["port"], f"{path}.{action}.port", problems)
            else:
                _int_or_port_name(handler["port"], f"{path}.{action}.port", problems)
    for field in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "successThreshold", "failureThreshold"):
        value = probe.get(field)
        if isinstance(value, int) and value < 0:
            problems.append((f"{path}.{field}", invalid(value, "must be greater than or equal to 0")))


def _container(container: dict[str, Any], path: str, problems: Problems, port_names: set[str]) -> None:
    name = container.get("name")
    if isinstance(name, str):
        if not name:
            problems.append((f"{path}.name", "Required value"))
        else:
            why = dns1123_label(name)
            if why:
                problems.append((f"{path}.name", invalid(name, why)))
    ports = container.get("ports")
    if isinstance(ports, list):
        for j, port in enumerate(ports):
            if not isinstance(port, dict):
                continue
            where = f"{path}.ports[{j}]"
            _port_number(port.get("containerPort"), f"{where}.containerPort", problems)
            _port_number(port.get("hostPort"), f"{where}.hostPort", problems, zero_ok=True)
            _protocol(port.get("protocol"), f"{where}.protocol", problems)
            port_name_value = port.get("name")
            if isinstance(port_name_value, str) and port_name_value:
                why = port_name(port_name_value)
                if why:
                    problems.append((f"{where}.name", invalid(port_name_value, why)))
                elif port_name_value in port_names:
                    problems.append((f"{where}.name", f"Duplicate value: {show(port_name_value)}"))
                port_names.add(port_name_value)
    env = container.get("env")
    if isinstance(env, list):
        for j, var in enumerate(env):
            if isinstance(var, dict) and isinstance(var.get("name"), str):
                why = _env_name(var["name"])
                if why:
                    problems.append((f"{path}.env[{j}].name", why))
    _resources(container.get("resources"), f"{path}.resources", problems)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(container.get(probe), f"{path}.{probe}", problems)


def pod_spec_problems(spec: Any, path: str = "spec") -> Problems:
    """What ``ValidatePodSpec`` would say about ``spec`` beyond its types."""
    problems: Problems = []
    if not isinstance(spec, dict):
        return problems
    containers = spec.get("containers")
    if isinstance(containers, list) and not containers:
        problems.append((f"{path}.containers", "Required value"))
    names: set[str] = set()
    port_names: set[str] = set()
    for field in ("initContainers", "containers"):
        items = spec.get(field)
        if not isinstance(items, list):
            continue
        for i, container in enumerate(items):
            if not isinstance(container, dict):
                continue
            where = f"{path}.{field}[{i}]"
            _container(container, where, problems, port_names)
            name = container.get("name")
            if isinstance(name, str) and name:
                if name in names:
                    problems.append((f"{where}.name", f"Duplicate value: {show(name)}"))
                names.add(name)
    volumes = spec.get("volumes")
    if isinstance(volumes, list):
        volume_names: set[str] = set()
        for i, volume in enumerate(volumes):
            name = volume.get("name") if isinstance(volume, dict) else None
            if not isinstance(name, str):
                continue
            if not name:
                why: str | None = "Required value"
            else:
                label_why = dns1123_label(name)
                why = invalid(name, label_why) if label_why else None
            if why:
                problems.append((f"{path}.volumes[{i}].name", why))
            elif name in volume_names:
                problems.append((f"{path}.volumes[{i}].name", f"Duplicate value: {show(name)}"))
            volume_names.add(name)
    resource_list(spec.get("overhead"), f"{path}.overhead", problems)
    for field in ("terminationGracePeriodSeconds", "activeDeadlineSeconds"):
        value = spec.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 2**63 - 1:
            problems.append((f"{path}.{field}", invalid(value, "must be greater than or equal to 0")))
    return problems


def pod_problems(obj: Mapping[str, Any]) -> Problems:
    return pod_spec_problems(obj.get("spec"))


def service_problems(obj: Mapping[str, Any]) -> Problems:
    problems: Problems = []
    spec = obj.get("spec")
    ports = spec.get("ports") if isinstance(spec, dict) else None
    if not isinstance(ports, list):
        return problems
    names: set[str] = set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict):
            continue
        where = f"spec.ports[{i}]"
        _port_number(port.get("port"), f"{where}.port", problems)
        _port_number(port.get("nodePort"), f"{where}.nodePort", problems, zero_ok=True)
        if "targetPort" in port:
            target = port["targetPort"]
            if target != 0:
                _int_or_port_name(target, f"{where}.targetPort", problems)
        _protocol(port.get("protocol"), f"{where}.protocol", problems)
        name = port.get("name")
        if isinstance(name, str) and name:
            why = dns1123_label(name)
            if why:
                problems.append((f"{where}.name", invalid(name, why)))
            elif name in names:
                problems.append((f"{where}.name", f"Duplicate value: {show(name)}"))
            names.add(name)
    return problems


def node_problems(obj: Mapping[str, Any]) -> Problems:
    problems: Problems = []
    status = obj.get("status")
    if isinstance(status, dict):
        resource_list(status.get("capacity"), "status.capacity", problems)
        resource_list(status.get("allocatable"), "status.allocatable", problems)
    return problems
