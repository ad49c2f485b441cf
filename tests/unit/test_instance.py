"""What one `corral up` claims on a machine: its data dir and its ports; and files it cannot use."""

from __future__ import annotations

import socket
import sqlite3
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from corral.apiserver.auth import TokenFile
from corral.apiserver.tls import ensure_self_signed, serving_context
from corral.cli.instance import choose_port, claim_data_dir
from corral.client import KubeconfigError, load_kubeconfig
from corral.store import Store
from corral.util.ports import PortInUseError, next_free_port, port_is_free
from corral.util.startup import StartupError


@contextmanager
def listening() -> Iterator[int]:
    """A real listener on a free loopback port (what another corral's server is)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_with_a_listener_is_taken_and_the_next_free_one_is_chosen(capsys: pytest.CaptureFixture[str]) -> None:
    with listening() as taken:
        assert not port_is_free("127.0.0.1", taken)
        chosen = choose_port("127.0.0.1", taken, explicit=False, option="--port", what="API server")
        assert chosen != taken and chosen == next_free_port("127.0.0.1", taken + 1) and chosen > taken
        assert f"API server port {taken} is in use" in capsys.readouterr().err
        with pytest.raises(PortInUseError, match=rf"^127\.0\.0\.1:{taken}: already in use .*--port"):
            choose_port("127.0.0.1", taken, explicit=True, option="--port", what="API server")
    assert port_is_free("127.0.0.1", taken)
    assert choose_port("127.0.0.1", taken, explicit=True, option="--port", what="API server") == taken
    assert choose_port("127.0.0.1", 0, explicit=True, option="--port", what="API server") == 0


def test_one_corral_per_data_dir(tmp_path: Path) -> None:
    first = claim_data_dir(tmp_path / "data")
    with pytest.raises(StartupError, match="in use by another corral"):
        claim_data_dir(tmp_path / "data")
    first.release()
    claim_data_dir(tmp_path / "data").release()


@pytest.mark.parametrize(("content", "reason"), [
    (b"not a database at all\n" * 100, "not a usable corral database: file is not a database"),
    (b"", None),  # an empty file is an empty database
])
async def test_the_store_refuses_a_file_that_is_not_its_database_and_leaves_it(
        tmp_path: Path, content: bytes, reason: str | None) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(content)
    store = Store(path)
    if reason is None:
        await store.open()
        await store.close()
        return
    with pytest.raises(StartupError, match=reason) as caught:
        await store.open()
    assert caught.value.path == path
    assert path.read_bytes() == content


def test_tokens_that_are_not_utf8_are_named(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_bytes(b"abc,admin,admin\n\xc3\x28,bob,bob\n")
    with pytest.raises(StartupError, match=r"tokens\.csv: not UTF-8 text \(byte 0xc3 at offset 16\)"):
        TokenFile(path).ensure_admin()
    assert path.read_bytes() == b"abc,admin,admin\n\xc3\x28,bob,bob\n"


def test_a_key_that_does_not_match_its_certificate_is_named(tmp_path: Path) -> None:
    cert, _ = ensure_self_signed(tmp_path / "one")
    _, other_key = ensure_self_signed(tmp_path / "two")
    assert isinstance(serving_context(cert, tmp_path / "one" / "server.key"), ssl.SSLContext)
    with pytest.raises(StartupError, match="does not match the certificate") as caught:
        serving_context(cert, other_key)
    assert caught.value.path == other_key


@pytest.mark.parametrize(("content", "reason"), [
    (b"\xff\xfe", "not UTF-8 text"),
    (b"clusters: [unclosed", "not valid YAML"),
    (b"just a string", "not a kubeconfig"),
    (b"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
     b"clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1', certificate-authority-data: '!!'}}]\n",
     "unusable TLS settings"),
])
def test_a_kubeconfig_that_cannot_be_read_is_named(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_bytes(content)
    with pytest.raises(KubeconfigError, match=reason):
        load_kubeconfig(path)


async def test_explicit_ports_in_use_fail_before_the_data_dir_is_touched(tmp_path: Path) -> None:
    from corral.cli.up import start_corral

    with listening() as taken:
        with pytest.raises(PortInUseError, match="--port"):
            await start_corral(tmp_path / "data", port=taken, port_fixed=True)
        with pytest.raises(PortInUseError, match="--gateway-port"):
            await start_corral(tmp_path / "data", port=0, gateway_port=taken, gateway_port_fixed=True)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("damage", ["data = x'7b2261223a'", "data = CAST('[1, 2]' AS BLOB)", "rv = 'seven'"])
async def test_a_damaged_row_is_named(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "store.db"
    store = Store(path)
    await store.open()
    for name in ("a", "b", "c"):
        await store.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": name, "namespace": "default"}}).wait()
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE objects SET {damage} WHERE name = 'b'")
    reopened = Store(path)
    with pytest.raises(StartupError, match=r"configmaps/default/b is damaged"):
        await reopened.open()
    assert reopened.count() == 0, "nothing half-loaded"
