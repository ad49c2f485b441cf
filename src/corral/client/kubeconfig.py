"""Reading a kubeconfig: the server URL, the bearer token and the TLS settings.

Only what corral and ordinary clusters use is supported: token and client-certificate
users, ``certificate-authority(-data)`` and ``insecure-skip-tls-verify``. An in-cluster
service account (``KUBERNETES_SERVICE_HOST`` and the mounted token) works as well.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from corral.util.startup import describe_decode_error

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeconfigError(ValueError):
    """A kubeconfig that cannot be used, with the reason."""


@dataclass(frozen=True)
class Connection:
    """Everything needed to reach an API server."""

    server: str
    token: str | None = None
    ssl_context: ssl.SSLContext | None = None
    namespace: str = "default"


def default_kubeconfig_path() -> Path:
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first) if first else Path.home() / ".kube" / "config"


def _named(entries: list[dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    for entry in entries or []:
        if entry.get("name") == name:
            return dict(entry.get(what) or {})
    raise KubeconfigError(f"kubeconfig has no {what} named {name!r}")


def _write_temp(data: str) -> str:
    with tempfile.NamedTemporaryFile("wb", delete=False, prefix="corral-kubeconfig-") as handle:
        handle.write(base64.b64decode(data))
    return handle.name


def load_kubeconfig(path: str | Path | None = None, context: str | None = None) -> Connection:
    """Resolve the current (or named) context of a kubeconfig file into a :class:`Connection`."""
    config_path = Path(path) if path else default_kubeconfig_path()
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise KubeconfigError(f"cannot read kubeconfig {config_path}: {error.strerror}") from None
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        reason = describe_decode_error(error) if isinstance(error, UnicodeDecodeError) else "not valid YAML"
        raise KubeconfigError(f"kubeconfig {config_path}: {reason}") from None
    if not isinstance(config, dict):
        raise KubeconfigError(f"kubeconfig {config_path}: not a kubeconfig (a {type(config).__name__}, not a mapping)")
    context_name = context or config.get("current-context")
    if not context_name:
        raise KubeconfigError(f"kubeconfig {config_path} has no current-context")
    ctx = _named(config.get("contexts", []), context_name, "context")
    cluster = _named(config.get("clusters", []), ctx.get("cluster", ""), "cluster")
    user = _named(config.get("users", []), ctx.get("user", ""), "user") if ctx.get("user") else {}
    server = str(cluster.get("server") or "")
    if not server:
        raise KubeconfigError(f"cluster {ctx.get('cluster')!r} in {config_path} has no server")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    try:
        ssl_context = _tls_context(server, cluster, user)
    except (ValueError, ssl.SSLError) as error:  # base64, PEM or key errors in the file's TLS settings
        raise KubeconfigError(f"kubeconfig {config_path}: unusable TLS settings ({error})") from None
    return Connection(server=server.rstrip("/"), token=token, ssl_context=ssl_context,
                      namespace=str(ctx.get("namespace") or "default"))


def _tls_context(server: str, cluster: dict[str, Any], user: dict[str, Any]) -> ssl.SSLContext | None:
    """The client TLS context a kubeconfig's cluster and user describe (None for plain HTTP)."""
    if not server.startswith("https://"):
        return None
    ssl_context = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        ssl_context.check_hostname = False
        ssl_context.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        ssl_context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    elif cluster.get("certificate-authority"):
        ssl_context.load_verify_locations(cafile=cluster["certificate-authority"])
    cert = user.get("client-certificate") or (
        _write_temp(user["client-certificate-data"]) if user.get("client-certificate-data") else None
    )
    key = user.get("client-key") or (_write_temp(user["client-key-data"]) if user.get("client-key-data") else None)
    if cert and key:
        ssl_context.load_cert_chain(cert, key)
    return ssl_context


def in_cluster_connection() -> Connection | None:
    """The pod's service-account connection, when running inside a Kubernetes pod."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    token_file = SERVICE_ACCOUNT_DIR / "token"
    if not host or not port or not token_file.exists():
        return None
    ssl_context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
    namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.exists() else "default"
    return Connection(f"https://{host}:{port}", token_file.read_text().strip(), ssl_context, namespace)
