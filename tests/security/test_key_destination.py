"""A stored key is only ever sent where it was registered, attacked over the real port.

The attack: any caller of the account updates an endpoint, keeps its id, leaves ``api_key``
empty (keep the stored key) and points ``base_url`` (or ``api_spec``, or the Azure deployment)
at a server it controls, with or without ``validate_only``. Before the fix the server sent the
stored key there, during validation or on the next turn. Now the update is refused with
INVALID_ARGUMENT naming the field and showing the key's hint, the attacker's server receives
nothing, and giving the key again makes the change go through.
"""

from __future__ import annotations

import secrets

import grpc
import pytest
from google.protobuf import field_mask_pb2
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb
from switchboard_client import AsyncClient

from server.simulator import Behavior, Simulator
from tests.security_support import status_of
from tests.support import create_llm, endpoint

KEY = "sk-proj-" + secrets.token_hex(20)
HEADER_SECRET = "tok-" + secrets.token_hex(16)


def moved(llm: lpb.Llm, **changes: object) -> lpb.Llm:
    """``llm`` as an attacker would send it: same endpoint id, no key, something changed."""
    out = lpb.Llm()
    out.CopyFrom(llm)
    ep = out.endpoints[0]
    ep.api_key = ""
    for h in ep.extra_headers:
        h.value_hint = ""
    for name, value in changes.items():
        setattr(ep, name, value)
    return out


async def update(client: AsyncClient, llm: lpb.Llm, *, validate_only: bool,
                 skip_validation: bool = False) -> rpb.UpdateLlmResponse:
    return await client.registry.UpdateLlm(rpb.UpdateLlmRequest(
        llm=llm, update_mask=field_mask_pb2.FieldMask(paths=["endpoints"]),
        validate_only=validate_only, skip_validation=skip_validation),
        metadata=client._metadata)


def seen_secrets(sim: Simulator) -> list[str]:
    return [v for r in sim.requests for v in r.headers.values()
            if KEY in v or HEADER_SECRET in v] + \
        [r.path for r in sim.requests if KEY in str(r.path)]


@pytest.mark.parametrize("validate_only", [True, False])
@pytest.mark.parametrize("skip_validation", [True, False])
async def test_base_url_change_without_the_key_is_refused(
        client: AsyncClient, validate_only: bool, skip_validation: bool) -> None:
    async with Simulator("openai", Behavior(text="ok"), api_key=KEY) as home, \
            Simulator("openai", Behavior(text="stolen")) as evil:
        llm = await create_llm(client, endpoint(home, key=KEY, extra_headers=[
            lpb.Header(name="X-Secret", value=HEADER_SECRET, secret=True)]))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await update(client, moved(llm, base_url=evil.base_url),
                         validate_only=validate_only, skip_validation=skip_validation)
        st = status_of(err.value)
        assert st.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "base_url changed" in st.violations["llm.endpoints[0].api_key"]
        assert "..." + KEY[-4:] in st.violations["llm.endpoints[0].api_key"]
        assert "base_url changed" in st.violations["llm.endpoints[0].extra_headers[0].value"]
        if not validate_only:  # the next turn still goes home, with the key
            assert (await client.reply("hi", llm_id=llm.id)).text == "ok"
        assert evil.requests == [] and seen_secrets(evil) == []


async def test_api_spec_or_azure_deployment_change_needs_the_key(client: AsyncClient) -> None:
    async with Simulator("azure_openai", Behavior(text="ok"), api_key=KEY) as home:
        llm = await create_llm(client, endpoint(home, spec="azure_openai", model="dep-a", key=KEY))
        for changes, part in (({"model": "dep-b"}, "model"),
                              ({"api_spec": lpb.API_SPEC_OPENAI, "api_version": ""}, "api_spec")):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await update(client, moved(llm, **changes), validate_only=True)
            st = status_of(err.value)
            assert st.code == grpc.StatusCode.INVALID_ARGUMENT
            assert f"{part}" in st.violations["llm.endpoints[0].api_key"], st.violations
        assert len(home.requests) == 0


async def test_the_move_goes_through_when_the_secrets_are_given_again(
        client: AsyncClient) -> None:
    async with Simulator("openai", Behavior(text="home"), api_key=KEY) as home, \
            Simulator("openai", Behavior(text="new home")) as new:
        llm = await create_llm(client, endpoint(home, key=KEY))
        again = moved(llm, base_url=new.base_url, api_key="sk-new-" + secrets.token_hex(8))
        response = await update(client, again, validate_only=False, skip_validation=True)
        assert response.llm.endpoints[0].base_url == new.base_url.rstrip("/")
        assert (await client.reply("hi", llm_id=llm.id)).text == "new home"
        assert seen_secrets(new) == []
        # Unchanged destination: the stored key is kept without being given again.
        same = moved(response.llm, label="relabelled")
        await update(client, same, validate_only=False, skip_validation=True)
        assert (await client.reply("hi", llm_id=llm.id)).text == "new home"


async def test_validating_an_inline_llm_never_uses_a_stored_key(client: AsyncClient) -> None:
    async with Simulator("openai", Behavior(text="ok"), api_key=KEY) as home, \
            Simulator("openai", Behavior(text="stolen")) as evil:
        llm = await create_llm(client, endpoint(home, key=KEY))
        inline = moved(llm, base_url=evil.base_url)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in client.validate_llm(llm=inline):
                pass
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert seen_secrets(evil) == []
