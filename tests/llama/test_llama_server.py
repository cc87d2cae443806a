"""Switchboard against llama.cpp's own llama-server (issue 19): a real self-hosted upstream.

The model is tiny and random (``tinymodel``), so the words are garbage; the wire format,
the errors, the reasoning parsing, the prompt cache and the context limits are llama.cpp's.
"""

from __future__ import annotations

import grpc
import pytest
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb
from switchboard_client import AsyncClient, Reply

from server.app import Switchboard
from server.edge.check_endpoint import check_endpoint
from server.simulator import Behavior, Simulator
from server.validation.capability_checks import tiny_png
from tests.llama.conftest import StartLlama
from tests.llama.llama_server import MODEL_ALIAS, LlamaServer
from tests.support import create_llm, reason_and_retry

LONG = " ".join(f"word{i}" for i in range(400))  # ~1,000 tokens: too long for 256


def llama_endpoint(server: LlamaServer, **fields: object) -> lpb.Endpoint:
    return lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url=server.base_url,
                        model=MODEL_ALIAS, api_key="sk-unused", **fields)  # type: ignore[arg-type]


def sim_endpoint(sim: Simulator, **fields: object) -> lpb.Endpoint:
    return lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url=sim.base_url, model="sim-model",
                        api_key="sk-test", **fields)  # type: ignore[arg-type]


def checks(report: rpb.ValidationReport) -> dict[str, rpb.CheckResult]:
    return {c.check: c for c in report.endpoints[0].checks}


def image_message() -> cpb.Message:
    return cpb.Message(role=cpb.ROLE_USER, parts=[
        cpb.ContentPart(text="What is in this image?"),
        cpb.ContentPart(image=cpb.Image(data=tiny_png(), mime_type="image/png"))])


# -- validation ------------------------------------------------------------------------------


async def test_check_endpoint_passes_llama_server_and_reads_its_window(
        llama: LlamaServer, llama_small: LlamaServer) -> None:
    shown: list[rpb.ValidateLlmResponse] = []
    assert await check_endpoint(llama_endpoint(llama), shown.append) == 0
    report = shown[-1].report
    assert report.passed, [(c.check, c.observed) for c in report.endpoints[0].checks
                           if c.status == rpb.CHECK_STATUS_FAIL]
    caps = report.endpoints[0].capabilities
    assert caps.reasoning and caps.reasoning_dialect == "think_tags"
    assert not caps.image_input  # no --mmproj: llama.cpp refuses images
    assert caps.reported_context_window_tokens == 4096  # /props: a slot's window
    shown.clear()
    assert await check_endpoint(llama_endpoint(llama_small), shown.append) == 0
    assert shown[-1].report.endpoints[0].capabilities.reported_context_window_tokens == 256


async def test_a_model_name_llama_cpp_does_not_list_fails_validation(
        client: AsyncClient, llama: LlamaServer) -> None:
    """llama.cpp answers any model name with its one model; GET /v1/models says which."""
    wrong = llama_endpoint(llama)
    wrong.model = "gpt-4o"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.create_llm(lpb.Llm(display_name="typo", endpoints=[wrong]))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "request.model" in (caught.value.details() or "")
    report = [e async for e in client.validate_llm(
        llm=lpb.Llm(display_name="typo", endpoints=[wrong]))][-1].report
    model = checks(report)["request.model"]
    assert model.status == rpb.CHECK_STATUS_FAIL and MODEL_ALIAS in model.observed
    assert "--alias" in model.hint


async def test_create_llm_on_jinja_llama_records_reasoning_content(
        client: AsyncClient, llama_jinja: LlamaServer) -> None:
    created = await client.create_llm(lpb.Llm(display_name="qwen3 template",
                                              endpoints=[llama_endpoint(llama_jinja)]))
    caps = created.llm.endpoints[0].capabilities
    assert caps.reasoning and caps.reasoning_dialect == "reasoning_content"
    assert created.validation.passed


# -- turns -----------------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["default", "jinja"])
async def test_turns_separate_reasoning_in_both_dialects(
        client: AsyncClient, llama: LlamaServer, llama_jinja: LlamaServer,
        template: str) -> None:
    server = llama if template == "default" else llama_jinja
    llm = await create_llm(client, llama_endpoint(server))
    stateless = await client.reply("Say something.", llm_id=llm.id)
    session = await client.create_session(llm.id, system_prompt="You are terse.")
    first = await client.reply("Hello.", session_id=session.id)
    second = await client.reply("And again.", session_id=session.id)
    for reply in (stateless, first, second):
        assert reply.complete and reply.finished is not None
        assert reply.finished.finish_reason == cpb.FINISH_REASON_STOP
        assert reply.reasoning.strip() and reply.text.strip()
        assert "<think>" not in reply.text and "</think>" not in reply.text
        assert reply.usage is not None and reply.usage.input_tokens > 0
        assert reply.usage.output_tokens > 0
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens  # the history was sent


async def test_a_max_output_limit_finishes_with_length(client: AsyncClient,
                                                       llama: LlamaServer) -> None:
    llm = await create_llm(client, llama_endpoint(llama))
    reply = await client.reply("Go on.", llm_id=llm.id,
                               generation=lpb.GenerationConfig(max_output_tokens=3))
    assert reply.finished is not None and reply.finished.finish_reason == cpb.FINISH_REASON_LENGTH
    assert not reply.complete


# -- context windows ------------------------------------------------------------------------


