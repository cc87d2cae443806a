"""gRPC-Web on the HTTP listener: the same servicers as gRPC and Connect, for browsers and any
gRPC-Web client (issue 16 offers the HTTP edge's cost to clients that can use it).

Three clients talk to a real Switchboard and a simulator on loopback: raw aiohttp (the wire
format: message envelopes, the 0x80 trailer envelope, base64 text mode, ``grpc-timeout``),
``buf curl --protocol grpcweb`` (Buf's client, from npm) and connect-es's gRPC-Web transport in
Node. Errors carry the gRPC edge's rich ``google.rpc.Status`` in ``grpc-status-details-bin``.
"""

from __future__ import annotations

import base64
import json
import struct
from urllib.parse import unquote

from google.rpc import error_details_pb2, status_pb2
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import registry_pb2 as rpb

from server.simulator import Behavior, Simulator
from tests.http_support import Door
from tests.integration import test_connect as connect
from tests.integration.test_connect import (
    CONVERSATIONS,
    LAB,
    REASONING,
    REGISTRY,
    TEXT,
    _run,
    _tool,
    envelopes,
    post,
)
from tests.support import API_KEY, ROOT, create_llm, endpoint

WEB = "application/grpc-web+proto"
door, sim = connect.door, connect.sim  # the Connect tests' fixtures: a door, a simulator


def frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def converse(llm_id: str, text: str = "Hi") -> bytes:
    return cpb.ConverseRequest(llm_id=llm_id, messages=[cpb.Message(
        role=cpb.ROLE_USER, parts=[cpb.ContentPart(text=text)])]).SerializeToString()


def trailers(payload: bytes) -> dict[str, str]:
    out = {}
    for line in payload.decode().split("\r\n"):
        if line:
            name, value = line.split(":", 1)
            out[name.strip().lower()] = value.strip()
    return out


def rich_status(trailer: dict[str, str]) -> status_pb2.Status:
    value = trailer["grpc-status-details-bin"]
    return status_pb2.Status.FromString(base64.b64decode(value + "=" * (-len(value) % 4)))


def reason(status: status_pb2.Status) -> str:
    for any_pb in status.details:
        info = error_details_pb2.ErrorInfo()
        if any_pb.Unpack(info):
            return str(info.reason)
    return ""


async def test_converse_streams_envelopes_then_a_trailer_envelope(door: Door, sim: Simulator
                                                                  ) -> None:
    llm = await create_llm(door.grpc, endpoint(sim))
    status, headers, body = await post(door, f"{CONVERSATIONS}/Converse",
                                       frame(converse(llm.id)), WEB)
    assert status == 200 and headers["Content-Type"] == WEB
    frames = envelopes(body)
    assert [f for f, _ in frames[:-1]] == [0] * (len(frames) - 1) and frames[-1][0] == 0x80
    assert trailers(frames[-1][1])["grpc-status"] == "0"
    events = [cpb.ConverseResponse.FromString(p) for _, p in frames[:-1]]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert "".join(e.text.delta for e in events if e.HasField("text")) == TEXT
    assert "".join(e.reasoning.delta for e in events if e.HasField("reasoning")) == REASONING


async def test_text_mode_is_base64_piece_by_piece(door: Door, sim: Simulator) -> None:
    llm = await create_llm(door.grpc, endpoint(sim))
    status, headers, body = await post(door, f"{CONVERSATIONS}/Converse",
                                       base64.b64encode(frame(converse(llm.id))),
                                       "application/grpc-web-text")
    assert status == 200 and headers["Content-Type"] == "application/grpc-web-text"
    # Each written piece is base64 on its own (padding may end any piece): split on padding.
    raw = b""
    rest = body
    while rest:
        cut = len(rest)
        for i in range(4, len(rest) + 1, 4):
            if rest[i - 1:i] == b"=":
                cut = i
                break
        raw += base64.b64decode(rest[:cut])
        rest = rest[cut:]
    frames = envelopes(raw)
    assert frames[-1][0] == 0x80 and trailers(frames[-1][1])["grpc-status"] == "0"
    text = "".join(cpb.ConverseResponse.FromString(p).text.delta for _, p in frames[:-1])
    assert text == TEXT


