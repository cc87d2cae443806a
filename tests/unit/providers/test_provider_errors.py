"""The shared error classifier: kinds, retry hints, and messages free of secrets."""

from __future__ import annotations

import json

import pytest

from server.providers.base import ErrorKind, UpstreamError
from server.providers.errors import (
    classify_error_object,
    classify_http_error,
    parse_duration,
    retry_after_seconds,
)
from server.vault.redact import quote


def classify(status: int, body: object, headers: dict[str, str] | None = None) -> UpstreamError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return classify_http_error(status, headers or {}, raw, label="Upstream")


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            401,
            {"error": {"message": "bad key", "code": "invalid_api_key"}},
            ErrorKind.AUTHENTICATION,
        ),
        (403, {"error": {"message": "forbidden"}}, ErrorKind.AUTHENTICATION),
        (
            403,
            {"error": {"message": "Your input was flagged by moderation"}},
            ErrorKind.CONTENT_FILTERED,
        ),
        (404, {"error": {"message": "nope"}}, ErrorKind.NOT_FOUND),
        (
            429,
            {"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
            ErrorKind.RATE_LIMITED,
        ),
        (
            429,
            {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota"}},
            ErrorKind.QUOTA_EXHAUSTED,
        ),
        (
            402,
            {"error": {"message": "Insufficient credits", "code": 402}},
            ErrorKind.QUOTA_EXHAUSTED,
        ),
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 8192 tokens. However...",
                    "code": "context_length_exceeded",
                }
            },
            ErrorKind.CONTEXT_LENGTH,
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 5000,
                    "n_ctx": 4096,
                }
            },
            ErrorKind.CONTEXT_LENGTH,
        ),
        (
            422,
            {
                "error": "Input validation error: `inputs` tokens + `max_new_tokens` "
                "must be <= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`",
                "error_type": "validation",
            },
            ErrorKind.CONTEXT_LENGTH,
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "status": "INVALID_ARGUMENT",
                    "message": "The input token count (1200000) exceeds the maximum number "
                    "of tokens allowed (1048576).",
                }
            },
            ErrorKind.CONTEXT_LENGTH,
        ),
        (
            400,
            {
                "object": "error",
                "message": "bad temperature",
                "type": "BadRequestError",
                "code": 400,
            },
            ErrorKind.BAD_REQUEST,
        ),
        (500, {"error": {"message": "boom", "type": "server_error"}}, ErrorKind.SERVER_ERROR),
        (
            503,
            {
                "error": {
                    "code": 503,
                    "message": "The model is overloaded.",
                    "status": "UNAVAILABLE",
                }
            },
            ErrorKind.SERVER_ERROR,
        ),
        (529, {"error": {"message": "overloaded"}}, ErrorKind.SERVER_ERROR),
        (408, {"error": {"message": "timeout"}}, ErrorKind.TIMEOUT),
    ],
)
def test_kinds(status: int, body: object, kind: ErrorKind) -> None:
    err = classify(status, body)
    assert err.kind is kind, err
    assert err.status == status


def test_html_error_page_is_named_and_actionable() -> None:
    page = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>cloudflare</body></html>"
    err = classify_http_error(502, {"Content-Type": "text/html"}, page, label="Upstream")
    assert err.kind is ErrorKind.SERVER_ERROR
    assert "HTML page (status 502) instead of JSON; check base_url" in err.message
    assert "cloudflare" not in err.message  # no raw body


def test_html_page_on_a_plain_4xx_is_protocol() -> None:
    err = classify_http_error(405, {}, b"<html>Method Not Allowed</html>", label="Upstream")
    assert err.kind is ErrorKind.PROTOCOL


def test_empty_and_plain_text_bodies() -> None:
    assert "empty body" in classify_http_error(500, {}, b"", label="U").message
    err = classify_http_error(400, {}, b"Bad things with key=abc123secret", label="U")
    assert err.kind is ErrorKind.PROTOCOL
    assert "abc123secret" not in err.message


