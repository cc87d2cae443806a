from __future__ import annotations

from switchboard.v1 import conversations_pb2 as cpb
from switchboard_client import AsyncClient, Reply

from server.simulator import Behavior, Simulator
from tests.support import create_llm, endpoint


async def test_session_turn_streams_text_and_reasoning_apart(client: AsyncClient) -> None:
    async with Simulator("openai", Behavior(text="Hello there, traveller.",
                                            reasoning="The user greets me.")) as sim:
        llm = await create_llm(client, endpoint(sim))
        session = await client.create_session(llm.id, system_prompt="Be brief.")
        events = [e async for e in client.converse("Hi!", session_id=session.id)]
        reply = Reply()
        for e in events:
            reply.apply(e)
        kinds = [type(e).__name__ for e in events]
        assert kinds[0] == "TurnStarted" and kinds[1] == "RouteDecision"
        assert kinds[-2:] == ["Usage", "TurnFinished"]
        assert reply.text == "Hello there, traveller."
        assert reply.reasoning_history == ["The user greets me."]
        assert "greets" not in reply.text
        assert reply.complete and reply.finished is not None
        assert reply.finished.finish_reason == cpb.FINISH_REASON_STOP
        stored = await client.get_session(session.id)
        assert [m.role for m in stored.messages] == [cpb.ROLE_USER, cpb.ROLE_ASSISTANT]
        assert stored.messages[1].parts[0].text == "Hello there, traveller."
        body = sim.requests[-1].body
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