async def test_a_context_error_reaches_the_larger_of_two_undeclared_llama_servers(
        client: AsyncClient, llama: LlamaServer, llama_small: LlamaServer) -> None:
    llm = await create_llm(client, llama_endpoint(llama_small, priority=0),
                           llama_endpoint(llama, priority=1))
    reply = await client.reply(LONG, llm_id=llm.id)
    assert reply.complete and reply.endpoint_id == llm.endpoints[1].id
    assert [r.reason for r in reply.routes][-1] == cpb.ROUTE_REASON_LARGER_CONTEXT_WINDOW
    # The window is learned from llama.cpp's 400: the next long prompt goes to the big one.
    again = await client.reply(LONG, llm_id=llm.id)
    assert again.complete and len(again.routes) == 1
    assert again.endpoint_id == llm.endpoints[1].id


async def test_llama_cpps_400_over_context_is_invalid_argument(
        client: AsyncClient, llama_small: LlamaServer) -> None:
    llm = await create_llm(client, llama_endpoint(llama_small))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.reply(LONG, llm_id=llm.id)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_and_retry(caught.value)[0] == "CONTEXT_LENGTH_EXCEEDED"
    assert "available context size (256 tokens)" in (caught.value.details() or "")
    assert (await client.reply("short", llm_id=llm.id)).complete  # still healthy


# -- a request the endpoint cannot take ------------------------------------------------------


async def test_an_image_turn_never_changes_a_later_text_turn(
        client: AsyncClient, server: Switchboard, llama: LlamaServer) -> None:
    llm = await create_llm(client, llama_endpoint(llama))  # unvalidated: no capability record
    for _ in range(4):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.reply([image_message()], llm_id=llm.id)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason_and_retry(caught.value)[0] == "UNSUPPORTED_INPUT"
        assert "image input is not supported" in (caught.value.details() or "")
    assert server.router is not None
    health = server.router.snapshot(llm.endpoints[0].id)
    assert health.consecutive_failures == 0 and health.state.value == "closed"
    for _ in range(3):
        reply = await client.reply("Plain text.", llm_id=llm.id)
        assert reply.complete and [r.reason for r in reply.routes] == [
            cpb.ROUTE_REASON_ONLY_AVAILABLE]


async def test_an_image_turn_goes_only_where_validation_found_image_input(
        client: AsyncClient, llama: LlamaServer) -> None:
    async with Simulator("openai", Behavior(text="A small square.")) as vision:
        created = await client.create_llm(lpb.Llm(display_name="mixed", endpoints=[
            llama_endpoint(llama, priority=0), sim_endpoint(vision, priority=1)]))
        llm = created.llm
        assert not llm.endpoints[0].capabilities.image_input
        assert llm.endpoints[1].capabilities.image_input
        reply = await client.reply([image_message()], llm_id=llm.id)
        assert reply.text == "A small square." and len(reply.routes) == 1
        only_llama = await client.create_llm(lpb.Llm(display_name="text only",
                                                     endpoints=[llama_endpoint(llama)]))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.reply([image_message()], llm_id=only_llama.llm.id)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_and_retry(caught.value)[0] == "CAPABILITY_UNAVAILABLE"
    assert "image input" in (caught.value.details() or "")


# -- failover between llama-server and the simulator ----------------------------------------


async def test_llama_killed_mid_stream_fails_over_to_the_simulator(
        client: AsyncClient, start_llama: StartLlama) -> None:
    mine = start_llama(grammar=False, extra=("--n-predict", "4000"))
    async with Simulator("openai", Behavior(text="Rescued.")) as sim:
        llm = await create_llm(client, llama_endpoint(mine, priority=0),
                               sim_endpoint(sim, priority=1))
        reply = Reply()
        killed = False
        async for event in client.converse("Talk for a long time.", llm_id=llm.id,
                                           generation=lpb.GenerationConfig(
                                               max_output_tokens=4000)):
            reply.apply(event)
            if isinstance(event, cpb.TextDelta | cpb.ReasoningDelta) and not killed:
                mine.kill()  # SIGKILL while the answer streams
                killed = True
    assert killed and reply.complete and reply.text == "Rescued."
    assert len(reply.failovers) == 1 and reply.failovers[0].discard_message_ids
    assert reply.endpoint_id == llm.endpoints[1].id


async def test_routing_between_llama_and_the_simulator_prefers_the_faster(
        client: AsyncClient, llama: LlamaServer) -> None:
    async with Simulator("openai", Behavior(text="slow one", ttft_s=0.5)) as slow:
        llm = await create_llm(client, llama_endpoint(llama), sim_endpoint(slow))
        for _ in range(4):  # both sampled
            await client.reply("hi", llm_id=llm.id)
        served = [(await client.reply("hi", llm_id=llm.id)).endpoint_id for _ in range(6)]
    assert served.count(llm.endpoints[0].id) >= 5, served


# -- probes ----------------------------------------------------------------------------------


async def test_probes_fit_a_256_token_llama_server(
        tmp_path_factory: pytest.TempPathFactory, start_llama: StartLlama) -> None:
    from server.clock import FakeClock
    from tests.support import API_KEY, settings

    # A server of its own: the shared 256-token one has served other tests' connections and
    # over-long prompts, and this test counts every probe failure against the endpoint.
    llama_small = start_llama(ctx_size=256)
    clock = FakeClock()
    app = Switchboard(settings(tmp_path_factory.mktemp("probes"), probes_per_hour=3600),
                      clock=clock)
    await app.start()
    await app.pause_background()
    try:
        async with AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
            llm = await create_llm(client, llama_endpoint(llama_small))
            await client.create_session(llm.id)
            assert app.probes is not None and app.router is not None
            for _ in range(4):
                clock.advance(1.3)
                await app.probes.tick()
            health = app.router.snapshot(llm.endpoints[0].id)
        assert app.probes.sent >= 4
        assert health.error_rate == 0.0 and health.consecutive_failures == 0, health
        assert health.samples >= 3
    finally:
        await app.stop(grace_s=1.0)
