"""Which admission check a status line and error body fail, with which hint."""

from __future__ import annotations

import pytest

from server.registry.llm import ApiSpec
from server.validation import catalog
from server.validation.admission import judge
from server.validation.catalog import CheckVerdict
from server.validation.report import CheckStatus
from tests.unit.validation._validation_testkit import answered, endpoint, envelope, streamed

OPENAI, GEMINI, GROQ, AZURE = ApiSpec.OPENAI, ApiSpec.GEMINI, ApiSpec.GROQ, ApiSpec.AZURE_OPENAI
PATH = "/v1/chat/completions"


def by_status(verdicts: list[CheckVerdict]) -> dict[CheckStatus, list[str]]:
    out: dict[CheckStatus, list[str]] = {}
    for v in verdicts:
        out.setdefault(v.status, []).append(v.check)
    return out


def only_failure(verdicts: list[CheckVerdict]) -> CheckVerdict:
    assert [v.check for v in verdicts] == list(catalog.ADMISSION)
    failures = [v for v in verdicts if v.status is CheckStatus.FAIL]
    assert len(failures) == 1, verdicts
    assert failures[0].hint
    return failures[0]


@pytest.mark.parametrize(("fixture", "spec", "check", "hint_word"), [
    ("openai/error-401-invalid-api-key.json", OPENAI, catalog.AUTH, "bad key"),
    ("azure/error-401-invalid-key.json", AZURE, catalog.AUTH, "bad key"),
    ("gemini/error-400-api-key-invalid.json", GEMINI, catalog.AUTH, "API_KEY_INVALID"),
    ("openrouter/error-401-no-auth.json", OPENAI, catalog.AUTH, "bad key"),
    ("openai/error-404-model-not-found.json", OPENAI, catalog.MODEL, "unknown model"),
    ("groq/error-404-model-not-found.json", GROQ, catalog.MODEL, "unknown model"),
    ("gemini/error-404-model-not-found.json", GEMINI, catalog.MODEL, "ListModels"),
    ("azure/error-404-deployment-not-found.json", AZURE, catalog.MODEL, "deployment name"),
    ("azure/error-404-resource-not-found.json", AZURE, catalog.ROUTE, "base_url"),
    ("gemini/error-429-quota-retry-info.json", GEMINI, catalog.QUOTA, "quota"),
    ("gemini/error-429-resource-exhausted.json", GEMINI, catalog.QUOTA, "quota"),
    ("openrouter/error-429-upstream-rate-limited.json", OPENAI, catalog.QUOTA, "quota"),
    ("openai/error-400-unsupported-parameter.json", OPENAI, catalog.STATUS, "rejected the "
     "request"),
    ("azure/error-400-content-filter-prompt.json", AZURE, catalog.STATUS, "content filter"),
])
def test_recorded_errors_fail_the_right_stage(fixture: str, spec: ApiSpec, check: str,
                                              hint_word: str) -> None:
    status, headers, body = envelope(fixture)
    verdicts = judge(answered(status, body, headers=headers), endpoint(spec), PATH)
    failure = only_failure(verdicts)
    assert failure.check == check
    assert hint_word in failure.hint


def test_stages_before_a_model_failure_pass_and_later_ones_are_skipped() -> None:
    status, headers, body = envelope("openai/error-404-model-not-found.json")
    verdicts = by_status(judge(answered(status, body, headers=headers), endpoint(), PATH))
    assert verdicts[CheckStatus.PASS] == [catalog.ROUTE, catalog.AUTH, catalog.QUOTA]
    assert verdicts[CheckStatus.SKIPPED] == [catalog.STATUS]


def test_a_rejected_key_does_not_confirm_the_route() -> None:
    status, headers, body = envelope("openai/error-401-invalid-api-key.json")
    verdicts = judge(answered(status, body, headers=headers), endpoint(), PATH)
    assert verdicts[0].status is CheckStatus.SKIPPED and "key" in verdicts[0].observed


