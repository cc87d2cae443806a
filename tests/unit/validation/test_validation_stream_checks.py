"""streaming.* and response.* verdicts: one broken rule, one failed check."""

from __future__ import annotations

import pytest

from server.registry.llm import ApiSpec
from server.validation import catalog, stream_checks
from server.validation.catalog import CheckVerdict
from server.validation.exchange import Exchange, Failure
from server.validation.report import CheckStatus
from tests.unit.validation._validation_testkit import audit, endpoint, stream_body, streamed

BUDGET = stream_checks.Budget(first_token_s=5.0, slow_first_token_s=2.0)
ROLE = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
TEXT = b'data: {"choices":[{"index":0,"delta":{"content":"pong"}}]}\n\n'
STOP = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1}}\n\n'
DONE = b"data: [DONE]\n\n"


def judged(body: bytes, spec: ApiSpec = ApiSpec.OPENAI, ex: Exchange | None = None
           ) -> list[CheckVerdict]:
    verdicts = stream_checks.judge(ex or streamed(), audit(spec, body), endpoint(spec),
                                   BUDGET, admitted="")
    assert [v.check for v in verdicts] == [*catalog.STREAM, *catalog.RESPONSE]
    return verdicts


def not_passed(verdicts: list[CheckVerdict]) -> dict[str, CheckStatus]:
    return {v.check: v.status for v in verdicts
            if v.status in (CheckStatus.FAIL, CheckStatus.WARN)}


def test_a_correct_stream_passes_everything() -> None:
    verdicts = judged(ROLE + TEXT + STOP + USAGE + DONE)
    assert not_passed(verdicts) == {}
    assert all(v.status is CheckStatus.PASS for v in verdicts)


@pytest.mark.parametrize(("name", "spec"), [
    ("openai/stream-text-with-usage.sse", ApiSpec.OPENAI),
    ("groq/stream-text.sse", ApiSpec.GROQ),
    ("azure/stream-text-prompt-filter.sse", ApiSpec.AZURE_OPENAI),
    ("gemini/stream-text.sse", ApiSpec.GEMINI),
])
def test_recorded_streams_pass(name: str, spec: ApiSpec) -> None:
    verdicts = judged(stream_body(name), spec)
    assert not_passed(verdicts) in ({}, {catalog.USAGE: CheckStatus.WARN})


@pytest.mark.parametrize(("body", "check", "status"), [
    (ROLE + TEXT + STOP + USAGE, catalog.END, CheckStatus.WARN),  # no [DONE] (issue 19)
    (ROLE + TEXT + USAGE + DONE, catalog.END, CheckStatus.FAIL),  # [DONE], no finish
    (ROLE + TEXT + STOP + USAGE + DONE + TEXT, catalog.END, CheckStatus.WARN),
    (TEXT + STOP + USAGE + DONE, catalog.ROLE, CheckStatus.FAIL),
    (ROLE + TEXT + STOP + DONE, catalog.USAGE, CheckStatus.WARN),
    (ROLE + TEXT + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
     + USAGE + DONE, catalog.FINISH_REASON, CheckStatus.WARN),
    (ROLE + b'data: {"choices":[{"index":0,"delta":{"content":{"text":"x"}}}]}\n\n' + STOP
     + USAGE + DONE, catalog.CONTENT, CheckStatus.FAIL),
    (ROLE + STOP + USAGE + DONE, catalog.CONTENT, CheckStatus.WARN),
    (ROLE + b'data: {"choices":[{"index":0,"delta":{"content":"po"}}]\n\n' + TEXT + STOP + USAGE
     + DONE, catalog.CHUNK_SCHEMA, CheckStatus.FAIL),
    (ROLE + TEXT + b'data: {"error":{"message":"boom","type":"server_error"}}\n\n',
     catalog.ERROR_EVENTS, CheckStatus.FAIL),
    (ROLE + TEXT + STOP + USAGE + DONE + b'data: {"choices":[]}\n\n', catalog.END,
     CheckStatus.WARN),
    (ROLE + TEXT + b'error: {"message":"boom"}\n\n' + STOP + USAGE + DONE, catalog.FRAMING,
     CheckStatus.FAIL),
    (ROLE.replace(b"\n\n", b"\n") + TEXT + STOP + USAGE + DONE, catalog.CHUNK_SCHEMA,
     CheckStatus.FAIL),
])
def test_one_broken_rule_is_one_verdict(body: bytes, check: str, status: CheckStatus) -> None:
    verdicts = judged(body)
    assert not_passed(verdicts) == {check: status}
    broken = next(v for v in verdicts if v.check == check)
    assert broken.hint and broken.observed


