"""ApiSpec.GEMINI (Generative Language API, native).

URL: ``POST {base_url}/models/{model}:streamGenerateContent?alt=sse`` (base like
``https://generativelanguage.googleapis.com/v1beta``; a leading ``models/`` in the model name
is tolerated). Without ``alt=sse`` Gemini streams one JSON array instead of SSE, so it is
always sent. Auth: ``x-goog-api-key`` header, never ``?key=`` (URLs end up in logs).
Request translation: ``gemini_request``; stream decoding: ``gemini_stream``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from server.chat import ChatRequest
from server.providers import gemini_request
from server.providers._common import JSON_HEADERS, dumps, join_url, with_extra_headers
from server.providers.base import HttpRequest, StreamDecoder, UpstreamError
from server.providers.errors import classify_http_error
from server.providers.gemini_stream import GeminiDecoder
from server.registry.llm import Endpoint


def gemini_url(endpoint: Endpoint) -> str:
    model = quote(endpoint.model.removeprefix("models/"), safe="-._~/")
    return join_url(endpoint.base_url, f"/models/{model}:streamGenerateContent?alt=sse")


class GeminiAdapter:
    """``ProviderAdapter`` for ApiSpec.GEMINI."""

    label = "Gemini"

    def build_request(self, endpoint: Endpoint, request: ChatRequest) -> HttpRequest:
        headers = dict(JSON_HEADERS)
        key = endpoint.api_key.reveal()
        if key:
            headers["x-goog-api-key"] = key
        return HttpRequest(
            gemini_url(endpoint),
            with_extra_headers(endpoint, headers),
            dumps(gemini_request.body(request)),
        )

    def new_decoder(self) -> StreamDecoder:
        return GeminiDecoder()

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return classify_http_error(status, headers, body, label=self.label)