def test_a_404_on_the_path_says_where_base_url_usually_ends() -> None:
    body = b'{"error":{"message":"Invalid URL (POST /chat/completions)","type":' \
           b'"invalid_request_error","param":null,"code":null}}'
    ep = endpoint(base_url="http://10.0.0.5:8000")
    failure = only_failure(judge(answered(404, body), ep, "/chat/completions"))
    assert failure.check == catalog.ROUTE
    assert "usually ends in /v1" in failure.hint and "http://10.0.0.5:8000/v1" in failure.hint


@pytest.mark.parametrize("spec", [AZURE, GEMINI])
def test_a_quoted_url_holding_the_model_is_still_a_route_error(spec: ApiSpec) -> None:
    body = b'{"error":{"message":"Invalid URL (POST /x/models/gpt-4o-mini:streamGenerate' \
           b'Content)","type":"invalid_request_error"}}'
    failure = only_failure(judge(answered(404, body), endpoint(spec),
                                 "/x/models/gpt-4o-mini:streamGenerateContent"))
    assert failure.check == catalog.ROUTE


def test_html_and_empty_404s_are_route_errors() -> None:
    page = b"<html><body><h1>404 Not Found</h1></body></html>"
    assert only_failure(judge(answered(404, page, "text/html"), endpoint(), PATH)).check == \
        catalog.ROUTE
    assert only_failure(judge(answered(405, b""), endpoint(), PATH)).check == catalog.ROUTE


def test_an_unknown_model_in_a_litellm_style_400() -> None:
    body = (b'{"error":{"message":"/chat/completions: Invalid model name passed in '
            b'model=gpt-4o-mini. Call `/v1/models` to view available models for your key.",'
            b'"type":"invalid_request_error","param":null,"code":"400"}}')
    assert only_failure(judge(answered(400, body), endpoint(), PATH)).check == catalog.MODEL


def test_insufficient_quota_says_add_credits() -> None:
    body = b'{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota"' \
           b',"code":"insufficient_quota"}}'
    failure = only_failure(judge(answered(429, body), endpoint(), PATH))
    assert failure.check == catalog.QUOTA and "credits" in failure.hint


def test_a_redirect_and_a_website_are_route_errors() -> None:
    redirect = answered(301, b"", "text/html", {"location": "https://api.example.test/v1/"})
    failure = only_failure(judge(redirect, endpoint(), PATH))
    assert failure.check == catalog.ROUTE and "https://api.example.test/v1/" in failure.observed
    site = answered(200, b"<!doctype html><title>Welcome</title>", "text/html")
    assert only_failure(judge(site, endpoint(), PATH)).check == catalog.ROUTE


def test_a_proxy_error_page_is_a_status_failure_naming_the_proxy() -> None:
    page = answered(502, b"<html><center>502 Bad Gateway</center></html>", "text/html",
                    {"server": "cloudflare"})
    verdicts = judge(page, endpoint(), PATH)
    failure = only_failure(verdicts)
    assert failure.check == catalog.STATUS and "cloudflare" in failure.hint
    assert all(v.status is CheckStatus.SKIPPED for v in verdicts if v is not failure)


def test_an_empty_key_rejected_says_set_the_key() -> None:
    status, _headers, body = envelope("openai/error-401-invalid-api-key.json")
    failure = only_failure(judge(answered(status, body), endpoint(key=""), PATH))
    assert "no API key is set" in failure.hint


def test_an_azure_host_registered_as_openai_is_named() -> None:
    status, _headers, body = envelope("azure/error-401-invalid-key.json")
    ep = endpoint(base_url="https://myres.openai.azure.com/openai/deployments/x")
    assert "AZURE_OPENAI" in only_failure(judge(answered(status, body), ep, PATH)).hint


def test_a_200_stream_passes_every_stage() -> None:
    verdicts = judge(streamed(), endpoint(), PATH)
    assert all(v.status is CheckStatus.PASS for v in verdicts)


def test_an_error_object_in_a_200_json_body_is_judged_by_its_own_status() -> None:
    body = b'{"error":{"message":"Invalid API key","type":"auth","code":401}}'
    failure = only_failure(judge(answered(200, body), endpoint(), PATH))
    assert failure.check == catalog.AUTH
