"""History that fits the endpoint's window, and the continuation request."""

from __future__ import annotations

from server.chat import ChatRequest, Generation, Message, Role, TextPart, ToolCall
from server.turns.shaping import continuation, estimate_tokens, fit_history


def text(role: Role, body: str, **kw: object) -> Message:
    return Message(role, (TextPart(body),), **kw)  # type: ignore[arg-type]


SYSTEM = text(Role.SYSTEM, "Be brief.")
OLD = [text(Role.USER, "a" * 400), text(Role.ASSISTANT, "b" * 400)]
CALL = Message(Role.ASSISTANT, tool_calls=(ToolCall("c1", "weather", "{}"),))
RESULT = Message(Role.TOOL, (TextPart("sunny " * 50),), tool_call_id="c1", name="weather")
NEWEST = text(Role.USER, "And now?")


def request(*messages: Message, fit: bool = True, **gen: object) -> ChatRequest:
    return ChatRequest(tuple(messages), generation=Generation(**gen),  # type: ignore[arg-type]
                       fit_history=fit)


def test_a_history_that_fits_or_an_unknown_window_is_sent_whole() -> None:
    whole = request(SYSTEM, *OLD, NEWEST)
    assert fit_history(whole, 0) == (whole, 0)
    assert fit_history(whole, estimate_tokens(whole)) == (whole, 0)
    stateless = request(SYSTEM, *OLD, NEWEST, fit=False)
    assert fit_history(stateless, 10) == (stateless, 0)


def test_the_oldest_exchanges_go_first_and_the_system_prompt_stays() -> None:
    whole = request(SYSTEM, *OLD, *OLD, NEWEST)
    window = estimate_tokens(request(SYSTEM, *OLD, NEWEST))
    fitted, omitted = fit_history(whole, window)
    assert (fitted.messages, omitted) == ((SYSTEM, *OLD, NEWEST), 2)


def test_a_tool_call_is_never_separated_from_its_result() -> None:
    asked = text(Role.USER, "Weather?")
    whole = request(SYSTEM, *OLD, asked, CALL, RESULT)
    fitted, omitted = fit_history(whole, estimate_tokens(request(SYSTEM, asked, CALL, RESULT)))
    assert (fitted.messages, omitted) == ((SYSTEM, asked, CALL, RESULT), 2)


def test_the_newest_exchange_is_sent_even_when_it_alone_is_too_long() -> None:
    whole = request(SYSTEM, *OLD, NEWEST, max_output_tokens=1000)
    fitted, omitted = fit_history(whole, 50)
    assert (fitted.messages, omitted) == ((SYSTEM, NEWEST), 2)


def test_the_output_budget_counts_against_the_window() -> None:
    whole = request(SYSTEM, *OLD, NEWEST, max_output_tokens=100)
    window = estimate_tokens(whole)
    assert fit_history(whole, window)[1] == 2
    assert fit_history(whole, window + 100)[1] == 0


def test_a_continuation_ends_with_the_partial_answer() -> None:
    base = request(SYSTEM, NEWEST)
    cont = continuation(base, "It is")
    assert cont.continues_answer and not base.continues_answer
    assert cont.messages == (SYSTEM, NEWEST, text(Role.ASSISTANT, "It is"))
