"""Judges the status line and error body of the first streaming request.

A provider processes a request in stages, and the answer shows how far it got: the route
(404 on the path, 405, a redirect, an HTML page), the key (401/403, Gemini's 400
API_KEY_INVALID), the quota (429/402), the model or deployment (a 404 or 400 about the
model), and anything else (400 for a field, 5xx). The failing stage FAILs with a hint for
that stage; earlier stages the answer proves PASS; the others are SKIPPED with the reason.
Error bodies are classified by ``server.providers.errors``, the same code conversations use.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import orjson

from server.providers.adapters import adapter_for
from server.providers.base import ErrorKind, UpstreamError
from server.providers.errors import ErrorFields, error_fields
from server.registry.llm import ApiSpec, Endpoint
from server.validation.catalog import (
    ADMISSION,
    AUTH,
    MODEL,
    QUOTA,
    ROUTE,
    STATUS,
    CheckVerdict,
    failed,
    passed,
    skipped,
)
from server.validation.exchange import Exchange
from server.vault.redact import quote

_MODEL_CODES = frozenset({"model_not_found", "deploymentnotfound", "invalid_model"})
_ROUTE_WORDS = ("invalid url", "unknown url", "unrecognized request url", "no route",
                "method not found", "not a valid endpoint", "unknown endpoint")
_MODEL_WORDS = ("not found", "does not exist", "invalid model", "unknown model", "no model",
                "not supported")


def judge(ex: Exchange, endpoint: Endpoint, path: str) -> list[CheckVerdict]:
    """Verdicts for the ``ADMISSION`` checks, in order. ``path`` is the request's path."""
    if ex.status == 0:
        return _no_response(ex)
    if 300 <= ex.status < 400:
        where = quote(ex.headers.get("location", "an unnamed location"), 120)
        return _stage(ROUTE, f"HTTP {ex.status}: a redirect to {where}", (
            "register the URL the server redirects to (often https:// instead of http://, or a "
            "missing or extra path segment): Switchboard does not follow redirects, which can "
            "drop the request body or send the key elsewhere"), proven=False)
    if ex.ok and "html" in ex.mime:
        return _stage(ROUTE, f"HTTP {ex.status} with an HTML page instead of an API answer "
                      f"to POST {path}", _route_hint(endpoint), proven=False)
    adapter = adapter_for(endpoint.api_spec)
    if ex.ok:
        fields = None if ex.streamed else _fields(ex.body)
        if fields is None or not _is_error_body(ex.body):
            return _all_passed(ex, endpoint, path)
        # Some proxies answer errors with 200 and an error object: judge its own status.
        status = fields.embedded_status or ex.status
        return _error(ex, endpoint, path, adapter.classify_error(status, ex.headers, ex.body),
                      status)
    err = adapter.classify_error(ex.status, ex.headers, ex.body)
    return _error(ex, endpoint, path, err, ex.status)


def _no_response(ex: Exchange) -> list[CheckVerdict]:
    failure = ex.failure
    message = failure.message if failure else "no response"
    if failure is not None and failure.timed_out and failure.phase == "headers":
        return [skipped(c, f"no response ({message})") for c in ADMISSION]
    hint = ("the server closed the connection or answered in a way that is not HTTP/1.1: check "
            "that base_url points at the API (right scheme and port) and look at the server's "
            "logs")
    return _stage(STATUS, message, hint, proven=False)


def _all_passed(ex: Exchange, endpoint: Endpoint, path: str) -> list[CheckVerdict]:
    key = ("the key was accepted" if endpoint.api_key
           else "no key is set and the server asked for none")
    return [
        passed(ROUTE, f"POST {path} answered HTTP {ex.status}"),
        passed(AUTH, key),
        passed(QUOTA, "the request was admitted"),
        passed(MODEL, f"{_model_word(endpoint)} {endpoint.model!r} answered"),
        passed(STATUS, f"HTTP {ex.status}"),
    ]


def _is_error_body(body: bytes) -> bool:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and bool(obj.get("error"))


def _stage(failing: str, observed: str, hint: str, *, proven: bool,
           why_unproven: str = "") -> list[CheckVerdict]:
    """``failing`` FAILs; earlier stages PASS when ``proven`` (else SKIPPED); later SKIPPED."""
    out: list[CheckVerdict] = []
    reached = False
    for name in ADMISSION:
        if name == failing:
            out.append(failed(name, observed, hint))
            reached = True
        elif reached:
            out.append(skipped(name, f"not reached: {failing} failed"))
        elif proven:
            out.append(passed(name, f"the server got past this stage to {failing}"))
        else:
            out.append(skipped(name, why_unproven or f"not confirmed: {failing} failed first"))
    return out


