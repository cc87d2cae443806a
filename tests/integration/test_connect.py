"""Issue 17: LlmRegistry and Conversations over the Connect protocol on the HTTP listener.

Three clients talk to a real Switchboard and a simulator on loopback: raw aiohttp (the wire
format itself: envelopes, codecs, error JSON, origin checks), ``buf curl`` (Buf's own Connect
client, from npm) and connect-es in Node (the client library the Lab uses, bundled with
esbuild). The servicers and the interceptor are the gRPC edge's, so the errors are the same
rich ``google.rpc.Status`` details.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google.rpc import error_details_pb2
from switchboard.v1 import registry_pb2 as rpb

from server.simulator import Behavior, Simulator
from tests.http_support import Door, running_door
from tests.support import API_KEY, ROOT, create_llm, endpoint

REGISTRY = "/switchboard.v1.LlmRegistry"
CONVERSATIONS = "/switchboard.v1.Conversations"
AUTH = {"Authorization": f"Bearer {API_KEY}", "Connect-Protocol-Version": "1"}
LAB = ROOT / "clients" / "lab"
TEXT = "Connect carries the same stream."
REASONING = "First think, then answer."


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[Door]:
    async with running_door(tmp_path) as d:
        yield d


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator("openai", Behavior(text=TEXT, reasoning=REASONING)) as s:
        yield s


async def post(door: Door, path: str, body: bytes, content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http, http.post(
            door.base_url + path, data=body,
            headers={**AUTH, "Content-Type": content_type, **(headers or {})}) as r:
        return r.status, dict(r.headers), await r.read()


def envelopes(body: bytes) -> list[tuple[int, bytes]]:
    out = []
    while body:
        flags, size = struct.unpack_from(">BI", body)
        out.append((flags, body[5:5 + size]))
        body = body[5 + size:]
    return out


def detail(error: dict[str, Any], type_name: str) -> bytes:
    found = [d for d in error.get("details", ()) if d["type"] == type_name]
    assert len(found) == 1, error
    value: str = found[0]["value"]
    return base64.b64decode(value + "=" * (-len(value) % 4))


def error_info(error: dict[str, Any]) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo.FromString(detail(error, "google.rpc.ErrorInfo"))


async def test_unary_json_and_proto_reach_the_same_registry(door: Door, sim: Simulator) -> None:
    llm = await create_llm(door.grpc, endpoint(sim, key="sk-connect-secret-0001"), name="c1")
    status, headers, body = await post(door, f"{REGISTRY}/GetLlm",
                                       json.dumps({"llmId": llm.id}).encode())
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    got = json.loads(body)["llm"]
    assert got["id"] == llm.id and got["displayName"] == "c1"
    assert got["endpoints"][0]["apiKeyHint"] == "...0001" and b"sk-connect" not in body
    status, headers, body = await post(
        door, f"{REGISTRY}/ListLlms", rpb.ListLlmsRequest(page_size=10).SerializeToString(),
        "application/proto")
    assert status == 200 and headers["Content-Type"] == "application/proto"
    assert [x.id for x in rpb.ListLlmsResponse.FromString(body).llms] == [llm.id]


async def test_errors_are_connect_json_with_the_grpc_edge_details(door: Door) -> None:
    status, _, body = await post(door, f"{REGISTRY}/GetLlm", b'{"llmId": "llm_nope"}')
    error = json.loads(body)
    assert status == 404 and error["code"] == "not_found"
    assert error_info(error).reason == "LLM_NOT_FOUND"
    request_id = error_details_pb2.RequestInfo.FromString(
        detail(error, "google.rpc.RequestInfo")).request_id
    assert len(request_id) == 16
    status, _, body = await post(door, f"{REGISTRY}/CreateLlm",
                                 b'{"llm": {"displayName": "x", "endpoints": []}}')
    error = json.loads(body)
    assert status == 400 and error["code"] == "invalid_argument"
    violations = error_details_pb2.BadRequest.FromString(
        detail(error, "google.rpc.BadRequest")).field_violations
    assert any(v.field.startswith("llm.endpoints") for v in violations)
    debug = next(d for d in error["details"] if d["type"] == "google.rpc.BadRequest")["debug"]
    assert debug["fieldViolations"]
    status, _, body = await post(door, f"{REGISTRY}/ListLlms", b"{}",
                                 headers={"Authorization": "Bearer wrong-key"})
    error = json.loads(body)
    assert status == 401 and error["code"] == "unauthenticated"
    assert error_info(error).reason == "API_KEY_INVALID" and "wrong-key" not in body.decode()
    status, _, body = await post(door, f"{REGISTRY}/ListLlms", b"{not json")
    assert status == 400 and error_info(json.loads(body)).reason == "MALFORMED_REQUEST"
    status, _, body = await post(door, f"{REGISTRY}/ListLlms", b"{}", "text/plain")
    assert status == 501 and json.loads(body)["code"] == "unimplemented"


async def test_server_streaming_converse_is_enveloped_and_ends_with_end_stream(
        door: Door, sim: Simulator) -> None:
    llm = await create_llm(door.grpc, endpoint(sim))
    request = {"llmId": llm.id, "messages": [{"role": "ROLE_USER", "parts": [{"text": "Hi"}]}]}
    payload = json.dumps(request).encode()
    status, headers, body = await post(door, f"{CONVERSATIONS}/Converse",
                                       struct.pack(">BI", 0, len(payload)) + payload,
                                       "application/connect+json")
    assert status == 200 and headers["Content-Type"] == "application/connect+json"
    frames = envelopes(body)
    assert [f for f, _ in frames[:-1]] == [0] * (len(frames) - 1) and frames[-1][0] == 2
    assert json.loads(frames[-1][1]) == {}
    events = [json.loads(p) for _, p in frames[:-1]]
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "started" and kinds[1] == "route" and kinds[-1] == "finished"
    assert "".join(e["reasoning"]["delta"] for e in events if "reasoning" in e) == REASONING
    assert "".join(e["text"]["delta"] for e in events if "text" in e) == TEXT


async def test_a_streaming_error_is_in_the_end_stream_message(door: Door) -> None:
    payload = json.dumps({"llmId": "llm_missing", "messages": [
        {"role": "ROLE_USER", "parts": [{"text": "x"}]}]}).encode()
    status, _, body = await post(door, f"{CONVERSATIONS}/Converse",
                                 struct.pack(">BI", 0, len(payload)) + payload,
                                 "application/connect+json")
    frames = envelopes(body)
    assert status == 200 and len(frames) == 1 and frames[0][0] == 2
    error = json.loads(frames[0][1])["error"]
    assert error["code"] == "not_found" and error_info(error).reason == "LLM_NOT_FOUND"


async def test_requests_from_another_origin_are_refused(door: Door) -> None:
    for headers in ({"Origin": "http://127.0.0.2:8000"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "null"}):
        status, reply, body = await post(door, f"{REGISTRY}/ListLlms", b"{}", headers=headers)
        assert status == 403 and json.loads(body)["code"] == "permission_denied"
        assert "Access-Control-Allow-Origin" not in reply
    status, _, _ = await post(door, f"{REGISTRY}/ListLlms", b"{}",
                              headers={"Origin": door.base_url, "Sec-Fetch-Site": "same-origin"})
    assert status == 200
    async with aiohttp.ClientSession() as http, http.options(
            door.base_url + f"{REGISTRY}/ListLlms",
            headers={"Origin": "http://127.0.0.2:8000",
                     "Access-Control-Request-Method": "POST"}) as r:
        assert r.status >= 400 and "Access-Control-Allow-Origin" not in r.headers


def _tool(path: Path, what: str) -> str:
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing (required in CI): run make lab-deps")
        pytest.skip(f"{what} is missing: run make lab-deps")
    return str(path)


async def _run(*args: str, cwd: Path = LAB) -> subprocess.CompletedProcess[str]:
    """A program run off the event loop, which serves the server it talks to."""
    return await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True,
                                   timeout=60, check=False, cwd=cwd)


async def _buf_curl(door: Door, method: str, data: dict[str, Any], key: str = API_KEY
                    ) -> subprocess.CompletedProcess[str]:
    buf = _tool(LAB / "node_modules" / ".bin" / "buf", "buf (clients/lab/node_modules)")
    return await _run(
        buf, "curl", "--schema", str(ROOT / "protos"), "--protocol", "connect",
         "--http2-prior-knowledge=false", "-H", f"authorization: Bearer {key}",
         "-d", json.dumps(data), f"{door.base_url}/{method}")


async def test_buf_curl_speaks_to_it(door: Door, sim: Simulator) -> None:
    llm = await create_llm(door.grpc, endpoint(sim), name="curled")
    out = await _buf_curl(door, "switchboard.v1.LlmRegistry/ListLlms", {})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["llms"][0]["displayName"] == "curled"
    out = await _buf_curl(door, "switchboard.v1.Conversations/Converse", {
        "llmId": llm.id, "messages": [{"role": "ROLE_USER", "parts": [{"text": "Hi"}]}]})
    assert out.returncode == 0, out.stderr
    assert '"finished"' in out.stdout and REASONING.split()[0] in out.stdout
    out = await _buf_curl(door, "switchboard.v1.LlmRegistry/ListLlms", {}, key="not-a-key")
    assert out.returncode != 0 and "unauthenticated" in out.stderr
    assert "API_KEY_INVALID" in out.stderr


@pytest.mark.parametrize("protocol", ["connect", "grpc-web"])
async def test_connect_es_in_node(door: Door, sim: Simulator, tmp_path: Path,
                                  protocol: str) -> None:
    """connect-es's Connect and gRPC-Web transports, as a Node service would use them."""
    node = shutil.which("node")
    esbuild = _tool(LAB / "node_modules" / ".bin" / "esbuild", "esbuild (clients/lab/node_modules)")
    if node is None:
        _tool(Path("/nonexistent/node"), "node")
    assert node is not None
    bundle = tmp_path / "connect_node.mjs"
    built = await _run(esbuild, str(LAB / "test" / "connect_node.ts"), "--bundle",
                       "--platform=node", "--format=esm", f"--outfile={bundle}",
                       "--log-level=warning")
    assert built.returncode == 0, built.stderr
    llm = await create_llm(door.grpc, endpoint(sim), name="from-node")
    out = await _run(node, str(bundle), door.base_url, API_KEY, llm.id, protocol)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["protocol"] == protocol and result["names"] == ["from-node"]
    assert result["reasoning"] == REASONING and result["text"] == TEXT
    assert result["kinds"][0] == "started" and result["kinds"][-1] == "finished"
    assert result["error"] == {"code": "NotFound", "reason": "LLM_NOT_FOUND"}
    assert result["badKey"] == "Unauthenticated"



async def test_the_labs_connect_es_stubs_match_the_protos() -> None:
    _tool(LAB / "node_modules" / ".bin" / "buf", "buf (clients/lab/node_modules)")
    node = shutil.which("node")
    assert node is not None
    out = await _run(node, "scripts/generate.mjs", "--check", "src/gen")
    assert out.returncode == 0, out.stderr
