"""Domain errors -> OpenAI's JSON error shape and the HTTP status the OpenAI SDKs expect.

``{"error": {"message", "type", "param", "code"}}``: the SDK raises ``BadRequestError`` (400),
``AuthenticationError`` (401), ``PermissionDeniedError`` (403), ``NotFoundError`` (404),
``RateLimitError`` (429), ``InternalServerError`` (5xx). Statuses follow Google's mapping of
gRPC codes to HTTP, as the gRPC edge's codes do. ``Retry-After`` (and ``retry-after-ms``) come
from the error's retry hint; the SDKs honour them when they retry 429 and 5xx. ``code`` is the
OpenAI code where one exists (``model_not_found``, ``invalid_api_key``,
``context_length_exceeded``...), else the Switchboard ErrorInfo reason in lower case.
Messages are the domain's own (actionable, secret-free); anything unexpected becomes a 500
that only names the request id.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from server.errors import SwitchboardError

STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_TYPES = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
          429: "rate_limit_error"}
_OPENAI_CODES = {
    "LLM_NOT_FOUND": "model_not_found",
    "API_KEY_INVALID": "invalid_api_key",
    "MISSING_API_KEY": "invalid_api_key",
    "MALFORMED_AUTHORIZATION": "invalid_api_key",
    "CONTEXT_LENGTH_EXCEEDED": "context_length_exceeded",
    "CONTENT_FILTERED": "content_filter",
    "TOO_MANY_STREAMS": "rate_limit_exceeded",
}


def _type(status: int) -> str:
    if status >= 500:
        return "server_error"
    return _TYPES.get(status, "invalid_request_error")


def error_body(error: BaseException, request_id: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, ``{"error": {...}}``) for ``error``."""
    if not isinstance(error, SwitchboardError):
        return 500, {"error": {
            "message": f"internal error; quote request id {request_id} when reporting it",
            "type": "server_error", "param": None, "code": "internal"}}
    status = 408 if error.reason == "REQUEST_TIMEOUT" else STATUS.get(error.code, 500)
    param = error.violations[0].field if error.violations else None
    if param is None and error.reason == "LLM_NOT_FOUND":
        param = "model"
    code = _OPENAI_CODES.get(error.reason, error.reason.lower())
    return status, {"error": {"message": error.message, "type": _type(status), "param": param,
                              "code": code}}


def error_headers(error: BaseException) -> dict[str, str]:
    """Retry hints for the SDKs' retry logic."""
    retry = error.retry_after_s if isinstance(error, SwitchboardError) else None
    if retry is None or not math.isfinite(retry) or retry < 0:
        return {}
    return {"Retry-After": str(max(1, math.ceil(retry))),
            "retry-after-ms": str(max(1, round(retry * 1000)))}


def error_json(error: BaseException, request_id: str) -> tuple[int, bytes]:
    status, body = error_body(error, request_id)
    return status, orjson.dumps(body)
