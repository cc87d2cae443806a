"""The backstop against secrets in logs and error messages.

Code should never log a key; this module catches the ones that slip through:

- ``Redactor``, a structlog processor. It replaces the value of any event key named like a
  credential (``api_key``, ``authorization``, ``x-goog-api-key``, ``password``, ``secret``,
  ``token``..., case-insensitive, ``-`` = ``_``) unless the value is a number or a bool (token
  *counts* are fine), replaces every ``Secret``, and ``scrub``s every string, recursively through
  dicts, lists and tuples (copies; the caller's objects are not modified). Other objects are
  logged as their scrubbed ``str()``. Place it last before the renderer, after
  ``format_exc_info``/``dict_tracebacks``, so tracebacks are scrubbed too; ``exc_info`` and keys
  starting with ``_`` (structlog/stdlib internals) pass through untouched.
- ``scrub(text)``: masks key-shaped substrings: ``sk-``/``sk-proj-``/``gsk_``/``xai-``/``hf_``
  keys, ``AIza...``, JWTs, 32+ hex characters (Azure keys) and other long opaque tokens mixing
  letters and digits, ``Bearer <token>``, whatever follows ``Authorization:``,
  ``key=``/``api_key=``/``sig=``... in URLs, ``"api_key": "..."``-style pairs, and our own
  ``sb_<id>_...`` caller keys (keeping the id) -- also when percent-encoded (``%3D``, ``%20``).
  This is the one pattern set: logs, upstream error quotes (``quote``), validation reports and
  registration messages all use it.
- ``mask_values(text, values)``: for upstream text that goes back to a caller, with the keys we
  sent at hand: masks every fragment of 8 or more characters of any of ``values`` (a key
  echoed in halves, reversed around a separator, or cut), plain or percent-encoded.
- ``quote(text, limit)``: ``scrub`` plus collapsed whitespace and a length cap, for quoting an
  upstream's message to a developer.
- ``KnownSecrets``: exact values the process holds (decrypted provider keys), for keys with no
  recognisable shape such as Azure's 32 hex characters. It stores BLAKE2b digests of each
  value's tokens, not the values, so it is not one more copy of every key to guard. A string is
  split into tokens (runs of ``A-Z a-z 0-9 _ -``) and a token is masked when its digest is
  known: a dict lookup per token, independent of how many secrets are registered. A value is
  registered as its own tokens of at least 8 characters, so one with ``+``, ``/`` or ``=`` is
  masked piecewise; a key embedded in a longer token (no separator) is not found. Entries are
  never removed: masking a retired key is harmless.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import quote as percent_encode
from urllib.parse import quote_plus, unquote_plus

from server.secret import Secret

REDACTED = "[REDACTED]"
_MAX_DEPTH = 8

_SENSITIVE_NAME = re.compile(
    r"(?:^|_)(?:api_?key|authorization|password|passwd|secret|client_secret|token|cookie"
    r"|set_cookie|credentials?|bearer|private_key|master_key|data_key)(?:$|_)"
)

# (pattern, replacement); applied in order. Values already replaced by REDACTED never match.
_WB = r"(?<![A-Za-z0-9_-])"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?!\[REDACTED\])[^\s\"',;}][^\"'\r\n,;}]*"
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/-]+=*"), rf"\1\2{REDACTED}"),
    (
        re.compile(
            r"(?i)([?&;](?:key|api[_-]?key|apikey|access_token|token|sig|signature|password"
            r"|secret|client_secret|x-amz-signature|x-amz-security-token|code)=)[^&#\s\"'<>]+"
        ),
        rf"\1{REDACTED}",
    ),
    (
        re.compile(
            r"(?i)((?<![A-Za-z0-9_])[\"']?(?:x-goog-api-key|x-api-key|api[_-]?key|apikey"
            r"|access[_-]?token|refresh[_-]?token|client[_-]?secret|password|passwd|secret"
            r"|token|key)[\"']?\s*[:=]\s*[\"']?)"
            r"(?!\[REDACTED\])([^\s\"',&;}]+)"
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(_WB + r"sb_([a-z0-9]{4,32})_[A-Za-z0-9_-]{16,}"), rf"sb_\1_{REDACTED}"),
    (re.compile(_WB + r"(sk-|sk_|gsk_|xai-|hf_|pk-|rk-)[A-Za-z0-9_*-]{10,}"),
     rf"\1{REDACTED}"),
    (re.compile(_WB + r"AIza[0-9A-Za-z_-]{20,}"), f"AIza{REDACTED}"),
    (re.compile(_WB + r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Azure keys (32 hex characters) and any long opaque token mixing letters and digits.
    (re.compile(_WB + r"[0-9A-Fa-f]{32,}(?![A-Za-z0-9_-])"), REDACTED),
    (
        re.compile(_WB + r"(?=[A-Za-z0-9_+-]*\d)(?=[A-Za-z0-9_+-]*[A-Za-z])[A-Za-z0-9_+-]{32,}"),
        REDACTED,
    ),
)
# Cheap pre-check: a string matching none of these cannot match any pattern above.
_TRIGGER = re.compile(
    r"(?i)authorization|bearer|key|token|secret|passw|[?&;][^=\s]*=|sb_|sk[-_]|gsk_|xai-|hf_"
    r"|[pr]k-|aiza|eyj|[A-Za-z0-9_+-]{32}"
)
# ``_TRIGGER`` for ASCII text, in pieces that are 3-10x cheaper than the one case-insensitive
# regex (which tries every alternative at every position): its words as substrings of the
# lowered text, its query-parameter and 32-character branches only when they can match.
_TRIGGER_WORDS = ("authorization", "bearer", "key", "token", "secret", "passw", "sb_", "sk-",
                  "sk_", "xai-", "hf_", "pk-", "rk-", "aiza", "eyj")
_TRIGGER_QUERY = re.compile(r"[?&;][^=\s]*=")
_TRIGGER_RUN = re.compile(r"[A-Za-z0-9_+-]{32}")
# A run of URL-safe characters with at least one percent escape: decoded, then scrubbed.
_ENCODED = re.compile(r"[A-Za-z0-9._~+*-]*(?:%[0-9A-Fa-f]{2}[A-Za-z0-9._~+*-]*)+")
_SPACES = re.compile(r"\s+")
FRAGMENT = 8  # the shortest piece of a known key that ``mask_values`` masks
MAX_QUOTE_CHARS = 300
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


class KnownSecrets:
    """Exact secret values to mask wherever they appear as a token (see module docs)."""

    __slots__ = ("_digests", "_lengths")
    MIN_LENGTH = 8

    def __init__(self) -> None:
        self._digests: set[bytes] = set()
        # The lengths of the registered tokens: a token of any other length is not hashed.
        self._lengths: set[int] = set()

    @staticmethod
    def _digest(token: str) -> bytes:
        return hashlib.blake2b(token.encode(), digest_size=16).digest()

    def add(self, value: Secret | str) -> bool:
        """Registers a value (and its percent-encoded form); False if it has no token long
        enough to mask safely."""
        text = value.reveal() if isinstance(value, Secret) else value
        forms = f"{text} {percent_encode(text, safe='')}"
        tokens = [t for t in _TOKEN.findall(forms) if len(t) >= self.MIN_LENGTH]
        self._lengths.update(len(t) for t in tokens)
        self._digests.update(self._digest(t) for t in tokens)
        return bool(tokens)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"KnownSecrets({len(self._digests)} tokens)"

    def mask(self, text: str) -> str:
        if not self._digests:
            return text
        digests, digest, lengths = self._digests, self._digest, self._lengths

        def known(token: str) -> bool:
            return len(token) in lengths and digest(token) in digests

        if not any(known(t) for t in _TOKEN.findall(text)):
            return text  # the common case: no token to replace, no string rebuilt

        def replace(m: re.Match[str]) -> str:
            token = m.group()
            return REDACTED if known(token) else token

        return _TOKEN.sub(replace, text)


def _triggered(text: str) -> bool:
    """``_TRIGGER.search(text)``, faster for ASCII (case folding beyond ASCII, such as the
    Kelvin sign matching ``k``, is left to the regex)."""
    if not text.isascii():
        return _TRIGGER.search(text) is not None
    low = text.lower()
    for word in _TRIGGER_WORDS:
        if word in low:
            return True
    return ("=" in text and _TRIGGER_QUERY.search(text) is not None) or (
        len(text) >= 32 and _TRIGGER_RUN.search(text) is not None)


def _scrub_plain(text: str, known: KnownSecrets | None) -> str:
    if _triggered(text):
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
    return known.mask(text) if known is not None else text


def scrub(text: str, known: KnownSecrets | None = None) -> str:
    """``text`` with key-shaped substrings and known secrets masked, percent-encoded or not."""
    if "%" in text:

        def decoded(m: re.Match[str]) -> str:
            run = m.group()
            plain = unquote_plus(run)
            masked = _scrub_plain(plain, known)
            return masked if masked != plain else run

        text = _ENCODED.sub(decoded, text)
    return _scrub_plain(text, known)


def mask_values(text: str, values: Iterable[str]) -> str:
    """``text`` with every piece of ``FRAGMENT`` or more characters of any of ``values`` (or of
    their percent-encoded forms) masked; for upstream text about a request we sent with them."""
    grams: set[str] = set()
    for value in values:
        if len(value) < FRAGMENT:
            continue
        for form in {value, percent_encode(value, safe=""), quote_plus(value)}:
            grams.update(form[i:i + FRAGMENT] for i in range(len(form) - FRAGMENT + 1))
    if not grams or len(text) < FRAGMENT:
        return text
    hidden = bytearray(len(text))
    for i in range(len(text) - FRAGMENT + 1):
        if text[i:i + FRAGMENT] in grams:
            hidden[i:i + FRAGMENT] = b"\x01" * FRAGMENT
    if not any(hidden):
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if hidden[i]:
            while i < len(text) and hidden[i]:
                i += 1
            out.append(REDACTED)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def quote(text: str, limit: int = MAX_QUOTE_CHARS) -> str:
    """An upstream's text fit to quote to a developer: scrubbed, whitespace collapsed, at most
    ``limit`` characters."""
    text = _SPACES.sub(" ", scrub(text)).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def is_sensitive_name(name: str) -> bool:
    """Whether a field or header name (``X-Goog-Api-Key``, ``api_key``) holds a credential."""
    return _SENSITIVE_NAME.search(name.lower().replace("-", "_")) is not None


def scrub_headers(headers: Mapping[str, str], known: KnownSecrets | None = None) -> dict[str, str]:
    """A copy of ``headers`` safe to log: credential headers masked, other values scrubbed."""
    return {
        name: REDACTED if is_sensitive_name(name) else scrub(str(value), known)
        for name, value in headers.items()
    }


class Redactor:
    """structlog processor: ``structlog.configure(processors=[..., Redactor(known), renderer])``."""

    __slots__ = ("_clean", "_known", "_names")

    def __init__(self, known: KnownSecrets | None = None) -> None:
        self._known = known
        # Strings this redactor logged unchanged (ids, names, statuses: most of every summary
        # line, line after line), for the number of known-secret tokens they were checked
        # against; registering a secret starts a new set. Only what would be logged verbatim
        # anyway is kept, so the set holds no value that scrubbing would have masked.
        self._clean: tuple[int, set[str]] = (0, set())
        self._names: dict[str, bool] = {}  # field name -> is_sensitive_name(name)

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            if key == "exc_info" or key.startswith("_"):
                continue
            event_dict[key] = self._field(key, value, 0)
        return event_dict

    def _field(self, name: str, value: Any, depth: int) -> Any:
        sensitive = self._names.get(name)
        if sensitive is None:
            sensitive = is_sensitive_name(name)
            if len(self._names) >= _CLEAN_MAX_ENTRIES:
                self._names.clear()
            self._names[name] = sensitive
        if sensitive and not _is_number(value):
            return REDACTED
        return self._value(value, depth)

    def _value(self, value: Any, depth: int) -> Any:
        if value is None or _is_number(value):
            return value
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, Secret):
            return REDACTED
        if depth < _MAX_DEPTH:
            if isinstance(value, Mapping):
                return {str(k): self._field(str(k), v, depth + 1) for k, v in value.items()}
            if isinstance(value, list | tuple | set | frozenset):
                return [self._value(v, depth + 1) for v in value]
        if isinstance(value, bytes | bytearray):
            return scrub(bytes(value).decode("utf-8", "replace"), self._known)
        return scrub(str(value), self._known)


    def _text(self, value: str) -> str:
        known = self._known
        generation = len(known) if known is not None else 0  # tokens are never removed
        clean = self._clean
        if clean[0] != generation:
            clean = self._clean = (generation, set())
        seen = clean[1]
        if value in seen:
            return value
        out = scrub(value, known)
        if out == value and len(value) <= _CLEAN_MAX_CHARS:
            if len(seen) >= _CLEAN_MAX_ENTRIES:
                seen.clear()  # unique values (request ids, timestamps) only churn it
            seen.add(value)
        return out


_CLEAN_MAX_CHARS = 256
_CLEAN_MAX_ENTRIES = 4096


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)
