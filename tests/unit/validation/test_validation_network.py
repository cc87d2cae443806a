"""network.dns, network.connect and network.tls against loopback servers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.validation import catalog
from server.validation.network import Target, connect, handshake, resolve
from server.validation.report import CheckStatus


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def _serve(context: ssl.SSLContext | None) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            await reader.read(100)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def tls_port(tmp_path: Path) -> AsyncIterator[int]:
    server, port = await _serve(self_signed(tmp_path))
    async with server:
        yield port


@pytest.fixture
async def plain_port() -> AsyncIterator[int]:
    server, port = await _serve(None)
    async with server:
        yield port


async def test_an_unresolvable_host_fails_dns_with_a_hint() -> None:
    verdict, addresses = await resolve(Target.of("https://no-such-host.invalid/v1"), 5.0)
    assert verdict.check == catalog.DNS and verdict.status is CheckStatus.FAIL
    assert "does not resolve" in verdict.observed and addresses == []
    assert verdict.hint.startswith("host name does not resolve")


async def test_an_ip_address_needs_no_lookup() -> None:
    verdict, addresses = await resolve(Target.of("http://127.0.0.1:8000/v1"), 1.0)
    assert verdict.status is CheckStatus.PASS and addresses == [("127.0.0.1", 8000)]


async def test_localhost_resolves() -> None:
    verdict, addresses = await resolve(Target.of("http://localhost:8000/v1"), 5.0)
    assert verdict.status is CheckStatus.PASS and addresses


async def test_a_closed_port_fails_connect_with_a_port_hint() -> None:
    with socket.socket() as sock:  # bound, never listening, held: refused, nobody else's
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        target = Target.of(f"http://127.0.0.1:{port}/v1")
        verdict = await connect(target, [("127.0.0.1", port)], 2.0)
    assert verdict.check == catalog.CONNECT and verdict.status is CheckStatus.FAIL
    assert "refused" in verdict.observed and f"port {port}" in verdict.hint


async def test_an_open_port_connects(plain_port: int) -> None:
    target = Target.of(f"http://127.0.0.1:{plain_port}")
    verdict = await connect(target, [("127.0.0.1", plain_port)], 2.0)
    assert verdict.status is CheckStatus.PASS


async def test_a_self_signed_certificate_fails_tls(tls_port: int) -> None:
    target = Target.of(f"https://127.0.0.1:{tls_port}/v1")
    verdict = await handshake(target, [("127.0.0.1", tls_port)], 5.0)
    assert verdict.check == catalog.TLS and verdict.status is CheckStatus.FAIL
    assert "self-signed" in verdict.observed and "public" in verdict.hint


async def test_https_to_a_plain_port_says_use_http(plain_port: int) -> None:
    target = Target.of(f"https://127.0.0.1:{plain_port}/v1")
    verdict = await handshake(target, [("127.0.0.1", plain_port)], 5.0)
    assert verdict.status is CheckStatus.FAIL
    assert "http://" in verdict.hint or "HTTPS" in verdict.hint


async def test_plain_http_skips_tls() -> None:
    target = Target.of("http://127.0.0.1:8000/v1")
    verdict = await handshake(target, [("127.0.0.1", 8000)], 1.0)
    assert verdict.status is CheckStatus.SKIPPED and "http://" in verdict.observed
