"""Secret extra headers go through the vault like ``api_key``, attacked over the real port.

Promised: a header registered with ``secret = true`` is stored sealed (bound to its account,
LLM, endpoint and header name), is sent upstream in full, and is returned by CreateLlm, GetLlm,
ListLlms and UpdateLlm only as a four-character hint; an update that leaves its value empty
keeps it; a header stored in plaintext by an older version is sealed at startup when its name
says it carries a credential; header names and values with CR, LF or NUL are refused.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from pathlib import Path

import grpc
import pytest
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient

from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.security_support import status_of
from tests.support import API_KEY, create_llm, endpoint, running, settings

CANARY = "hdr-canary-" + secrets.token_hex(16)


def db_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("switchboard.db*")))


def headers_of(llm: lpb.Llm) -> dict[str, lpb.Header]:
    return {h.name: h for h in llm.endpoints[0].extra_headers}


async def test_secret_header_is_sealed_sent_and_only_hinted(
        server: Switchboard, client: AsyncClient, tmp_path: Path) -> None:
    async with Simulator("openai", Behavior(text="ok")) as sim:
        ep = endpoint(sim, extra_headers=[lpb.Header(name="X-Api-Key", value=CANARY, secret=True),
                                          lpb.Header(name="X-Team", value="blue")])
        created = await create_llm(client, ep)
        got = await client.get_llm(created.id)
        listed = [x async for x in client.list_llms()]
        for llm in (created, got, *listed):
            h = headers_of(llm)
            assert h["X-Api-Key"].secret and h["X-Api-Key"].value_hint == "..." + CANARY[-4:]
            assert h["X-Api-Key"].value == ""
            assert h["X-Team"].value_hint == "blue" and not h["X-Team"].secret
            assert CANARY[:-4].encode() not in llm.SerializeToString()

        assert (await client.reply("hi", llm_id=created.id)).text == "ok"
        assert sim.requests[-1].headers["X-Api-Key"] == CANARY
        assert sim.requests[-1].headers["X-Team"] == "blue"

        # An update that leaves the secret value empty keeps the stored one.
        got.display_name = "renamed"
        for header in got.endpoints[0].extra_headers:
            header.value_hint = ""  # output only; the empty values keep the stored ones
        updated = (await client.update_llm(got, ["display_name", "endpoints"],
                                           skip_validation=True)).llm
        assert headers_of(updated)["X-Api-Key"].value_hint == "..." + CANARY[-4:]
        assert CANARY[:-4].encode() not in updated.SerializeToString()
        server.registry._cache.clear()  # type: ignore[union-attr]  # read the stored row
        assert (await client.reply("again", llm_id=created.id)).text == "ok"
        assert sim.requests[-1].headers["X-Api-Key"] == CANARY
        assert sim.requests[-1].headers["X-Team"] == "blue"
    assert CANARY.encode() not in db_bytes(tmp_path)
    assert CANARY[-12:-4].encode() not in db_bytes(tmp_path)


async def test_an_endpoint_read_with_get_llm_updates_unchanged(client: AsyncClient) -> None:
    """GetLlm returns header values only as hints (``value`` is input-only): sending the
    endpoint back must keep every header's stored value, plain ones too, not blank them."""
    async with Simulator("openai", Behavior(text="ok")) as sim:
        created = await create_llm(client, endpoint(sim, extra_headers=[
            lpb.Header(name="OpenAI-Organization", value="org-blue")]))
        got = await client.get_llm(created.id)
        got.display_name = "renamed"
        updated = (await client.update_llm(got, ["display_name", "endpoints"],
                                           skip_validation=True)).llm
        assert headers_of(updated)["OpenAI-Organization"].value_hint == "org-blue"
        assert (await client.reply("hi", llm_id=created.id)).text == "ok"
        assert sim.requests[-1].headers["OpenAI-Organization"] == "org-blue"

        # A header the endpoint never had cannot be "kept".
        del updated.endpoints[0].extra_headers[:]
        updated.endpoints[0].extra_headers.add(name="X-New")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.update_llm(updated, ["endpoints"], skip_validation=True)
        st = status_of(err.value)
        assert st.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "X-New" in st.violations["llm.endpoints[0].extra_headers[0].value"]


async def test_a_new_secret_header_needs_a_value(client: AsyncClient) -> None:
    async with Simulator("openai") as sim:
        ep = endpoint(sim, extra_headers=[lpb.Header(name="Authorization", secret=True)])
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create_llm(client, ep)
    st = status_of(err.value)
    assert st.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "llm.endpoints[0].extra_headers[0].value" in st.violations


@pytest.mark.parametrize("bad", ["a\r\nX-Injected: 1", "a\nb", "nul\x00"])
async def test_control_characters_are_refused_at_registration(client: AsyncClient,
                                                              bad: str) -> None:
    async with Simulator("openai") as sim:
        cases = {
            "llm.endpoints[0].extra_headers[0].value":
                endpoint(sim, extra_headers=[lpb.Header(name="X-A", value=bad)]),
            "llm.endpoints[0].extra_headers[0].value ":  # the secret flavour
                endpoint(sim, extra_headers=[lpb.Header(name="X-A", value=bad, secret=True)]),
            "llm.endpoints[0].extra_headers[0].name":
                endpoint(sim, extra_headers=[lpb.Header(name=f"X-{bad}", value="v")]),
            "llm.endpoints[0].api_key": endpoint(sim, key=f"sk-{bad}"),
        }
        for field, ep in cases.items():
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await create_llm(client, ep)
            st = status_of(err.value)
            assert st.code == grpc.StatusCode.INVALID_ARGUMENT, field
            assert field.strip() in st.violations, (field, st.violations)


async def test_plaintext_headers_from_before_are_sealed_at_startup(tmp_path: Path) -> None:
    s = settings(tmp_path)
    async with Simulator("openai", Behavior(text="ok")) as sim:
        async with running(s) as app, AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
            llm = await create_llm(client, endpoint(sim))
        # What the old code stored: every header in plaintext, with no ``secret`` flag.
        with sqlite3.connect(s.database) as conn:
            (body,) = conn.execute("SELECT body FROM llms WHERE id = ?", (llm.id,)).fetchone()
            data = json.loads(body)
            data["endpoints"][0]["extra_headers"] = [
                {"name": "Authorization", "value": f"Bearer {CANARY}"},
                {"name": "X-Title", "value": "my-app"}]
            conn.execute("UPDATE llms SET body = ? WHERE id = ?", (json.dumps(data), llm.id))
        conn.close()
        async with running(s) as app, AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
            got = headers_of(await client.get_llm(llm.id))
            assert got["Authorization"].secret
            assert got["Authorization"].value_hint == "..." + CANARY[-4:]
            assert got["X-Title"].value_hint == "my-app" and not got["X-Title"].secret
            assert (await client.reply("hi", llm_id=llm.id)).text == "ok"
            assert sim.requests[-1].headers["Authorization"] == f"Bearer {CANARY}"
    assert CANARY[:-4].encode() not in db_bytes(tmp_path)
