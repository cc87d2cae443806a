"""Helpers for the validation unit tests: recorded fixtures, audits, synthetic exchanges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server.registry.llm import ApiSpec, Endpoint
from server.secret import Secret
from server.validation.audit import StreamAudit, new_audit
from server.validation.exchange import Exchange

# The recorded upstream traffic (a copy of ../shared/fixtures/upstream kept with the provider
# tests; see its README for sources).
FIXTURES = Path(__file__).resolve().parents[1] / "providers" / "fixtures"


def endpoint(spec: ApiSpec = ApiSpec.OPENAI, *, model: str = "gpt-4o-mini",
             base_url: str = "https://api.example.test/v1", key: str = "sk-test-key-123456"
             ) -> Endpoint:
    return Endpoint(id="ep_1", api_spec=spec, base_url=base_url, model=model,
                    api_key=Secret(key), api_version="2024-10-21"
                    if spec is ApiSpec.AZURE_OPENAI else "")


def stream_body(name: str) -> bytes:
    """A recorded stream as wire bytes (``.jsonl`` lines re-framed as SSE)."""
    path = FIXTURES / name
    if path.suffix == ".sse":
        return path.read_bytes()
    frames = [b"data: " + line.encode() + b"\n\n"
              for line in path.read_text().splitlines() if line.strip()]
    if not name.startswith("gemini/"):
        frames.append(b"data: [DONE]\n\n")
    return b"".join(frames)


def envelope(name: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a recorded ``.json`` response."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    headers = {k.lower(): v for k, v in (data.get("headers") or {}).items()}
    return data["status"], headers, json.dumps(data["body"]).encode()


def audit(spec: ApiSpec, body: bytes, piece: int = 0) -> StreamAudit:
    """An audit fed ``body`` whole, or in ``piece``-byte reads; closed."""
    a = new_audit(spec)
    step = piece or max(1, len(body))
    for i in range(0, len(body), step):
        a.feed(body[i:i + step], now=float(i))
    a.close()
    return a


def streamed(status: int = 200, content_type: str = "text/event-stream") -> Exchange:
    ex = Exchange(sent_at=0.0, status=status, content_type=content_type,
                  mime=content_type.split(";")[0].strip(), streamed=True, ended_at=0.2)
    ex.headers_at = 0.01
    return ex


def answered(status: int, body: bytes, content_type: str = "application/json",
             headers: dict[str, str] | None = None) -> Exchange:
    h = {"content-type": content_type, **(headers or {})}
    return Exchange(sent_at=0.0, status=status, content_type=content_type,
                    mime=content_type.split(";")[0].strip(), headers=h, body=body,
                    ended_at=0.1)
