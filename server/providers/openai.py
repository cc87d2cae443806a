"""ApiSpec.OPENAI: api.openai.com and every OpenAI-compatible server (vLLM, Ollama /v1, TGI,
llama.cpp, DeepSeek, OpenRouter, Z.ai, ...).

URL: ``POST {base_url}/chat/completions`` (a base_url that already ends in
``/chat/completions`` is used as is). Auth: ``Authorization: Bearer <key>``, omitted when the
endpoint has no key (local servers).

Output cap: ``max_completion_tokens`` on api.openai.com (its reasoning models reject
``max_tokens``); ``max_tokens`` everywhere else, because OpenAI-compatible servers (TGI,
Ollama, DeepSeek, older vLLM and llama.cpp) understand only the older name.
``reasoning_effort`` is sent as is (``none``/``low``/``medium``/``high``) when requested.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from server.chat import ChatRequest
from server.providers import openai_request
from server.providers._common import JSON_HEADERS, dumps, join_url, with_extra_headers
from server.providers.base import HttpRequest, StreamDecoder, UpstreamError
from server.providers.errors import classify_http_error
from server.providers.openai_stream import OpenAIChatDecoder
from server.registry.llm import Endpoint

_CHAT_PATH = "/chat/completions"


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith(_CHAT_PATH) else join_url(base, _CHAT_PATH)


def is_openai_host(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "api.openai.com" or host.endswith(".api.openai.com")


def bearer_headers(endpoint: Endpoint) -> dict[str, str]:
    headers = dict(JSON_HEADERS)
    key = endpoint.api_key.reveal()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return with_extra_headers(endpoint, headers)



def continue_final_message(body: dict[str, Any], endpoint: Endpoint) -> None:
    """Marks the final assistant message as one to continue, in the endpoint's dialect:
    llama.cpp, Groq and Ollama continue a final assistant message as it is; vLLM needs
    ``continue_final_message`` (``prefill_dialect`` = ``continue_final_message``) and DeepSeek
    ``prefix: true`` on the message (``prefix``)."""
    dialect = endpoint.capabilities.prefill_dialect
    if dialect == "continue_final_message":
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    elif dialect == "prefix":
        body["messages"][-1]["prefix"] = True

class OpenAIAdapter:
    """``ProviderAdapter`` for ApiSpec.OPENAI."""

    label = "The OpenAI-compatible upstream"

    def build_request(self, endpoint: Endpoint, request: ChatRequest) -> HttpRequest:
        native = is_openai_host(endpoint.base_url)
        body = openai_request.body(
            request,
            model=endpoint.model,
            max_tokens_field="max_completion_tokens" if native else "max_tokens",
        )
        effort = request.generation.reasoning_effort
        if effort is not None:
            body["reasoning_effort"] = effort.value
        if request.continues_answer:
            continue_final_message(body, endpoint)
        return HttpRequest(chat_url(endpoint.base_url), bearer_headers(endpoint), dumps(body))

    def new_decoder(self) -> StreamDecoder:
        return OpenAIChatDecoder(self.label)

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return classify_http_error(status, headers, body, label=self.label)
