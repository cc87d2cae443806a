"""A session turn's history values are built field by field (no ``dataclasses.replace`` on the
hot path): they must be what ``replace`` would build, and a new field must not be dropped."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from server.chat import Generation, Message, Role, TextPart, ToolCall
from server.session_state import Session, tagged

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _every_field_set() -> Message:
    return Message(Role.ASSISTANT, (TextPart("hi"),), (ToolCall("c1", "f", "{}"),),
                   tool_call_id="c0", name="f", reasoning="because", thought_signature="sig",
                   interrupted=True, turn_id="turn_old")


def test_a_tagged_message_keeps_every_field_but_its_turn() -> None:
    m = _every_field_set()
    assert all(getattr(m, f.name) != f.default for f in dataclasses.fields(Message)
               if f.default is not dataclasses.MISSING), "set every field: a new one too"
    assert tagged(m, "turn_new") == dataclasses.replace(m, turn_id="turn_new")


def test_a_session_after_a_turn_keeps_every_field_it_does_not_change() -> None:
    session = Session("ses_1", "acct", "llm_1", "Be brief.", Generation(temperature=0.2), 60.0,
                      T0, T0 + timedelta(minutes=1), 3, (_every_field_set(),), 7,
                      running_turn_id="turn_x", running_until=T0 + timedelta(minutes=5))
    added = [Message(Role.USER, (TextPart("again"),))]
    later = T0 + timedelta(minutes=2)
    expected = dataclasses.replace(session, messages=(*session.messages, *added), version=9,
                                   turn_count=4, expire_time=later, running_turn_id="",
                                   running_until=None)
    assert session.after_turn(added, 9, later) == expected
    assert session.after_turn([], 9, later).turn_count == 3  # a turn that wrote nothing
    assert {f.name for f in dataclasses.fields(Session)} == {
        "id", "account_id", "llm_id", "system_prompt", "generation", "idle_ttl_s",
        "create_time", "expire_time", "turn_count", "messages", "version", "running_turn_id",
        "running_until"}, "a new Session field: set it in Session.after_turn"
