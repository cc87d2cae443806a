"""The redaction backstop: scrub() on realistic strings and the structlog processor."""

from __future__ import annotations

import json
from typing import Any

import pytest
import structlog

from server.secret import Secret
from server.vault.redact import (
    REDACTED,
    KnownSecrets,
    Redactor,
    is_sensitive_name,
    scrub,
    scrub_headers,
)

OPENAI = "sk-proj-Abc123DEF456ghi789JKL012mno345PQR678stu901VWX_yz-T3BlbkFJ"
GROQ = "gsk_8yTq2LmNpQrStUvWxYz0123456789abcdefGHIJKLmnopQRst"
GEMINI = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
CALLER = "sb_0123456789abcdef_Q2FuYXJ5LWNhbGxlci1rZXktMDEyMzQ1Njc4OWFiY2Q"
AZURE = "3f2a9c1e8b7d4a6f9e0c1b2a3d4e5f60"  # 32 hex characters: masked by shape
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (
            f"https://generativelanguage.googleapis.com/v1beta/models/gemini:streamGenerateContent"
            f"?alt=sse&key={GEMINI}",
            GEMINI,
            "?alt=sse&key=[REDACTED]",
        ),
        (f"https://x.example/v1?api-key={AZURE}&v=1", AZURE, "api-key=[REDACTED]&v=1"),
        (
            f'{{"error": {{"message": "Incorrect API key provided: {OPENAI}.", '
            '"type": "invalid_request_error"}}',
            OPENAI,
            "Incorrect API key provided: sk-[REDACTED].",
        ),
        (json.dumps({"headers": {"api-key": AZURE}}), AZURE, '"api-key": "[REDACTED]"'),
        (f"Authorization: Bearer {GROQ}\r\nHost: x", GROQ, "Authorization: [REDACTED]\r\n"),
        (
            f"<CIMultiDictProxy('Authorization': 'Bearer {OPENAI}', "
            "'Accept': 'text/event-stream')>",
            OPENAI,
            "'Accept': 'text/event-stream'",
        ),
        ("authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy", "authorization: "),
        (f"upstream said: bearer {JWT}", JWT, "bearer [REDACTED]"),
        (f"token {JWT} expired", JWT, "token [REDACTED] expired"),
        (f"x-goog-api-key: {GEMINI}", GEMINI, "x-goog-api-key: [REDACTED]"),
        (f"groq key {GROQ} rejected", GROQ, "groq key gsk_[REDACTED] rejected"),
        (f"caller {CALLER} unknown", CALLER, "caller sb_0123456789abcdef_[REDACTED] unknown"),
        (f"password={AZURE}", AZURE, "password=[REDACTED]"),
        (f"'client_secret': '{AZURE}'", AZURE, "'client_secret': '[REDACTED]'"),
        (f"https://h.example/blob?sv=2021&sig={AZURE}", AZURE, "?sv=2021&sig=[REDACTED]"),
    ],
)
def test_scrub_masks_realistic_leaks(text: str, secret: str, kept: str) -> None:
    out = scrub(text)
    assert secret not in out
    assert kept in out
    assert scrub(out) == out  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "This model's maximum context length is 8192 tokens; you requested 9000 tokens.",
        "max_tokens=4096 temperature=0.2",
        "https://api.openai.com/v1/chat/completions?api-version=2024-06-01",
        "risk-assessment-report-2024 and task-scheduler-v2",
        "basic understanding of the problem",
        "endpoint ep-1 returned 429 after 1.5s",
        "key_id=k20250101-3f9a",
    ],
)
def test_scrub_leaves_ordinary_text_alone(text: str) -> None:
    assert scrub(text) == text


def test_known_secrets_mask_exact_values_without_storing_them() -> None:
    known = KnownSecrets()
    assert known.add(Secret(AZURE))
    assert not known.add("short")  # too short to mask safely
    assert repr(known) == "KnownSecrets(1 tokens)"
    text = f"POST https://res.openai.azure.com/openai/deployments/x?foo={AZURE} failed: {AZURE}."
    out = scrub(text, known)
    assert AZURE not in out
    assert out.endswith("failed: [REDACTED].")
    assert AZURE not in scrub(f"prefix{AZURE}", known)  # the shape rule (32+ hex) catches it


def test_known_secrets_with_non_token_characters() -> None:
    known = KnownSecrets()
    value = "abcDEF123456+/ghiJKL789012=="
    known.add(value)
    out = scrub(f"upstream echoed {value}", known)
    assert "abcDEF123456" not in out and "ghiJKL789012" not in out


def test_scrub_headers() -> None:
    headers = {
        "Authorization": f"Bearer {OPENAI}",
        "X-Goog-Api-Key": GEMINI,
        "api-key": AZURE,
        "Content-Type": "application/json",
        "X-Debug": f"echo {GROQ}",
    }
    out = scrub_headers(headers)
    assert out["Authorization"] == out["X-Goog-Api-Key"] == out["api-key"] == REDACTED
    assert out["Content-Type"] == "application/json"
    assert out["X-Debug"] == "echo gsk_[REDACTED]"
    assert headers["api-key"] == AZURE  # input untouched


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("api_key", True),
        ("API-KEY", True),
        ("x-goog-api-key", True),
        ("Authorization", True),
        ("proxy-authorization", True),
        ("password", True),
        ("client_secret", True),
        ("access_token", True),
        ("token", True),
        ("apikey", True),
        ("prompt_tokens", False),
        ("key_id", False),
        ("key_hint", False),
        ("endpoint", False),
        ("tokenizer", False),
    ],
)
def test_sensitive_names(name: str, sensitive: bool) -> None:
    assert is_sensitive_name(name) is sensitive


