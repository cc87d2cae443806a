"""``make demo``: Switchboard end to end on loopback, in about ten seconds.

It starts two simulated upstreams speaking the OpenAI wire format (a fast "eu-west" one and a
slower "us-east" one), a Switchboard server with a fresh SQLite file and a development master
key, registers one LLM with both endpoints, prints the URL of the Lab (the browser console on
the HTTP port), and runs the turns of a voice session, every one of them reported:

1. a normal turn, streamed: routed to the fastest endpoint, reasoning printed apart from the
   text;
2. to 4. three warm-up turns, one line each, so that the router has measured both endpoints;
5. streamed: the fast endpoint breaks mid-answer, and the other endpoint (which takes an
   assistant prefill) continues the same answer: a ``failover`` event with
   FAILOVER_MODE_CONTINUE, nothing discarded, no spoken word taken back;
6. the fast endpoint breaks again, but the other one now refuses the prefill (400): the
   continuation falls back to a restart, whose ``failover`` names the text to discard;
7. and 8. barge-in: the user starts talking while an answer plays; the client cancels the turn
   (recorded as interrupted), tells TruncateTurn how many characters were heard, and the next
   turn (``barge_in``) builds on exactly what the user heard.

Its key and database live in a temporary directory that is removed when the demo ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import Client
from switchboard_client.cli import stream_turn

from server import logs
from server.app import Switchboard
from server.config import Settings
from server.simulator import Behavior, Fault, FaultKind, Prefill, ReasoningDialect, Simulator
from server.vault.keys import generate_key_file

API_KEY = "demo-key-not-for-production"
BOLD, RESET = "\033[1m", "\033[0m"


def say(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="switchboard-demo-") as work:
        return await run(Path(work))


async def run(work: Path) -> int:
    key_file = work / "master-keys.toml"
    generate_key_file(key_file)
    print(f"created a throwaway development master key in {key_file} (mode 0600; the directory "
          "is removed when the demo ends); real deployments bring their own keys (see README, "
          "Security)")
    logs.configure("warning", "console")
    answer = ("Switchboard routes every turn to the fastest endpoint it has measured, "
              "and restarts an answer elsewhere when an endpoint fails.")
    fast = Behavior(text=answer, chunks=14, chunk_gap_s=0.03, ttft_s=0.05,
                    reasoning="The user asks how routing works. Explain it in one sentence.",
                    reasoning_dialect=ReasoningDialect.REASONING_CONTENT)
    slow = dataclasses.replace(fast, ttft_s=0.25, prefill=Prefill.CONTINUE)
    async with Simulator("openai", fast, api_key="sk-demo-eu") as eu, \
            Simulator("openai", slow, api_key="sk-demo-us") as us:
        settings = Settings(grpc_port=0, database=str(work / "switchboard.db"),
                            api_keys=(API_KEY,), master_key_file=str(key_file),
                            allow_http_upstreams=True, upstream_allow_cidrs=("127.0.0.0/8",),
                            log_level="warning", log_format="console")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # the HTTP port: the Lab, Connect, the OpenAI front door
        app = Switchboard(settings, http_sock=sock)
        await app.start()
        lab = f"http://127.0.0.1:{app.http_port}/lab/"
        say(f"the Lab: {lab} (sign in with API key {API_KEY})")
        try:
            await asyncio.to_thread(converse, app.port, eu, us)
            if sys.stdin.isatty():
                say(f"the Lab stays up at {lab} with the demo LLM; press Enter to stop")
                await asyncio.to_thread(sys.stdin.readline)
        finally:
            await app.stop(grace_s=1.0)
    return 0


def converse(port: int, eu: Simulator, us: Simulator) -> None:
    with Client(f"127.0.0.1:{port}", API_KEY) as sb:
        llm = sb.create_llm(lpb.Llm(display_name="demo-assistant", endpoints=[
            lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url=eu.base_url, model="demo-model",
                         api_key="sk-demo-eu", label="eu-west"),
            lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url=us.base_url, model="demo-model",
                         api_key="sk-demo-us", label="us-east",
                         continues_partial_answer=True),
        ]), skip_validation=True).llm
        keys = ", ".join(f"{e.label}: key {e.api_key_hint}" for e in llm.endpoints)
        say(f"registered LLM {llm.id} with 2 endpoints ({keys})")
        session = sb.create_session(llm.id, system_prompt="You are a concise voice assistant.")
        say("turn 1: routed to the fastest endpoint; reasoning shown apart from the answer")
        stream_turn(sb, "How does Switchboard pick an endpoint?", session_id=session.id)
        say("turns 2-4: warm-up, so that the router has measured both endpoints (one line each)")
        labels = {e.id: e.label for e in llm.endpoints}
        for turn in range(2, 5):
            warm = sb.reply("Again, briefly.", session_id=session.id)
            done = warm.finished
            assert done is not None
            print(f"turn {turn}: answered by {labels.get(done.endpoint_id, done.endpoint_id)} "
                  f"in {done.attempts} attempt(s), time to first token "
                  f"{done.time_to_first_token.ToMilliseconds()} ms")
        say("turn 5: eu-west cuts its stream mid-answer; us-east continues the answer")
        cut = Fault(FaultKind.CUT_AFTER, chunk=18, abrupt=False)  # 11 reasoning + 7 text
        eu.behavior = dataclasses.replace(eu.behavior, fault=cut, fault_times=1)
        started = time.monotonic()
        reply = stream_turn(sb, "And if an endpoint fails?", session_id=session.id)
        print(f"assembled answer after the continued failover "
              f"({time.monotonic() - started:.2f}s): {reply.text!r}")
        assert reply.complete and reply.text == eu.behavior.text, "expected one seamless answer"
        assert [f.mode for f in reply.failovers] == [cpb.FAILOVER_MODE_CONTINUE]
        say("turn 6: the same cut, but us-east now refuses the prefill: a clean restart")
        eu.behavior = dataclasses.replace(eu.behavior, fault=cut, fault_times=1)
        us.behavior = dataclasses.replace(us.behavior, prefill=Prefill.REJECT)
        restart = sb.reply("Once more, if it fails?", session_id=session.id)
        print(f"failovers: {[cpb.FailoverMode.Name(f.mode) for f in restart.failovers]}; "
              f"answer {restart.text!r}")
        us.behavior = dataclasses.replace(us.behavior, prefill=Prefill.CONTINUE)
        barge_in(sb, session.id, eu)
        history = sb.get_session(session.id)
        say(f"session {session.id} holds {len(history.messages)} messages from "
            f"{history.turn_count} turns; done")


def barge_in(sb: Client, session_id: str, eu: Simulator) -> None:
    say("turn 7: the user starts talking while the answer plays (barge-in)")
    eu.behavior = dataclasses.replace(eu.behavior, chunk_gap_s=0.2, fault=None, reasoning="",
                                      text="Our plans are Basic at ten euros, Plus at twenty "
                                           "euros and Pro at forty euros a month.")
    turn_id, streamed = "", ""
    events = sb.converse("Which plans do you have?", session_id=session_id)
    for event in events:
        if isinstance(event, cpb.TurnStarted):
            turn_id = event.turn_id
        elif isinstance(event, cpb.TextDelta):
            streamed += event.delta
            if len(streamed.split()) >= 9:
                break
    events.close()  # type: ignore[attr-defined]  # cancels the RPC: recorded as interrupted
    heard = streamed[:len("Our plans are Basic at ten euros")]  # what text-to-speech played
    print(f"streamed before the user spoke: {streamed!r}\nheard by the user: {heard!r}")
    after = sb.truncate_turn(session_id, turn_id, len(heard))
    last = after.messages[-1]
    print(f"TruncateTurn({turn_id}, {len(heard)}): the history ends with "
          f"{''.join(p.text for p in last.parts)!r} (interrupted={last.interrupted})")
    eu.behavior = dataclasses.replace(eu.behavior, chunk_gap_s=0.03,
                                      text="Plus is twenty euros a month.")
    say("turn 8: the next turn (barge_in=true) builds on what was heard")
    stream_turn(sb, "What does the next one cost?", session_id=session_id, barge_in=True)
    sent = eu.requests[-1].body["messages"][-3:]
    print("the model saw: " + " | ".join(f"{m['role']}: {m['content']}" for m in sent))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(asyncio.run(main()))
