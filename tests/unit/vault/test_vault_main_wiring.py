"""``server.main`` hands the log redactor the same ``KnownSecrets`` the server fills."""

from __future__ import annotations

from typing import Any

import pytest

from server import main as entry
from server.config import Settings
from server.vault.redact import KnownSecrets

AZURE_STYLE_KEY = "0123456789abcdef0123456789abcdef"  # no recognisable shape


def test_redactor_masks_what_the_server_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def fake_serve(settings: Settings, known: KnownSecrets | None = None,
                         json_lines: bool = False) -> int:
        assert known is not None
        known.add(AZURE_STYLE_KEY)  # as VaultSealer.open does for every key it opens
        return 0

    def fake_configure(level: str, fmt: str, redactor: Any = None, stream: Any = None) -> bool:
        seen["redactor"] = redactor
        return True

    monkeypatch.setattr(entry, "load", lambda: Settings())
    monkeypatch.setattr(entry, "serve", fake_serve)
    monkeypatch.setattr("server.logs.configure", fake_configure)
    assert entry.main() == 0
    event = seen["redactor"](None, "info", {"event": f"upstream said {AZURE_STYLE_KEY}"})
    assert event == {"event": "upstream said [REDACTED]"}