def test_processor_redacts_nested_values_and_keeps_counts() -> None:
    known = KnownSecrets()
    known.add(AZURE)
    headers = {"Authorization": f"Bearer {OPENAI}", "Accept": "application/json"}
    event: dict[str, Any] = {
        "event": f"upstream failed for https://g.example/v1?key={GEMINI}",
        "api_key": "plain-string-key-value",
        "key": Secret(GROQ),
        "headers": headers,
        "attempts": [{"url": f"https://x/?api_key={AZURE}"}, ("token", AZURE)],
        "prompt_tokens": 12,
        "token_count": 7,
        "ttft_ms": 81.5,
        "has_api_key": True,
        "note": None,
        "body": f'{{"detail": "bad key {AZURE}"}}'.encode(),
        "error": ValueError(f"rejected {OPENAI}"),
    }
    out = Redactor(known)(None, "info", event)
    rendered = json.dumps(out, default=str)
    for secret in (OPENAI, GEMINI, GROQ, AZURE, "plain-string-key-value"):
        assert secret not in rendered
    assert out["api_key"] == REDACTED and out["key"] == REDACTED
    assert out["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert headers["Authorization"].endswith(OPENAI)  # the caller's dict is not modified
    assert out["prompt_tokens"] == 12 and out["token_count"] == 7 and out["ttft_ms"] == 81.5
    assert out["has_api_key"] is True and out["note"] is None
    assert out["error"] == "rejected sk-[REDACTED]"


def test_processor_backstop_in_a_real_structlog_pipeline() -> None:
    known = KnownSecrets()
    known.add(AZURE)
    lines: list[str] = []

    class Sink:
        def msg(self, message: str) -> None:
            lines.append(message)

        info = error = msg

    logger = structlog.wrap_logger(
        Sink(),
        processors=[
            structlog.processors.format_exc_info,
            Redactor(known),
            structlog.processors.JSONRenderer(),
        ],
    )
    log = logger.bind(account="acct-1", api_key=Secret(AZURE))
    log.info("calling upstream", url=f"https://x.example/v1?key={GEMINI}", authorization=AZURE)
    try:
        raise RuntimeError(f"upstream 401 for key {AZURE} via Bearer {OPENAI}")
    except RuntimeError:
        log.error("turn failed", exc_info=True)
    assert len(lines) == 2
    for line in lines:
        for secret in (AZURE, GEMINI, OPENAI):
            assert secret not in line
    first, second = (json.loads(line) for line in lines)
    assert first["account"] == "acct-1" and first["url"].endswith("?key=[REDACTED]")
    assert (
        "RuntimeError: upstream 401 for key [REDACTED] via Bearer [REDACTED]"
        in (second["exception"])
    )


@pytest.mark.parametrize("text", [
    "llm_1461ef5f5f94b673245f", "2026-12-06T20:46:52.655164Z", "OK", "", "sim-model",
    "SK-live", "x?a=1", "a;b=", "?=", "no equals ? here", "A" * 31, "A" * 32, "a+b" * 11,
    "Bearer", "AIZA", "eYj", "PK-", "rk-", "hf_", "Xai-", "sb_", "Passw", "tokens", "KEY",
    "\u212a", "\u212aEY", "\u017fecret", "\u0130", "caf\u00e9 key", "caf\u00e9",
    "Authorization", "authorizatio", "sk_", "gsk_", "s k-",
])
def test_the_fast_trigger_agrees_with_the_regex(text: str) -> None:
    from server.vault.redact import _TRIGGER, _triggered
    assert _triggered(text) is (_TRIGGER.search(text) is not None)


def test_the_redactor_rechecks_a_clean_value_once_a_secret_is_registered() -> None:
    # A value logged unchanged is remembered as clean; registering a key that value contains
    # must mask it on the next line (the set of clean values starts over).
    known = KnownSecrets()
    redactor = Redactor(known)
    value = "3f2a9c1e-8b7d-4a6f-9e0c"  # no key shape: only KnownSecrets can mask it
    line = {"event": "rpc", "endpoint": value}
    assert redactor(None, "info", dict(line))["endpoint"] == value
    assert redactor(None, "info", dict(line))["endpoint"] == value  # from the clean set
    known.add(value)
    assert redactor(None, "info", dict(line))["endpoint"] == REDACTED


def test_known_secrets_mask_a_known_token_among_tokens_of_other_lengths() -> None:
    known = KnownSecrets()
    known.add("Qx7pLm2Rt9Vz")  # 12 characters, no key shape
    out = known.mask("ids llm_1461ef5f5f94b673245f Qx7pLm2Rt9Vz Qx7pLm2Rt9V Qx7pLm2Rt9Vzz")
    assert out == "ids llm_1461ef5f5f94b673245f [REDACTED] Qx7pLm2Rt9V Qx7pLm2Rt9Vzz"
