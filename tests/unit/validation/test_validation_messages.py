"""Messages that used to mislead: each says what to do, in the words of the tool at hand."""

from __future__ import annotations

import dataclasses

import orjson

from server.config import Settings
from server.edge.check_endpoint import POLICY_CHECK, policy_warning
from server.registry.llm import ApiSpec
from server.validation import catalog
from server.validation.admission import judge
from server.validation.report import CheckStatus
from tests.unit.validation._validation_testkit import answered, endpoint

PATH = "/v1/chat/completions"
# LiteLLM's proxy, asked with a key that is not its master key and no database behind it.
NO_DB = orjson.dumps({"error": {"message": "No connected db.", "type": "no_db_connection",
                                "param": None, "code": "400"}})


def test_litellm_no_db_connection_fails_the_key_check_instead_of_passing_it() -> None:
    verdicts = {v.check: v for v in judge(answered(400, NO_DB), endpoint(), PATH)}
    auth = verdicts[catalog.AUTH]
    assert auth.status is CheckStatus.FAIL
    assert "master key" in auth.hint and "no_db_connection" in auth.hint
    assert verdicts[catalog.ROUTE].status is CheckStatus.SKIPPED


def test_a_route_error_on_a_url_of_another_spec_names_the_right_spec() -> None:
    gemini_on_openai_url = dataclasses.replace(endpoint(ApiSpec.GEMINI),
                                               base_url="http://127.0.0.1:8001/v1")
    body = orjson.dumps({"error": {"message": "Invalid URL (POST /v1/models/m:stream)"}})
    verdicts = judge(answered(404, body), gemini_on_openai_url, "/v1/models/m:stream")
    failure = next(v for v in verdicts if v.status is CheckStatus.FAIL)
    assert failure.check == catalog.ROUTE
    assert "OpenAI-compatible" in failure.hint and "--spec" in failure.hint
    assert "generativelanguage" not in failure.hint


def test_a_missing_key_names_the_flag() -> None:
    body = orjson.dumps({"error": {"message": "Missing bearer", "type": "invalid_request_error",
                                   "code": "invalid_api_key"}})
    keyless = dataclasses.replace(endpoint(), api_key=None)  # type: ignore[arg-type]
    failure = next(v for v in judge(answered(401, body), keyless, PATH)
                   if v.status is CheckStatus.FAIL)
    assert "--key" in failure.hint and "set api_key" not in failure.hint


async def test_check_endpoint_warns_when_the_default_server_would_refuse_the_url() -> None:
    warning = await policy_warning("#0", "http://127.0.0.1:8001/v1", Settings())
    assert warning is not None and warning.check == POLICY_CHECK
    assert warning.status is CheckStatus.WARN
    assert "SWITCHBOARD_ALLOW_HTTP_UPSTREAMS" in warning.hint
    admitted = Settings(allow_http_upstreams=True, upstream_allow_cidrs=("127.0.0.0/8",))
    assert await policy_warning("#0", "http://127.0.0.1:8001/v1", admitted) is None
