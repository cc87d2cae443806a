"""Issue 19: a same-endpoint retry is announced as RETRY, not FAILOVER (another endpoint)."""

from __future__ import annotations

import dataclasses

from switchboard.v1 import conversations_pb2 as cpb
from switchboard_client import AsyncClient

from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.support import create_llm, endpoint


async def test_the_only_endpoint_retried_after_a_500_is_labelled_retry(
        client: AsyncClient) -> None:
    once = dataclasses.replace(Behavior(text="ok then"), fault=Fault(FaultKind.SERVER_ERROR),
                               fault_times=1)
    async with Simulator("openai", once) as solo:
        llm = await create_llm(client, endpoint(solo))
        reply = await client.reply("hi", llm_id=llm.id)
    assert reply.complete and reply.text == "ok then"
    assert [r.reason for r in reply.routes] == [cpb.ROUTE_REASON_ONLY_AVAILABLE,
                                                cpb.ROUTE_REASON_RETRY]
    assert {r.endpoint_id for r in reply.routes} == {llm.endpoints[0].id}