def _error(ex: Exchange, endpoint: Endpoint, path: str, err: UpstreamError,
           status: int) -> list[CheckVerdict]:
    fields = _fields(ex.body)
    observed = err.message if ex.status == status else f"HTTP {ex.status}: {err.message}"
    if status in (404, 405) or err.kind is ErrorKind.NOT_FOUND or (
        status in (400, 422) and _names_model(fields, endpoint, path, strict=True)
    ):
        if status != 405 and _names_model(fields, endpoint, path, strict=status != 404):
            return _stage(MODEL, observed, _model_hint(endpoint), proven=True)
        return _stage(ROUTE, f"HTTP {status} to POST {path}: {err.message}",
                      _route_hint(endpoint), proven=False)
    if _is_litellm_key_refusal(fields):
        return _stage(AUTH, observed, (
            "LiteLLM refused the key: it is not the proxy's master key, and the proxy has no "
            "database to look up virtual keys (no_db_connection). Use the proxy's master key "
            "or a virtual key it issued, or connect LiteLLM to its database"), proven=False,
            why_unproven="not confirmed: the proxy checks the key before the route")
    if err.kind is ErrorKind.AUTHENTICATION:
        return _stage(AUTH, observed, _auth_hint(endpoint, status, err), proven=False,
                      why_unproven="not confirmed: servers check the key before the route")
    if err.kind in (ErrorKind.RATE_LIMITED, ErrorKind.QUOTA_EXHAUSTED):
        out = _stage(QUOTA, observed, _quota_hint(err), proven=False,
                     why_unproven="not confirmed: the request was refused before routing")
        out[1] = passed(AUTH, "the key is recognised; the account is limited")
        return out
    return _stage(STATUS, observed, _status_hint(err, ex), proven=fields is not None,
                  why_unproven=f"not confirmed: HTTP {status} came without a JSON error body")


def _is_litellm_key_refusal(fields: ErrorFields | None) -> bool:
    """LiteLLM's answer to a key that is not its master key when it has no database: a 400
    (or 401) ``no_db_connection``, which says nothing about the route, quota or model."""
    if fields is None:
        return False
    words = {w.lower() for w in (fields.code, fields.type, *fields.reasons) if w}
    return "no_db_connection" in words or "no connected db" in fields.message.lower()


def _fields(body: bytes) -> ErrorFields | None:
    try:
        return error_fields(orjson.loads(body)) if body.strip() else None
    except orjson.JSONDecodeError:
        return None


def _names_model(fields: ErrorFields | None, endpoint: Endpoint, path: str, *,
                 strict: bool) -> bool:
    """Whether an error body is about the model or deployment rather than the path."""
    if fields is None:
        return False
    words = {w.lower() for w in (fields.code, fields.type, *fields.reasons) if w}
    if words & _MODEL_CODES:
        return True
    # The path holds the model on Azure and Gemini: a quoted URL names it, yet is a route error.
    message = fields.message.lower().replace(path.split("?", 1)[0].lower(), "")
    if any(w in message for w in _ROUTE_WORDS):
        return False
    named = bool(endpoint.model) and endpoint.model.lower() in message
    about = "model" in message or "deployment" in message
    if strict:
        return named and about and any(w in message for w in _MODEL_WORDS)
    return named or about


def _model_word(endpoint: Endpoint) -> str:
    return "deployment" if endpoint.api_spec is ApiSpec.AZURE_OPENAI else "model"


def _route_hint(endpoint: Endpoint) -> str:
    """What to fix when the spec's path is not a route of the server. A server whose base_url
    looks like another spec's (an OpenAI-style /v1 URL registered as Gemini) most likely
    speaks that spec: say so first, rather than suggest another provider's URL."""
    base = endpoint.base_url.rstrip("/")
    likely = _likely_spec(base)
    if likely is not None and likely is not endpoint.api_spec:
        return (f"this base_url looks like one of the {_SPEC_NAMES[likely]} API, but the "
                f"endpoint is registered as {_SPEC_NAMES[endpoint.api_spec]}: choose the spec "
                f"the server speaks (check-endpoint --spec, llm create spec=: "
                f"{_SPEC_FLAGS[likely]})")
    if endpoint.api_spec is ApiSpec.AZURE_OPENAI:
        return ("check base_url: use https://<resource>.openai.azure.com (Switchboard adds "
                "/openai/deployments/<deployment>/chat/completions?api-version=...) or the v1 "
                "route https://<resource>.openai.azure.com/openai/v1")
    if endpoint.api_spec is ApiSpec.GEMINI:
        return ("check base_url: use https://generativelanguage.googleapis.com/v1beta; "
                "Switchboard adds /models/<model>:streamGenerateContent?alt=sse")
    if endpoint.api_spec is ApiSpec.GROQ:
        return "check base_url: for Groq it is https://api.groq.com/openai/v1"
    suggestion = "" if base.endswith("/v1") else f" (try {base}/v1)"
    return ("check base_url: for OpenAI-compatible servers it usually ends in /v1"
            f"{suggestion}; Switchboard appends /chat/completions")


