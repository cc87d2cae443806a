"""Registered LLMs and their endpoints, as the domain sees them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from server.chat import Generation
from server.registry.endpoint_capabilities import Capabilities
from server.secret import Secret

# An extra header's value: a plain string, or a ``Secret`` when it was registered as secret
# (sealed at rest like ``api_key``, shown only as a hint, revealed only for the upstream call).
HeaderValue = str | Secret


def header_field(name: str) -> str:
    """The vault field a secret header's value is bound to (its AAD), e.g. ``header:x-api-key``."""
    return "header:" + name.strip().lower()


class ApiSpec(enum.StrEnum):
    OPENAI = "openai"
    AZURE_OPENAI = "azure_openai"
    GEMINI = "gemini"
    GROQ = "groq"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream that can serve an LLM.

    ``api_key`` is the decrypted key (a ``Secret``), present only in memory. ``priority`` is a
    routing tier: lower numbers are preferred; endpoints without one share tier 0.
    ``context_window_tokens`` (0 = unknown) lets the router send a too-long prompt only to an
    endpoint that can take it.
    """

    id: str
    api_spec: ApiSpec
    base_url: str
    model: str
    api_key: Secret
    api_version: str = ""
    label: str = ""
    priority: int = 0
    context_window_tokens: int = 0
    # Declared assistant-prefill support; None: what validation detected (``capabilities``).
    continues_partial_answer: bool | None = None
    extra_headers: tuple[tuple[str, HeaderValue], ...] = ()
    # What validation detected (reasoning dialect, tool calling, image input, ...).
    capabilities: Capabilities = field(default_factory=Capabilities, compare=False, hash=False)

    @property
    def key_hint(self) -> str:
        return self.api_key.hint

    def stored_header(self, name: str) -> HeaderValue | None:
        """The stored value of the header ``name`` (any case): a ``Secret`` or plain text."""
        wanted = name.strip().lower()
        for n, value in self.extra_headers:
            if n.strip().lower() == wanted:
                return value
        return None

    @property
    def continues_answers(self) -> bool:
        """Whether a broken answer may continue here (assistant prefill): declared, else
        detected by validation."""
        if self.continues_partial_answer is not None:
            return self.continues_partial_answer
        return bool(self.capabilities.continues_partial_answer)

    @property
    def destination(self) -> tuple[str, str, str]:
        """Where this endpoint's key and secret headers are sent: a change of any part means
        the stored secrets must be given again (api spec, base URL, Azure deployment)."""
        deployment = self.model if self.api_spec is ApiSpec.AZURE_OPENAI else ""
        return (self.api_spec.value, self.base_url, deployment)


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """Per-LLM routing knobs."""

    hedging_enabled: bool = True
    failover_after_first_token: bool = True
    # After output, only a continuation may take over, never a restart (the OpenAI-compatible
    # front door: its callers cannot take text back). Not part of the stored LLM.
    continue_only_after_output: bool = False


@dataclass(frozen=True, slots=True)
class Llm:
    id: str
    account_id: str
    display_name: str
    endpoints: tuple[Endpoint, ...]
    generation: Generation = field(default_factory=Generation)
    policy: RoutingPolicy = field(default_factory=RoutingPolicy)
    create_time: datetime | None = None
    update_time: datetime | None = None
    etag: str = ""

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.id == endpoint_id), None)
