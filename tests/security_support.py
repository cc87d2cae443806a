"""Helpers for the security tests (vault, tenancy, SSRF, TLS): status details, fake DNS, CLI."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from aiohttp.abc import AbstractResolver, ResolveResult
from google.rpc import error_details_pb2
from grpc_status import rpc_status

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class StatusDetails:
    """What a failed call told the caller, decoded from ``grpc-status-details-bin``."""

    code: grpc.StatusCode
    message: str
    info: error_details_pb2.ErrorInfo
    violations: dict[str, str] = field(default_factory=dict)  # field -> description
    raw: bytes = b""  # every trailing metadata value, concatenated

    def text(self) -> str:
        """Everything the caller received, as text (for "contains no secret" checks)."""
        return f"{self.message}\n{self.raw.decode('utf-8', 'replace')}"


def status_of(exc: grpc.aio.AioRpcError) -> StatusDetails:
    status = rpc_status.from_call(exc)
    assert status is not None, "no google.rpc.Status in the trailers"
    info = error_details_pb2.ErrorInfo()
    infos = 0
    violations: dict[str, str] = {}
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            d.Unpack(info)
            infos += 1
        elif d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            d.Unpack(br)
            violations.update({v.field: v.description for v in br.field_violations})
    assert infos == 1, "exactly one ErrorInfo"
    raw = b"".join(
        v if isinstance(v, bytes) else str(v).encode()
        for _, v in (exc.trailing_metadata() or ())
    )
    return StatusDetails(exc.code(), exc.details() or "", info, violations, raw)


class FakeDns(AbstractResolver):
    """Upstream DNS that a test controls: ``table[host]`` is the address it resolves to now."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        address = self.table[host]
        fam = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [ResolveResult(hostname=host, host=address, port=port, family=fam, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        pass


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


async def run_cli(*args: str, env: dict[str, str]) -> CliResult:
    """Runs ``switchboard ARGS`` in a separate process with only ``env`` as its settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    path = os.pathsep.join(str(ROOT / p) for p in (".", "generated", "clients/python"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard_client.cli", *args,
        env={**base, "PYTHONPATH": path, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())
