"""Canary keys and secret headers through every flow, against an upstream that echoes them.

The malicious upstream echoes every request header, the query string and the body in its error
bodies, its response headers and SSE error events, whole and percent-encoded. Every byte the
caller or an operator can reach is collected: gRPC responses, trailers and error details,
ValidateLlm events, HTTP front door responses and headers, the metrics listener, the logs at
debug level in JSON and in console format, and the SQLite files. No canary may appear in any,
whole or as a 12-character piece (the 4-character hint is allowed).
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import aiohttp
import grpc
import pytest
import structlog
from aiohttp import web
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient

from server import logs
from server.app import Switchboard
from server.vault.redact import KnownSecrets, Redactor
from tests.security.corpus import canary, fragments
from tests.support import API_KEY, settings

KEY = canary("azure")  # no recognisable shape
KEY2 = canary("openai-project")
HEADER = "hdr-" + canary("azure")
CANARIES = (KEY, KEY2, HEADER)


def echo_everything() -> web.Application:
    def dump(request: web.Request, body: bytes) -> str:
        headers = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        return f"headers {headers} query {request.query_string} body {body[:200]!r} " \
               f"encoded {quote(headers, safe='')}"

    async def fail(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        said = dump(request, body)
        echo = {"X-Echo": request.headers.get("X-Secret", "") + request.headers.get(
            "Authorization", "")}
        if b'"stream": true' in body or b'"stream":true' in body:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **echo})
            await resp.prepare(request)
            await resp.write(f"data: {json.dumps({'error': {'message': said}})}\n\n".encode())
            await resp.write_eof()
            return resp
        return web.json_response({"error": {"message": said, "type": "server_error"}},
                                 status=500, headers=echo)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fail)
    return app


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    runner = web.AppRunner(echo_everything())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


@contextmanager
def captured_logs(known: KnownSecrets, fmt: str) -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    out = io.StringIO()
    logs.configure("debug", fmt, Redactor(known), stream=out)
    try:
        yield out
    finally:
        structlog.configure(**saved)


def assert_clean(where: str, data: bytes | str) -> None:
    raw = data if isinstance(data, bytes) else data.encode()
    for secret in CANARIES:
        for frag in fragments(secret):
            assert frag.encode() not in raw, f"a canary leaked into {where}"
            assert quote(frag, safe="").encode() not in raw, f"encoded canary in {where}"


def database_files(where: Path) -> list[tuple[str, bytes]]:
    return [(f"database {p.name}", p.read_bytes()) for p in sorted(where.glob("switchboard.db*"))]


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def failure(exc: grpc.aio.AioRpcError) -> str:
    trailers = b"".join(v if isinstance(v, bytes) else str(v).encode()
                        for _, v in (exc.trailing_metadata() or ()))
    return f"{exc.code()} {exc.details()} {exc.debug_error_string()} {trailers!r}"


@pytest.mark.parametrize("fmt", ["json", "console"])
async def test_canaries_never_leak_anywhere(tmp_path: Path, echo_url: str, fmt: str) -> None:
    known = KnownSecrets()
    seen: list[tuple[str, bytes | str]] = []
    with captured_logs(known, fmt) as log_out:
        app = Switchboard(settings(tmp_path, max_attempts=2), known_secrets=known,
                          http_sock=bound_socket(), metrics_sock=bound_socket())
        await app.start()
        try:
            async with AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
                eps = [lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url=echo_url, model="m",
                                    api_key=key, extra_headers=[
                                        lpb.Header(name="X-Secret", value=HEADER, secret=True)])
                       for key in (KEY, KEY2)]
                # Create with validation: the report quotes the echoing upstream.
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await client.create_llm(lpb.Llm(display_name="echo", endpoints=eps))
                seen.append(("CreateLlm with validation", failure(err.value)))
                llm = (await client.create_llm(lpb.Llm(display_name="echo", endpoints=eps),
                                               skip_validation=True)).llm
                seen.append(("CreateLlm", llm.SerializeToString()))
                seen.append(("GetLlm", (await client.get_llm(llm.id)).SerializeToString()))
                seen.extend([("ListLlms", x.SerializeToString())
                             async for x in client.list_llms()])
                async for event in client.validate_llm(llm.id):
                    seen.append(("ValidateLlm", event.SerializeToString()))
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    async for turn_event in client.converse("hi", llm_id=llm.id):
                        seen.append(("Converse event", repr(turn_event)))
                seen.append(("Converse", failure(err.value)))
                moved = lpb.Llm()
                moved.CopyFrom(llm)
                moved.endpoints[0].base_url = echo_url + "/other"
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await client.update_llm(moved, ["endpoints"], validate_only=True)
                seen.append(("UpdateLlm moved", failure(err.value)))
            async with aiohttp.ClientSession() as http:
                auth = {"Authorization": f"Bearer {API_KEY}"}
                for stream in (False, True):
                    async with http.post(f"http://127.0.0.1:{app.http_port}/v1/chat/completions",
                                         headers=auth, json={
                                             "model": llm.id, "stream": stream,
                                             "messages": [{"role": "user", "content": "hi"}]}
                                         ) as r:
                        seen.append(("HTTP", f"{dict(r.headers)} {await r.read()!r}"))
                async with http.get(f"http://127.0.0.1:{app.metrics_port}/metrics") as r:
                    seen.append(("metrics", await r.read()))
        finally:
            await app.stop(grace_s=1.0)
    assert log_out.getvalue().count("\n") > 10
    seen.append((f"logs ({fmt})", log_out.getvalue()))
    seen.extend(database_files(tmp_path))
    for where, data in seen:
        assert_clean(where, data)