@pytest.mark.parametrize(
    ("headers", "want"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        (
            {
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "1m6.779s",
                "x-ratelimit-remaining-requests": "5",
                "x-ratelimit-reset-requests": "130ms",
            },
            66.779,
        ),
        ({"x-ratelimit-reset-requests": "6s", "x-ratelimit-reset-tokens": "130ms"}, 6.0),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], want: float | None) -> None:
    now = 1445412480.0  # 07:28:00 GMT on that date
    got = retry_after_seconds(headers, status=429, now=now)
    assert got == pytest.approx(want) if want is not None else got is None


def test_retry_after_from_gemini_retry_info_and_azure_message() -> None:
    gemini = {
        "error": {
            "code": 429,
            "message": "quota",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"}
            ],
        }
    }
    assert classify(429, gemini).retry_after_s == pytest.approx(34.4)
    azure = {
        "error": {
            "code": "429",
            "message": "Requests ... have exceeded token rate limit of "
            "your current OpenAI S0 pricing tier. Please retry after 33 seconds.",
        }
    }
    err = classify(429, azure)
    assert err.retry_after_s == 33.0
    assert "retry after 33s" in err.message


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1m6.779s", 66.779),
        ("130ms", 0.13),
        ("34.4s", 34.4),
        ("2h", 7200.0),
        ("3", 3.0),
        ("soon", None),
        ("", None),
        ("1x", None),
    ],
)
def test_parse_duration(text: str, want: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(want) if want is not None else None)


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-abcdefghijklmnop1234",
        "gsk_ABCDEFGHIJKLMNOPQRSTUVWX1234",
        "AIzaSyA-1234567890abcdefghijklmnopqrs",
        "0123456789abcdef0123456789abcdef",  # Azure-style 32 hex
    ],
)
def test_messages_never_carry_keys(secret: str) -> None:
    bodies = [
        {"error": {"message": f"Incorrect API key provided: {secret}.", "code": "invalid_api_key"}},
        {"error": {"message": f"GET https://x.googleapis.com/v1/models?key={secret} failed"}},
        {"error": {"message": f"Authorization: Bearer {secret} rejected"}},
    ]
    for body in bodies:
        err = classify(401, body)
        assert secret not in err.message
    assert secret not in quote(f"api-key: {secret}")


def test_quote_is_truncated() -> None:
    err = classify(400, {"error": {"message": "word " * 500}})
    assert len(err.message) < 500
    assert "…" in err.message


def test_stream_error_objects() -> None:
    groq = {
        "error": {
            "message": "Tool call validation failed",
            "type": "invalid_request_error",
            "code": "tool_use_failed",
            "failed_generation": "{secret stuff}",
            "status_code": 400,
        }
    }
    err = classify_error_object(groq, label="Groq")
    assert err.kind is ErrorKind.STREAM_ERROR
    assert err.status == 400 and err.provider_code == "tool_use_failed"
    assert "secret stuff" not in err.message
    overloaded = {
        "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
    }
    assert classify_error_object(overloaded, label="Gemini").kind is ErrorKind.SERVER_ERROR
    tgi = {"error": {"message": "Request failed during generation", "http_status_code": 422}}
    assert classify_error_object(tgi, label="TGI").kind is ErrorKind.STREAM_ERROR
    assert classify_error_object("garbage", label="X").kind is ErrorKind.STREAM_ERROR


def test_gemini_failed_precondition_can_fail_over() -> None:
    body = {
        "error": {
            "code": 400,
            "message": "User location is not supported for the API use.",
            "status": "FAILED_PRECONDITION",
        }
    }
    err = classify(400, body)
    assert err.kind is ErrorKind.BAD_REQUEST and err.failover_helps
    assert not classify(400, {"error": {"message": "bad", "code": 400}}).failover_helps
