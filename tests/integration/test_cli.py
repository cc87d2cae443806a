"""The `switchboard` CLI against a real server: llm create/list/get/delete, session, chat."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from server.app import Switchboard
from server.simulator import Behavior, Simulator
from tests.support import API_KEY


def cli(server: Switchboard, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWITCHBOARD_TARGET": f"127.0.0.1:{server.port}",
           "SWITCHBOARD_API_KEY": API_KEY}
    return subprocess.run([sys.executable, "-m", "switchboard_client.cli", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=60)


async def test_cli_round_trip(server: Switchboard) -> None:
    async with Simulator("openai", Behavior(text="Hi from the CLI.", reasoning="Greet back.")
                         ) as sim:
        run = lambda *a, stdin="": asyncio.to_thread(cli, server, *a, stdin=stdin)  # noqa: E731
        created = await run("llm", "create", "--name", "cli-llm", "--spec", "openai", "--url",
                            sim.base_url, "--model", "m", "--key", "sk-cli-secret-1234",
                            "--label", "local", "--skip-validation")
        assert created.returncode == 0, created.stderr
        llm = json.loads(created.stdout)
        assert llm["endpoints"][0]["api_key_hint"] == "...1234"
        assert "sk-cli-secret-1234" not in created.stdout
        listed = await run("llm", "list")
        assert llm["id"] in listed.stdout and "cli-llm" in listed.stdout
        got = await run("llm", "get", llm["id"])
        assert json.loads(got.stdout)["id"] == llm["id"]
        chat = await run("chat", llm["id"], "--system", "Be nice.", stdin="hello\n\n")
        assert chat.returncode == 0, chat.stderr
        assert "[reasoning] Greet back." in chat.stdout
        assert "[answer] Hi from the CLI." in chat.stdout
        assert "[route] attempt 1" in chat.stdout and "[finished]" in chat.stdout
        missing = await run("llm", "get", "llm_missing")
        assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
        deleted = await run("llm", "delete", llm["id"])
        assert deleted.returncode == 0
        assert llm["id"] not in (await run("llm", "list")).stdout
