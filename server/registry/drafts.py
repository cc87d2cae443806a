"""LLM drafts (what a caller asks to register or change) and their field-by-field checks.

The edge translates protos into drafts; ``check_draft`` raises INVALID_ARGUMENT with one
field violation per problem before anything is sealed or stored (``RegistryService``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from server.chat import Generation
from server.errors import Violations
from server.registry.llm import ApiSpec, Endpoint, HeaderValue, Llm, RoutingPolicy
from server.secret import Secret
from server.vault.redact import scrub

MAX_ENDPOINTS = 16
UPDATABLE = frozenset({"display_name", "endpoints", "generation", "routing"})


@dataclass(frozen=True, slots=True)
class EndpointDraft:
    id: str
    api_spec: ApiSpec | None  # None: unset or unknown (``api_spec_raw`` says which)
    base_url: str
    model: str
    api_key: Secret | None
    api_spec_raw: int = 0
    api_version: str = ""
    label: str = ""
    priority: int = 0
    context_window_tokens: int = 0
    continues_partial_answer: bool | None = None  # declared; None: what validation detected
    # (name, value): a ``Secret`` for a secret header, None for "keep the stored value".
    extra_headers: tuple[tuple[str, HeaderValue | None], ...] = ()

    def destination(self) -> tuple[str, str, str] | None:
        """``Endpoint.destination`` of the endpoint this draft describes (None: no api spec)."""
        if self.api_spec is None:
            return None
        deployment = self.model.strip() if self.api_spec is ApiSpec.AZURE_OPENAI else ""
        return (self.api_spec.value, self.base_url.strip().rstrip("/"), deployment)


@dataclass(frozen=True, slots=True)
class LlmDraft:
    display_name: str
    endpoints: tuple[EndpointDraft, ...]
    generation: Generation = field(default_factory=Generation)
    policy: RoutingPolicy = field(default_factory=RoutingPolicy)
    etag: str = ""


UrlGuard = Callable[[str, str], Awaitable[None]]  # (url, field path) -> raises InvalidArgument


def check_generation(g: Generation, path: str, v: Violations) -> None:
    if g.temperature is not None and not 0 <= g.temperature <= 2:
        v.add(f"{path}.temperature", "must be between 0 and 2")
    if g.top_p is not None and not 0 < g.top_p <= 1:
        v.add(f"{path}.top_p", "must be greater than 0 and at most 1")
    if g.max_output_tokens is not None and g.max_output_tokens <= 0:
        v.add(f"{path}.max_output_tokens", "must be positive")
    if len(g.stop) > 4:
        v.add(f"{path}.stop_sequences", "at most 4 stop sequences are allowed")


# RFC 9110 token characters: what a header name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DESTINATION_PARTS = ("api_spec", "base_url", "model (the Azure deployment)")


def _bad_host(host: str) -> str:
    """What is wrong with a URL's host name as DNS sees it ("" if nothing)."""
    if host.startswith("[") or ":" in host or host.replace(".", "").isdigit():
        return ""  # an IP literal: the network guard checks it
    if len(host.rstrip(".")) > 253:
        return "the host name is longer than 253 characters, which DNS does not allow"
    for label in host.rstrip(".").split("."):
        if not label:
            return "the host name has an empty label (two dots in a row)"
        try:
            encoded = label.encode("idna")
        except UnicodeError:
            return (f"the host name label {label[:70]!r} is not a valid DNS label (at most 63 "
                    "characters of letters, digits and hyphens)")
        if len(encoded) > 63:
            return f"the host name label {label[:70]!r}... is over 63 characters, the DNS limit"
    return ""


def _control(value: str) -> str:
    """What is wrong with a value sent in an HTTP header ("" if nothing)."""
    if any(c in value for c in "\r\n\x00"):
        return "must not contain CR, LF or NUL characters (they would end the HTTP header)"
    return ""


def _moved(e: EndpointDraft, old: Endpoint) -> str:
    """Which part of where ``old``'s secrets are sent the draft changes ("" if none)."""
    new = e.destination()
    if new is None:
        return ""
    for part, was, now in zip(_DESTINATION_PARTS, old.destination, new, strict=True):
        if was != now:
            return part
    return ""