def test_an_unterminated_last_event_is_a_framing_failure() -> None:
    verdicts = judged(ROLE + TEXT + STOP + USAGE + b"data: [DONE]")
    assert not_passed(verdicts) == {catalog.FRAMING: CheckStatus.FAIL,
                                    catalog.END: CheckStatus.WARN}  # no full [DONE]


def test_garbage_fails_framing_and_skips_the_rest() -> None:
    verdicts = judged(bytes(range(14, 250)) * 8)
    assert not_passed(verdicts) == {catalog.FRAMING: CheckStatus.FAIL}
    after = [v for v in verdicts if v.check in (*catalog.STREAM[3:], *catalog.RESPONSE)]
    assert all(v.status is CheckStatus.SKIPPED for v in after)


def test_a_first_token_timeout_fails_once_and_skips_what_needs_tokens() -> None:
    ex = streamed()
    ex.failure = Failure("first_token", "no token within 5s", timed_out=True)
    verdicts = judged(ROLE, ex=ex)
    assert not_passed(verdicts) == {catalog.FIRST_TOKEN: CheckStatus.FAIL}


def test_a_slow_first_token_warns() -> None:
    a = audit(ApiSpec.OPENAI, ROLE + TEXT + STOP + USAGE + DONE)
    a.first_content_at = 3.0
    verdicts = stream_checks.judge(streamed(), a, endpoint(), BUDGET, admitted="")
    assert not_passed(verdicts) == {catalog.FIRST_TOKEN: CheckStatus.WARN}


def test_a_cut_stream_fails_the_end_only() -> None:
    ex = streamed()
    ex.failure = Failure("body", "the server closed the connection in the middle of the stream")
    verdicts = judged(ROLE + TEXT, ex=ex)
    assert not_passed(verdicts) == {catalog.END: CheckStatus.FAIL}


def test_the_decoder_backstop_fails_a_check_nothing_else_caught() -> None:
    call = (b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1",'
            b'"type":"function","function":{"name":"f","arguments":"{\\"a\\": "}}]}}]}\n\n')
    tools = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n'
    verdicts = judged(ROLE + call + tools + USAGE + DONE)
    assert not_passed(verdicts) == {catalog.CHUNK_SCHEMA: CheckStatus.FAIL}
    assert "not complete JSON" in next(v.observed for v in verdicts
                                       if v.check == catalog.CHUNK_SCHEMA)


def test_application_json_to_a_stream_request_is_non_streaming_only() -> None:
    ex = streamed(content_type="application/json")
    ex.streamed = False
    ex.body = b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{}}]}'
    verdicts = stream_checks.judge(ex, audit(ApiSpec.OPENAI, b""), endpoint(), BUDGET, "")
    assert not_passed(verdicts) == {catalog.CONTENT_TYPE: CheckStatus.FAIL}
    assert "returns application/json to stream: true" in verdicts[0].observed


def test_gemini_without_alt_sse_is_named() -> None:
    ex = streamed(content_type="application/json")
    ex.streamed = False
    ex.body = b'[{"candidates": []}]'
    verdicts = stream_checks.judge(ex, audit(ApiSpec.GEMINI, b""), endpoint(ApiSpec.GEMINI),
                                   BUDGET, "")
    assert "alt=sse" in verdicts[0].hint


def test_gemini_missing_role_warns() -> None:
    body = stream_body("gemini/stream-text.sse").replace(b',"role": "model"', b"")
    assert not_passed(judged(body, ApiSpec.GEMINI)) == {catalog.ROLE: CheckStatus.WARN}


def test_everything_is_skipped_after_an_admission_failure() -> None:
    verdicts = stream_checks.judge(streamed(401), audit(ApiSpec.OPENAI, b""), endpoint(),
                                   BUDGET, admitted=catalog.AUTH)
    assert all(v.status is CheckStatus.SKIPPED and catalog.AUTH in v.observed
               for v in verdicts)


LENGTH = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'


@pytest.mark.parametrize(("limit_sent", "server", "words"), [
    (True, "", "raise max_output_tokens"),
    (False, "", "no output limit was sent"),
    (False, "llama.cpp", "--ctx-size"),
])
def test_the_length_hint_names_whose_limit_it_was(limit_sent: bool, server: str,
                                                  words: str) -> None:
    """Issue 19: with no limit sent, a `length` finish is the server's context or cap."""
    ex = streamed()
    if server:
        ex.headers["server"] = server
    verdicts = stream_checks.judge(ex, audit(ApiSpec.OPENAI, ROLE + TEXT + LENGTH + USAGE + DONE),
                                   endpoint(ApiSpec.OPENAI), BUDGET, admitted="",
                                   limit_sent=limit_sent)
    finish = next(v for v in verdicts if v.check == catalog.FINISH_REASON)
    assert finish.status is CheckStatus.WARN and words in finish.hint, finish.hint
