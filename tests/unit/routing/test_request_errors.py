"""Issue 19: an error caused by the request never takes an endpoint offline.

llama.cpp answers an image sent to a text-only model with ``500 image input is not
supported``; it used to count as a server error, be retried on the same endpoint and open the
breaker, so every caller's next plain turn failed with ``all_unavailable``.
"""

from __future__ import annotations

import orjson
import pytest

from server.providers.base import ErrorKind, UpstreamError
from server.providers.errors import classify_http_error
from server.routing.breaker import CircuitState
from server.routing.route_plan import Reason, StopReason
from server.routing.router import Router

from .conftest import MakeLlm

LLAMA_IMAGE_500 = {"error": {"code": 500, "type": "server_error", "message": (
    "image input is not supported - hint: if this is unexpected, you may need to provide the "
    "mmproj")}}


def _classify(status: int, body: object) -> UpstreamError:
    return classify_http_error(status, {}, orjson.dumps(body), label="The endpoint")


@pytest.mark.parametrize(("status", "body"), [
    (500, LLAMA_IMAGE_500),
    (501, {"error": {"code": 501, "type": "not_supported_error", "message": "not supported"}}),
    (500, {"error": {"code": 500, "type": "server_error",
                     "message": "tools param requires --jinja flag"}}),
    (400, {"error": {"message": "Invalid content type. image_url is only supported by certain "
                                "models.", "type": "invalid_request_error"}}),
])
def test_errors_naming_the_request_are_unsupported_input(status: int, body: object) -> None:
    error = _classify(status, body)
    assert error.kind is ErrorKind.UNSUPPORTED_INPUT
    assert error.failover_helps  # another endpoint may have the capability


def test_a_plain_500_is_still_a_server_error() -> None:
    assert _classify(500, {"error": {"message": "internal error"}}).kind is ErrorKind.SERVER_ERROR


def _fail(router: Router, eid: str, error: UpstreamError) -> None:
    attempt = router.admit(eid)
    assert attempt
    attempt.failed(error)


@pytest.mark.parametrize("kind", [ErrorKind.UNSUPPORTED_INPUT, ErrorKind.BAD_REQUEST,
                                  ErrorKind.NOT_FOUND])
def test_request_caused_errors_never_open_the_circuit(router: Router, make_llm: MakeLlm,
                                                      kind: ErrorKind) -> None:
    llm = make_llm("solo")
    for _ in range(10):
        _fail(router, "solo", UpstreamError(kind, "simulated"))
    health = router.snapshot("solo")
    assert health.state is CircuitState.CLOSED and health.consecutive_failures == 0
    assert router.plan(llm, 100).endpoint_ids == ("solo",)


def test_unsupported_input_is_never_retried_on_the_same_endpoint(router: Router,
                                                                make_llm: MakeLlm) -> None:
    error = _classify(500, LLAMA_IMAGE_500)
    solo = make_llm("solo")
    _fail(router, "solo", error)
    nxt = router.next_after(solo, 100, "solo", error, ["solo"])
    assert nxt.candidates == () and nxt.stop is StopReason.NOT_RETRYABLE
    pair = make_llm("text", "vision")
    _fail(router, "text", error)
    nxt = router.next_after(pair, 100, "text", error, ["text"])
    assert nxt.endpoint_ids == ("vision",)
    assert all(c.reason is not Reason.RETRY for c in nxt.candidates)


def test_a_transient_error_retries_the_same_endpoint_as_retry(router: Router,
                                                              make_llm: MakeLlm) -> None:
    error = UpstreamError(ErrorKind.SERVER_ERROR, "simulated")
    _fail(router, "solo", error)
    nxt = router.next_after(make_llm("solo"), 100, "solo", error, ["solo"])
    assert [c.reason for c in nxt.candidates] == [Reason.RETRY]
