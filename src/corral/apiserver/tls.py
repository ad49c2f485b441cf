"""A self-signed serving certificate for the embedded API server.

``kubectl`` only sends a bearer token over TLS, so ``corral up`` serves HTTPS by
default: unless ``--tls-cert/--tls-key`` are given it creates (once, then reuses)
``DATA/tls/server.crt`` and ``server.key`` — an ECDSA P-256 certificate for
``127.0.0.1``, ``::1``, ``localhost`` and the listen host, which is its own CA — and
puts it in the kubeconfig as ``certificate-authority-data``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from corral.util.startup import StartupError


def ensure_self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """``(cert, key)`` paths, creating a certificate valid for ten years when absent."""
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corral-apiserver")])
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.IPAddress(ipaddress.ip_address("::1"))]
    if host not in ("127.0.0.1", "::1", "localhost", "", "0.0.0.0", "::"):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def serving_context(cert: Path, key: Path | None) -> ssl.SSLContext:
    """A server TLS context for ``cert``/``key``; :class:`StartupError` names the file that is unusable."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as error:
        raise StartupError(*_diagnose(cert, key or cert, error)) from None
    return context


def _diagnose(cert: Path, key: Path, error: ssl.SSLError) -> tuple[Path, str]:
    """Which of ``cert``/``key`` made OpenSSL fail (its own message does not say)."""
    try:
        x509.load_pem_x509_certificate(cert.read_bytes())
    except ValueError:
        return cert, "not a PEM certificate"
    try:
        serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (ValueError, TypeError):
        return key, "not an unencrypted PEM private key"
    return key, f"does not match the certificate {cert} ({error.reason or error})"
