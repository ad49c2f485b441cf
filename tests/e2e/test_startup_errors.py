"""`corral up` on a damaged data dir says which file and why, in one line, and leaves the file alone.

Each case corrupts one file of a data dir that a real API server created, runs the real
``corral up`` on it, and expects ``cannot start: <path>: <reason>`` on stderr, exit code 1,
no traceback, and the damaged file byte for byte as it was (the user can still recover it).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from corral.apiserver.server import start_server
from tests.conftest import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def corral() -> str:
    local = Path(sys.executable).parent / "corral"
    return str(local) if local.exists() else require_tool("corral")


def overwrite(relative: str, content: bytes) -> Callable[[Path], Path]:
    def corrupt(data: Path) -> Path:
        (data / relative).write_bytes(content)
        return data / relative
    return corrupt


def damaged_row(data: Path) -> Path:
    with sqlite3.connect(data / "store.db") as db:
        db.execute("UPDATE objects SET data = x'7b22ff' WHERE resource = 'namespaces' AND name = 'default'")
    with sqlite3.connect(data / "store.db") as db:  # all of it in store.db itself, none in the -wal file
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return data / "store.db"


def truncated_database(data: Path) -> Path:
    path = data / "store.db"
    path.write_bytes(path.read_bytes()[:5000])
    return path


def foreign_database(data: Path) -> Path:
    path = data / "store.db"
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    return path


def other_key(data: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return overwrite("tls/server.key", key)(data)


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "not a database": (overwrite("store.db", b"this is not a database, just text\n" * 200),
                       "not a usable corral database: file is not a database"),
    "truncated database": (truncated_database, "not a usable corral database"),
    "another program's database": (foreign_database, "a SQLite database, but not corral's (tables: notes)"),
    "a row that is not JSON": (damaged_row, "the stored object namespaces/default is damaged"),
    "tokens not UTF-8": (overwrite("tokens.csv", b"\xff\xfeadmin,admin\n"), "not UTF-8 text (byte 0xff at offset 0)"),
    "TLS key garbage": (overwrite("tls/server.key", b"\x00\x01garbage"), "not an unencrypted PEM private key"),
    "TLS certificate garbage": (overwrite("tls/server.crt", b"-----BEGIN CERTIFICATE-----\nnope\n"),
                                "not a PEM certificate"),
    "TLS key of another certificate": (other_key, "does not match the certificate"),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir as a real API server leaves it (store.db, tokens.csv, tls/, kubeconfig)."""
    data = tmp_path_factory.mktemp("pristine") / "data"

    async def run() -> None:
        server = await start_server(data)
        await server.stop()

    asyncio.run(run())
    return data


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_file_is_named_in_one_line_and_left_as_it_was(case: str, pristine: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(pristine, data)
    corrupt, reason = CASES[case]
    damaged = corrupt(data)
    before = damaged.read_bytes()
    result = subprocess.run([corral(), "up", "--data-dir", str(data), "--port", "0", "--gateway-port", "-1",
                             "--no-agent"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: cannot start: {damaged}: {reason}"), result.stderr
    assert "corral is ready" not in result.stdout
    assert damaged.read_bytes() == before, "the damaged file must be left as it was, for the user to recover"


def test_the_agent_names_a_kubeconfig_it_cannot_read(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = subprocess.run([corral(), "agent", "--kubeconfig", str(kubeconfig), "--data-dir", str(tmp_path / "a")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot start: kubeconfig {kubeconfig}: not UTF-8 text (byte 0x89 at offset 0)" in result.stderr