def _check_secrets(e: EndpointDraft, path: str, v: Violations, old: Endpoint | None) -> None:
    """Keys and headers: no control characters; a stored secret is kept only where it was
    stored, so a change of where the endpoint's requests go needs every secret given again."""
    moved = _moved(e, old) if old is not None else ""
    if e.api_key is not None and (why := _control(e.api_key.reveal())):
        v.add(f"{path}.api_key", why)
    if old is None and e.api_key is None:
        v.add(f"{path}.api_key", "is required for a new endpoint (use an empty string only "
              "for servers without authentication)")
    elif old is not None and e.api_key is None and old.api_key and moved:
        v.add(f"{path}.api_key", f"must be given again because {moved} changed: the stored key "
              f"({old.key_hint}) is only sent where it was registered")
    for j, (name, value) in enumerate(e.extra_headers):
        hp = f"{path}.extra_headers[{j}]"
        if not _TOKEN.fullmatch(name):
            v.add(f"{hp}.name", "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)")
        if value is not None:
            text = value.reveal() if isinstance(value, Secret) else value
            if why := _control(text):
                v.add(f"{hp}.value", why)
            continue
        stored = old.stored_header(name) if old is not None else None
        if stored is None:
            v.add(f"{hp}.value", "is required: this endpoint has no stored header "
                  f"{name[:100]!r} whose value an empty one would keep")
        elif isinstance(stored, Secret) and moved:
            v.add(f"{hp}.value", f"must be given again because {moved} changed: the stored "
                  f"value ({stored.hint}) is only sent where it was registered")


def _check_endpoint(e: EndpointDraft, path: str, v: Violations, old: Endpoint | None) -> None:
    if e.api_spec is None:
        if e.api_spec_raw:
            v.add(f"{path}.api_spec", f"unknown api spec {e.api_spec_raw}; use "
                  "API_SPEC_OPENAI, API_SPEC_AZURE_OPENAI, API_SPEC_GEMINI or API_SPEC_GROQ")
        else:
            v.add(f"{path}.api_spec", "is required: API_SPEC_OPENAI, API_SPEC_AZURE_OPENAI, "
                  "API_SPEC_GEMINI or API_SPEC_GROQ (self-hosted servers speak OPENAI)")
    parts = urlsplit(e.base_url.strip())
    if not e.base_url:
        v.add(f"{path}.base_url", "is required, for example https://api.openai.com/v1")
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        v.add(f"{path}.base_url", f"{scrub(e.base_url[:100])!r} is not an http(s) URL with a host, "
              "for example https://api.openai.com/v1")
    elif parts.query or parts.fragment:
        v.add(f"{path}.base_url", "must not carry a query or fragment; put keys in api_key")
    elif why := _bad_host(parts.hostname):
        v.add(f"{path}.base_url", why)
    if not e.model.strip():
        what = "the deployment name" if e.api_spec is ApiSpec.AZURE_OPENAI else "the model name"
        v.add(f"{path}.model", f"is required: {what}")
    if (
        e.api_spec is ApiSpec.AZURE_OPENAI
        and not e.api_version
        and not e.base_url.rstrip("/").endswith("/openai/v1")
    ):
        v.add(f"{path}.api_version", "is required for Azure deployment URLs, e.g. 2024-10-21")
    _check_secrets(e, path, v, old)
    if e.priority < 0:
        v.add(f"{path}.priority", "must be 0 or more (lower is preferred)")
    if e.context_window_tokens < 0:
        v.add(f"{path}.context_window_tokens", "must be 0 (unknown) or more")


def check_draft(draft: LlmDraft, existing: Llm | None, fields: frozenset[str]) -> None:
    """Raises InvalidArgument with every field violation of ``draft`` (only ``fields``)."""
    v = Violations()
    if "display_name" in fields:
        if not draft.display_name.strip():
            v.add("llm.display_name", "is required")
        elif len(draft.display_name) > 200:
            v.add("llm.display_name", "must be at most 200 characters")
        elif "\x00" in draft.display_name:
            v.add("llm.display_name", "must not contain NUL (U+0000) characters")
    if "endpoints" in fields:
        if not draft.endpoints:
            v.add("llm.endpoints", "at least one endpoint is required")
        elif len(draft.endpoints) > MAX_ENDPOINTS:
            v.add("llm.endpoints", f"at most {MAX_ENDPOINTS} endpoints are allowed")
        for i, e in enumerate(draft.endpoints):
            old = existing.endpoint(e.id) if existing and e.id else None
            _check_endpoint(e, f"llm.endpoints[{i}]", v, old)
    if "generation" in fields:
        check_generation(draft.generation, "llm.generation", v)
    v.raise_if_any()