_SPEC_NAMES = {ApiSpec.OPENAI: "OpenAI-compatible", ApiSpec.AZURE_OPENAI: "Azure OpenAI",
               ApiSpec.GEMINI: "Gemini", ApiSpec.GROQ: "Groq"}
_SPEC_FLAGS = {ApiSpec.OPENAI: "openai", ApiSpec.AZURE_OPENAI: "azure",
               ApiSpec.GEMINI: "gemini", ApiSpec.GROQ: "groq"}


def _likely_spec(base: str) -> ApiSpec | None:
    """The spec a base URL's shape suggests, or None when it does not tell."""
    host = (urlsplit(base).hostname or "").lower()
    path = urlsplit(base).path.rstrip("/")
    if host.endswith(".openai.azure.com"):
        return ApiSpec.AZURE_OPENAI
    if host == "generativelanguage.googleapis.com" or path.endswith(("/v1beta", "/v1alpha")):
        return ApiSpec.GEMINI
    if host == "api.groq.com":
        return ApiSpec.GROQ
    if path.endswith("/v1") or path.endswith("/openai/v1"):
        return ApiSpec.OPENAI
    return None


def _auth_hint(endpoint: Endpoint, status: int, err: UpstreamError) -> str:
    host = (urlsplit(endpoint.base_url).hostname or "").lower()
    if not endpoint.api_key:
        return ("no API key is set for this endpoint, but the server requires one: give the "
                "provider key (check-endpoint: --key; llm create: key= or key-env= in "
                "--endpoint; the API: the endpoint's api_key field)")
    if host.endswith(".openai.azure.com") and endpoint.api_spec is not ApiSpec.AZURE_OPENAI:
        return ("this is an Azure OpenAI host: register the endpoint with api_spec "
                "AZURE_OPENAI, which sends the key in the api-key header")
    if "api_key_invalid" in err.provider_code.lower() or (
        endpoint.api_spec is ApiSpec.GEMINI and status == 400
    ):
        return ("Gemini rejected the API key (400 API_KEY_INVALID): use a key from Google AI "
                "Studio for the Generative Language API; Vertex AI credentials do not work here")
    if status == 403:
        return ("the key is known but not allowed to use this model or API (403): check the "
                "key's project permissions, that the API is enabled, and region limits")
    return ("bad key: the server rejected the API key (401): check that it is current, copied "
            "whole, and issued by this provider for this project or resource")


def _quota_hint(err: UpstreamError) -> str:
    if err.kind is ErrorKind.QUOTA_EXHAUSTED:
        return ("quota: the account has no credits or quota left; add credits or raise the "
                "quota with the provider, then validate again")
    wait = f" (the provider asks to wait {err.retry_after_s:g}s)" if err.retry_after_s else ""
    return (f"quota: the key is rate-limited right now{wait}; a 429 on a single tiny request "
            "usually means the quota is used up. Wait or raise the limit, then validate again")


def _model_hint(endpoint: Endpoint) -> str:
    model = endpoint.model
    if endpoint.api_spec is ApiSpec.AZURE_OPENAI:
        return (f"deployment {model!r} does not exist on this resource: use the deployment "
                "name (not the model name) shown in Azure AI Foundry; a new deployment can "
                "take a few minutes to appear")
    if endpoint.api_spec is ApiSpec.GEMINI:
        return (f"model {model!r} is unknown to Gemini or does not support "
                "streamGenerateContent: use a name that ListModels returns, e.g. "
                "gemini-2.5-flash")
    return (f"unknown model {model!r}: use a name that GET {endpoint.base_url.rstrip('/')}"
            "/models lists (for vLLM the --served-model-name, for LiteLLM the model_name "
            "of its config)")


def _status_hint(err: UpstreamError, ex: Exchange) -> str:
    if "html" in ex.mime or ex.body.lstrip()[:1] == b"<":
        server = quote(ex.headers.get("server", "a proxy"), 40)
        return (f"{server} answered HTTP {ex.status} with an HTML error page: the API behind it "
                "is down or unreachable, or base_url points at the wrong service")
    hints = {
        ErrorKind.SERVER_ERROR: "the server failed on a minimal request: check its logs and "
        "health, then validate again",
        ErrorKind.BAD_REQUEST: "the endpoint rejected the request Switchboard sends on every "
        "turn (stream: true, stream_options.include_usage and the spec's fields): make the "
        "server accept it, or choose the api_spec the server implements",
        ErrorKind.CONTEXT_LENGTH: "the endpoint says a one-line prompt is too long: check the "
        "model's context size setting (e.g. vLLM --max-model-len)",
        ErrorKind.CONTENT_FILTERED: "the content filter blocked a harmless prompt: check the "
        "content filter configuration of this deployment",
        ErrorKind.TIMEOUT: "the server timed out on a minimal request: check its load",
    }
    return hints.get(err.kind, "the endpoint refused a minimal streaming request: see the "
                     "observed error")
