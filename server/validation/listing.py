"""What an OpenAI-compatible server says about itself: its model list and context window.

``GET {base_url}/models`` lists the model ids a server serves; self-hosted servers add the
window (vLLM ``max_model_len``, Groq ``context_window``, OpenRouter ``context_length``,
llama.cpp ``meta.n_ctx``). llama.cpp also answers ``GET /props`` with the window of a slot
(``default_generation_settings.n_ctx``), which is what a request must fit in.

Used by validation for two things: ``request.model`` (llama.cpp answers any model name with its
one model, so a typo passes a turn but is not in its list) and the window the router uses when
the endpoint declares none. Best effort: any failure means "the server lists nothing".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from server.registry.llm import ApiSpec, Endpoint

MAX_BODY_BYTES = 1 << 20
_WINDOW_KEYS = ("max_model_len", "context_window", "context_length", "n_ctx")


@dataclass(frozen=True, slots=True)
class Listing:
    """``models``: the listed ids and aliases (empty: no usable list); ``window_tokens``: the
    served model's context window (0: not reported); ``llama_cpp``: the server is llama.cpp."""

    models: tuple[str, ...] = ()
    window_tokens: int = 0
    llama_cpp: bool = False

    def lists(self, model: str) -> bool:
        return not self.models or model in self.models


NOTHING = Listing()


def _positive_int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _window_of(entry: Mapping[str, Any]) -> int:
    meta = entry.get("meta")
    for source in (entry, meta if isinstance(meta, dict) else {}):
        for key in _WINDOW_KEYS:
            if window := _positive_int(source.get(key)):
                return window
    return 0


def parse_models(body: bytes, model: str) -> Listing:
    """A ``/models`` body: ids (and llama.cpp aliases) and the window of ``model``'s entry
    (or of the only entry)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return NOTHING
    data = parsed.get("data") if isinstance(parsed, dict) else None
    if not isinstance(data, list):
        return NOTHING
    entries = [e for e in data if isinstance(e, dict) and isinstance(e.get("id"), str)]
    names: list[str] = []
    window = 0
    llama_cpp = False
    for entry in entries:
        aliases = [a for a in entry.get("aliases") or () if isinstance(a, str)]
        mine = [entry["id"], *aliases]
        names += mine
        llama_cpp |= entry.get("owned_by") == "llamacpp"
        if model in mine or len(entries) == 1:
            window = window or _window_of(entry)
    return Listing(tuple(dict.fromkeys(names)), window, llama_cpp)


def parse_props(body: bytes) -> int:
    """llama.cpp's ``/props``: the context window of a slot, or 0."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0
    settings = parsed.get("default_generation_settings") if isinstance(parsed, dict) else None
    return _positive_int(settings.get("n_ctx")) if isinstance(settings, dict) else 0


async def _get(session: aiohttp.ClientSession, url: str, headers: Mapping[str, str],
               timeout_s: float) -> bytes | None:
    try:
        async with session.get(url, headers=dict(headers), allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status != 200:
                return None
            return await response.content.read(MAX_BODY_BYTES)
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


async def fetch(session: aiohttp.ClientSession, endpoint: Endpoint,
                headers: Mapping[str, str], timeout_s: float = 5.0) -> Listing:
    """The endpoint's listing (OpenAI and Groq specs; others list nothing here). ``headers``:
    the ones a chat request to the endpoint carries (its key), without a body's."""
    if endpoint.api_spec not in (ApiSpec.OPENAI, ApiSpec.GROQ):
        return NOTHING
    base = endpoint.base_url.rstrip("/")
    get_headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    body = await _get(session, f"{base}/models", get_headers, timeout_s)
    listing = NOTHING if body is None else parse_models(body, endpoint.model)
    if listing.llama_cpp:  # a slot's window, which is what a request must fit in
        root = base[: -len("/v1")] if base.endswith("/v1") else base
        props = await _get(session, f"{root}/props", get_headers, timeout_s)
        window = parse_props(props) if props is not None else 0
        if window:
            listing = Listing(listing.models, window, True)
    return listing
