"""ApiSpec.GROQ: ``POST {base_url}/chat/completions`` (base ``https://api.groq.com/openai/v1``)
with ``Authorization: Bearer gsk_...``.

The body is OpenAI's with ``max_completion_tokens`` (Groq's current name; ``max_tokens`` is
deprecated there). Reasoning controls, sent only when a reasoning effort is requested, because
Groq rejects ``reasoning_format`` on non-reasoning models with a 400:
* gpt-oss: ``reasoning_effort`` low/medium/high (NONE -> ``low``: it cannot turn reasoning off);
  reasoning already streams parsed in ``delta.reasoning``, so no ``reasoning_format``.
* qwen3: ``reasoning_effort`` ``none`` (NONE) or ``default``, plus ``reasoning_format: parsed``.
* any other model: ``reasoning_format: parsed`` only.
Without a requested effort Groq's default applies (``raw`` for reasoning models: ``<think>``
tags in content, which the decoder splits out; ``parsed`` when tools are present).
Reasoning from earlier turns is never sent back (Groq rejects ``reasoning``/``reasoning_content``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.chat import ChatRequest, ReasoningEffort
from server.providers import openai_request
from server.providers._common import dumps
from server.providers.base import HttpRequest, StreamDecoder, UpstreamError
from server.providers.errors import classify_http_error
from server.providers.openai import bearer_headers, chat_url
from server.providers.openai_stream import OpenAIChatDecoder
from server.registry.llm import Endpoint


def reasoning_fields(model: str, effort: ReasoningEffort | None) -> dict[str, Any]:
    """Groq's reasoning controls for ``model`` at ``effort`` (see the module docstring)."""
    if effort is None:
        return {}
    name = model.lower()
    if "gpt-oss" in name:
        return {"reasoning_effort": "low" if effort is ReasoningEffort.NONE else effort.value}
    if "qwen3" in name or "qwen-3" in name:
        return {
            "reasoning_effort": "none" if effort is ReasoningEffort.NONE else "default",
            "reasoning_format": "parsed",
        }
    return {"reasoning_format": "parsed"}


class GroqAdapter:
    """``ProviderAdapter`` for ApiSpec.GROQ."""

    label = "Groq"

    def build_request(self, endpoint: Endpoint, request: ChatRequest) -> HttpRequest:
        body = openai_request.body(
            request, model=endpoint.model, max_tokens_field="max_completion_tokens"
        )
        body.update(reasoning_fields(endpoint.model, request.generation.reasoning_effort))
        return HttpRequest(chat_url(endpoint.base_url), bearer_headers(endpoint), dumps(body))

    def new_decoder(self) -> StreamDecoder:
        return OpenAIChatDecoder(self.label)

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return classify_http_error(status, headers, body, label=self.label)
