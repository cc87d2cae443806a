"""The real grpcurl binary (v1.8.6), fetched by ``make grpcurl`` into ~/.cache/switchboard.

Tests that need it call ``grpcurl_path()``: it skips when the binary is missing, and fails
under ``CI=true`` (CI must run these tests, not skip them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DEFAULT = Path.home() / ".cache" / "switchboard" / "grpcurl-1.8.6" / "grpcurl"


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def grpcurl_path() -> str:
    """The grpcurl binary to run: $SWITCHBOARD_GRPCURL, the make cache, or one on PATH."""
    for candidate in (os.environ.get("SWITCHBOARD_GRPCURL", ""), str(DEFAULT),
                      shutil.which("grpcurl") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = "grpcurl is not installed: run `make grpcurl`"
    if _ci():
        pytest.fail(f"{message}. CI=true: the grpcurl tests must run", pytrace=False)
    pytest.skip(message)


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs grpcurl with ``args``; returns the finished process (stdout, stderr, returncode)."""
    return subprocess.run([grpcurl_path(), *args], input=stdin, capture_output=True, text=True,
                          timeout=30, check=False)
