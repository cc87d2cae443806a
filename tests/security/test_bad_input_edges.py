"""Bad input gets the right status at every edge, tried from outside over the real port.

- a ``base_url`` host with a label over 63 characters: INVALID_ARGUMENT on the field (was
  INTERNAL from the IDNA codec);
- bytes that are not a valid request message, or a string field that is not UTF-8:
  INVALID_ARGUMENT ``MALFORMED_REQUEST`` (was UNKNOWN);
- Converse with temperature < 0, top_p > 1 or max_output_tokens < 0, or an image URL that is
  not https: or data:: INVALID_ARGUMENT naming the field, and nothing reaches the upstream
  (was forwarded);
- metadata over ``max_metadata_bytes``: RESOURCE_EXHAUSTED ``METADATA_TOO_LARGE`` at once.
"""

from __future__ import annotations

import grpc
import pytest
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb
from switchboard_client import AsyncClient

from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.security_support import status_of
from tests.support import API_KEY, create_llm, endpoint

AUTH = (("authorization", f"Bearer {API_KEY}"),)


async def test_an_overlong_dns_label_is_invalid_argument(client: AsyncClient) -> None:
    for host in ("a" * 64 + ".example.com", "x." + "b" * 200 + ".example.com"):
        ep = lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url=f"https://{host}/v1",
                          model="m", api_key="sk-x")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.create_llm(lpb.Llm(display_name="x", endpoints=[ep]),
                                    skip_validation=True)
        st = status_of(err.value)
        assert st.code == grpc.StatusCode.INVALID_ARGUMENT, st.message
        assert "llm.endpoints[0].base_url" in st.violations


@pytest.mark.parametrize("payload", [
    b"\xff\xff\xff\xff",  # not a message at all
    rpb.ListLlmsRequest(page_token="AAAA").SerializeToString().replace(b"AAAA",
                                                                       b"\xff\xfe\xfd\xfc"),
], ids=["corrupt", "invalid-utf8"])
async def test_undecodable_requests_are_invalid_argument(server: Switchboard,
                                                         payload: bytes) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        for method in ("/switchboard.v1.LlmRegistry/ListLlms",
                       "/switchboard.v1.Conversations/Converse"):
            if method.endswith("Converse"):
                call: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
                    method)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    async for _ in call(payload, metadata=AUTH, timeout=30):
                        pass
            else:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                        method)
                    await unary(payload, metadata=AUTH, timeout=30)
            st = status_of(err.value)
            assert st.code == grpc.StatusCode.INVALID_ARGUMENT, (method, st.code, st.message)
            assert st.info.reason == "MALFORMED_REQUEST"


def user(text: str = "hi") -> cpb.Message:
    return cpb.Message(role=cpb.ROLE_USER, parts=[cpb.ContentPart(text=text)])


@pytest.mark.parametrize(("generation", "field"), [
    (lpb.GenerationConfig(temperature=-0.5), "generation.temperature"),
    (lpb.GenerationConfig(top_p=1.5), "generation.top_p"),
    (lpb.GenerationConfig(max_output_tokens=-1), "generation.max_output_tokens"),
])
async def test_out_of_range_generation_is_refused_over_grpc(
        client: AsyncClient, generation: lpb.GenerationConfig, field: str) -> None:
    async with Simulator("openai", Behavior(text="ok")) as sim:
        llm = await create_llm(client, endpoint(sim))
        request = cpb.ConverseRequest(llm_id=llm.id, messages=[user()], generation=generation)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in client.conversations.Converse(request, metadata=AUTH, timeout=30):
                pass
        st = status_of(err.value)
        assert st.code == grpc.StatusCode.INVALID_ARGUMENT
        assert field in st.violations
        assert sim.requests == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/cat.png", "file:///etc/passwd",
                                 "ftp://127.0.0.1/cat.png", "gopher://127.0.0.1/"])
async def test_image_urls_must_be_https_or_data(client: AsyncClient, url: str) -> None:
    async with Simulator("openai", Behavior(text="ok")) as sim:
        llm = await create_llm(client, endpoint(sim))
        message = cpb.Message(role=cpb.ROLE_USER, parts=[
            cpb.ContentPart(text="what is this?"),
            cpb.ContentPart(image=cpb.Image(url=url, mime_type="image/png"))])
        request = cpb.ConverseRequest(llm_id=llm.id, messages=[message])
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in client.conversations.Converse(request, metadata=AUTH, timeout=30):
                pass
        st = status_of(err.value)
        assert st.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "messages[0].parts[1].image.url" in st.violations
        assert sim.requests == []


async def test_oversized_metadata_is_refused_at_once(server: Switchboard) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        big = (*AUTH, ("x-padding", "p" * 20000))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            list_llms: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                "/switchboard.v1.LlmRegistry/ListLlms")
            await list_llms(rpb.ListLlmsRequest().SerializeToString(), metadata=big, timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
