"""The gRPC port can serve TLS (``tls_cert_file`` + ``tls_key_file``).

What is promised: with a certificate configured, a client that trusts it talks to the server
over TLS (caller key in the encrypted metadata), and plaintext clients or clients that do not
trust the certificate are refused.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from switchboard_client import AsyncClient

from server.simulator import Behavior, Simulator
from tests.support import API_KEY, create_llm, endpoint, running, settings


def self_signed(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A certificate for localhost and 127.0.0.1 and its key; returns (cert, key, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file, cert_pem


async def test_tls_serves_trusting_clients_and_refuses_others(tmp_path: Path) -> None:
    cert_file, key_file, cert_pem = self_signed(tmp_path)
    s = settings(tmp_path, tls_cert_file=str(cert_file), tls_key_file=str(key_file))
    async with Simulator("openai", Behavior(text="over tls")) as sim, running(s) as app:
        target = f"127.0.0.1:{app.port}"
        trusted = grpc.ssl_channel_credentials(root_certificates=cert_pem)
        async with AsyncClient(target, API_KEY, credentials=trusted) as client:
            llm = await create_llm(client, endpoint(sim))
            assert (await client.reply("hi", llm_id=llm.id)).text == "over tls"
            assert [x.id async for x in client.list_llms()] == [llm.id]
        async with grpc.aio.secure_channel(f"localhost:{app.port}", trusted) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

        async with AsyncClient(target, API_KEY) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await plaintext.get_llm(llm.id)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        untrusting = grpc.ssl_channel_credentials()  # system roots: our cert is unknown
        async with AsyncClient(target, API_KEY, credentials=untrusting) as stranger:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stranger.list_llms().__anext__()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