async def test_errors_are_trailers_with_the_rich_status(door: Door) -> None:
    get = rpb.GetLlmRequest(llm_id="llm_nope").SerializeToString()
    status, _, body = await post(door, f"{REGISTRY}/GetLlm", frame(get), WEB)
    frames = envelopes(body)
    assert status == 200 and len(frames) == 1 and frames[0][0] == 0x80
    trailer = trailers(frames[0][1])
    assert trailer["grpc-status"] == "5" and "llm_nope" in unquote(trailer["grpc-message"])
    assert reason(rich_status(trailer)) == "LLM_NOT_FOUND"

    status, _, body = await post(door, f"{REGISTRY}/ListLlms", frame(b""), WEB,
                                 headers={"Authorization": "Bearer wrong-key"})
    trailer = trailers(envelopes(body)[-1][1])
    assert trailer["grpc-status"] == "16" and reason(rich_status(trailer)) == "API_KEY_INVALID"
    assert b"wrong-key" not in body

    status, _, body = await post(door, f"{REGISTRY}/ListLlms", b"\x00\x00", WEB)
    assert trailers(envelopes(body)[-1][1])["grpc-status"] == "3"  # no whole envelope
    status, _, body = await post(door, f"{REGISTRY}/ListLlms", frame(b""),
                                 "application/grpc-web+xml")
    assert trailers(envelopes(body)[-1][1])["grpc-status"] == "12"
    status, _, body = await post(door, f"{REGISTRY}/ListLlms", frame(b""), WEB,
                                 headers={"grpc-timeout": "soon"})
    trailer = trailers(envelopes(body)[-1][1])
    assert trailer["grpc-status"] == "3" and "grpc-timeout" in unquote(trailer["grpc-message"])


async def test_grpc_timeout_bounds_the_call(door: Door) -> None:
    async with Simulator("openai", Behavior(text="late", ttft_s=30.0)) as slow:
        llm = await create_llm(door.grpc, endpoint(slow))
        status, _, body = await post(door, f"{CONVERSATIONS}/Converse",
                                     frame(converse(llm.id)), WEB,
                                     headers={"grpc-timeout": "300m"})
    trailer = trailers(envelopes(body)[-1][1])
    assert status == 200 and trailer["grpc-status"] == "4"  # DEADLINE_EXCEEDED


async def test_buf_curl_speaks_grpc_web_to_it(door: Door, sim: Simulator) -> None:
    buf = _tool(LAB / "node_modules" / ".bin" / "buf", "buf (clients/lab/node_modules)")

    async def curl(method: str, data: dict[str, object], key: str = API_KEY) -> tuple[int, str,
                                                                                       str]:
        out = await _run(buf, "curl", "--schema", str(ROOT / "protos"), "--protocol", "grpcweb",
                         "--http2-prior-knowledge=false", "-H", f"authorization: Bearer {key}",
                         "-d", json.dumps(data), f"{door.base_url}/{method}")
        return out.returncode, out.stdout, out.stderr

    llm = await create_llm(door.grpc, endpoint(sim), name="curled-web")
    code, out, err = await curl("switchboard.v1.LlmRegistry/ListLlms", {})
    assert code == 0, err
    assert json.loads(out)["llms"][0]["displayName"] == "curled-web"
    code, out, err = await curl("switchboard.v1.Conversations/Converse", {
        "llmId": llm.id, "messages": [{"role": "ROLE_USER", "parts": [{"text": "Hi"}]}]})
    assert code == 0, err
    assert '"finished"' in out and REASONING.split()[0] in out
    code, out, err = await curl("switchboard.v1.LlmRegistry/ListLlms", {}, key="not-a-key")
    error = json.loads(err)  # buf curl prints the error with its details (type + value)
    assert code != 0 and error["code"] == "unauthenticated"
    info = next(d["value"] for d in error["details"] if d["type"] == "google.rpc.ErrorInfo")
    padded = info + "=" * (-len(info) % 4)
    decoded = error_details_pb2.ErrorInfo.FromString(base64.b64decode(padded))
    assert decoded.reason == "API_KEY_INVALID" and "not-a-key" not in err


# connect-es's gRPC-Web transport in Node: test_connect.py::test_connect_es_in_node[grpc-web].
