"""Registered LLMs and their endpoints, as the domain sees them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.chat import Generation
from server.secret import Secret


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
    extra_headers: tuple[tuple[str, str], ...] = ()
    # What validation detected (reasoning dialect, tool calling, image input); display only.
    capabilities: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key_hint(self) -> str:
        return self.api_key.hint


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """Per-LLM routing knobs."""

    hedging_enabled: bool = True
    failover_after_first_token: bool = True


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
