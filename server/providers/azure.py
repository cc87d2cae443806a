"""ApiSpec.AZURE_OPENAI.

URLs (base_url as registered):
* ``https://{resource}.openai.azure.com`` (optionally ending in ``/openai``): the deployment
  route ``{base}/openai/deployments/{endpoint.model}/chat/completions?api-version=V`` where
  ``endpoint.model`` is the deployment name and V is ``endpoint.api_version`` (default
  ``DEFAULT_API_VERSION``); no ``model`` in the body.
* ``https://{resource}.openai.azure.com/openai/v1``: the v1 route ``{base}/chat/completions``
  with ``model`` (the deployment name) in the body and no api-version.

Auth: ``api-key: <key>`` (omitted when empty, e.g. an Entra token passed in extra_headers).
Output cap: ``max_completion_tokens`` (reasoning deployments reject ``max_tokens``), except
for api-versions older than 2024-09-01, which only know ``max_tokens``.
The stream is OpenAI's plus a leading ``prompt_filter_results`` event and per-choice filter
annotations (both ignored); ``finish_reason: content_filter`` -> ``FinishReason.CONTENT_FILTER``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from server.chat import ChatRequest
from server.providers import openai_request
from server.providers._common import JSON_HEADERS, dumps, with_extra_headers
from server.providers.base import HttpRequest, StreamDecoder, UpstreamError
from server.providers.errors import classify_http_error
from server.providers.openai_stream import OpenAIChatDecoder
from server.registry.llm import Endpoint

DEFAULT_API_VERSION = "2024-10-21"
_FIRST_MAX_COMPLETION_VERSION = "2024-09-01"


def azure_url(endpoint: Endpoint) -> tuple[str, bool]:
    """(URL, whether it is the v1 route)."""
    base = endpoint.base_url.rstrip("/")
    if base.endswith("/openai/v1"):
        return base + "/chat/completions", True
    base = base.removesuffix("/openai")
    version = endpoint.api_version or DEFAULT_API_VERSION
    deployment = quote(endpoint.model, safe="")
    return (
        f"{base}/openai/deployments/{deployment}/chat/completions"
        f"?api-version={quote(version, safe='')}",
        False,
    )


class AzureOpenAIAdapter:
    """``ProviderAdapter`` for ApiSpec.AZURE_OPENAI."""

    label = "Azure OpenAI"

    def build_request(self, endpoint: Endpoint, request: ChatRequest) -> HttpRequest:
        url, v1 = azure_url(endpoint)
        old = not v1 and (endpoint.api_version or DEFAULT_API_VERSION)[:10] < (
            _FIRST_MAX_COMPLETION_VERSION
        )
        body = openai_request.body(
            request,
            model=endpoint.model if v1 else "",
            max_tokens_field="max_tokens" if old else "max_completion_tokens",
        )
        effort = request.generation.reasoning_effort
        if effort is not None:
            body["reasoning_effort"] = effort.value
        headers = dict(JSON_HEADERS)
        key = endpoint.api_key.reveal()
        if key:
            headers["api-key"] = key
        return HttpRequest(url, with_extra_headers(endpoint, headers), dumps(body))

    def new_decoder(self) -> StreamDecoder:
        return OpenAIChatDecoder(self.label)

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return classify_http_error(status, headers, body, label=self.label)
