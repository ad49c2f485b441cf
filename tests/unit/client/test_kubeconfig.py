from pathlib import Path

import pytest
import yaml

from corral.client import KubeconfigError, load_kubeconfig


def write(path: Path, config: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def config(server: str = "http://127.0.0.1:6443", token: str = "abc") -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "corral",
        "clusters": [{"name": "corral", "cluster": {"server": server}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "corral", "context": {"cluster": "corral", "user": "admin", "namespace": "team-a"}}],
    }


def test_current_context_resolves_server_token_and_namespace(tmp_path: Path) -> None:
    connection = load_kubeconfig(write(tmp_path / "kubeconfig", config()))
    assert connection.server == "http://127.0.0.1:6443"
    assert connection.token == "abc"
    assert connection.namespace == "team-a"
    assert connection.ssl_context is None


def test_https_with_insecure_skip_verify_builds_a_context(tmp_path: Path) -> None:
    data = config(server="https://127.0.0.1:6443/")
    data["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True  # type: ignore[index]
    connection = load_kubeconfig(write(tmp_path / "kubeconfig", data))
    assert connection.server == "https://127.0.0.1:6443"
    assert connection.ssl_context is not None


def test_missing_context_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "kubeconfig", config())
    with pytest.raises(KubeconfigError, match="no context named 'other'"):
        load_kubeconfig(path, context="other")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        load_kubeconfig(tmp_path / "nope")
