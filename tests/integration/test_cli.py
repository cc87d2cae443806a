"""The `switchboard` CLI against a real server: llm create/list/get/delete, session, chat."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from server.app import Switchboard
from server.simulator import Behavior, Fault, FaultKind, Simulator
from tests.support import API_KEY


def cli(server: Switchboard, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWITCHBOARD_TARGET": f"127.0.0.1:{server.port}",
           "SWITCHBOARD_API_KEY": API_KEY, "US_KEY": "sk-us-2222"}
    return subprocess.run([sys.executable, "-m", "switchboard_client.cli", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=60)


async def test_cli_round_trip(server: Switchboard) -> None:
    async with Simulator("openai", Behavior(text="Hi from the CLI.", reasoning="Greet back.")
                         ) as sim:
        async def run(*a: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(cli, server, *a, stdin=stdin)

        created = await run("llm", "create", "--name", "cli-llm", "--spec", "openai", "--url",
                            sim.base_url, "--model", "m", "--key", "sk-cli-secret-1234",
                            "--label", "local", "--skip-validation")
        assert created.returncode == 0, created.stderr
        assert "key ...1234" in created.stdout
        assert "sk-cli-secret-1234" not in created.stdout
        llm_id = created.stdout.split()[2]
        llm = json.loads((await run("llm", "get", llm_id)).stdout)
        assert llm["endpoints"][0]["api_key_hint"] == "...1234"
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
        assert "request id" in missing.stderr
        deleted = await run("llm", "delete", llm["id"])
        assert deleted.returncode == 0
        assert llm["id"] not in (await run("llm", "list")).stdout


async def test_cli_creates_several_endpoints_and_shows_warnings(server: Switchboard,
                                                               tmp_path: Path) -> None:
    async with Simulator("openai", Behavior(text="eu")) as eu, \
            Simulator("openai", Behavior(text="us")) as us:
        async def run(*a: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(cli, server, *a)

        created = await run(
            "llm", "create", "--name", "two", "-q",
            "--endpoint", f"spec=openai,url={eu.base_url},model=m,key=sk-eu-1111,label=eu,"
                          "priority=0",
            "--endpoint", f"spec=openai,url={us.base_url},model=m,key-env=US_KEY,label=us")
        assert created.returncode == 0, created.stderr
        llm_id = created.stdout.strip()
        assert llm_id.startswith("llm_") and "\n" not in llm_id
        # the validation report: the simulator answers tools with text, a warning with its fix
        assert "[WARN   ]" in created.stderr and "capability.tool_calling" in created.stderr
        assert "fix:" in created.stderr
        llm = json.loads((await run("llm", "get", llm_id)).stdout)
        assert [e["label"] for e in llm["endpoints"]] == ["eu", "us"]
        assert llm["endpoints"][1]["api_key_hint"] == "...2222"
        spec = tmp_path / "llm.json"
        spec.write_text(json.dumps({"displayName": "from-file", "endpoints": [
            {"apiSpec": "API_SPEC_OPENAI", "baseUrl": us.base_url, "model": "m2",
             "apiKeyEnv": "US_KEY", "label": "only"}]}))
        updated = await run("llm", "update", llm_id, "--file", str(spec), "--skip-validation")
        assert updated.returncode == 0, updated.stderr
        assert "updated (display_name, endpoints)" in updated.stdout
        llm = json.loads((await run("llm", "get", llm_id)).stdout)
        assert llm["display_name"] == "from-file"
        assert [e["model"] for e in llm["endpoints"]] == ["m2"]
        yaml_file = tmp_path / "llm.yaml"
        yaml_file.write_text(
            "displayName: from-yaml\n"
            "endpoints:\n"
            f"  - apiSpec: API_SPEC_OPENAI\n    baseUrl: {eu.base_url}\n    model: m3\n"
            "    apiKeyEnv: US_KEY\n    label: yaml\n")
        from_yaml = await run("llm", "create", "--file", str(yaml_file), "--skip-validation",
                              "-q")
        assert from_yaml.returncode == 0, from_yaml.stderr
        got = json.loads((await run("llm", "get", from_yaml.stdout.strip())).stdout)
        assert got["display_name"] == "from-yaml" and got["endpoints"][0]["model"] == "m3"
        assert got["endpoints"][0]["api_key_hint"] == "...2222"
        validated = await run("llm", "validate", llm_id)
        assert validated.returncode == 0, validated.stderr
        lines = validated.stdout.splitlines()
        assert any("network.connect" in line for line in lines) and lines[-1] == "PASSED"


async def test_cli_refusal_prints_the_failing_checks_and_their_fixes(
        server: Switchboard) -> None:
    async with Simulator("openai", Behavior(fault=Fault(FaultKind.UNAUTHORIZED))) as sim:
        refused = await asyncio.to_thread(
            cli, server, "llm", "create", "--endpoint",
            f"spec=openai,url={sim.base_url},model=m,key=sk-wrong")
    assert refused.returncode == 1
    assert "FAILED_PRECONDITION" in refused.stderr
    assert "[FAIL   ]" in refused.stderr and "auth.key_accepted" in refused.stderr
    assert "fix:" in refused.stderr and "nothing was stored" in refused.stderr


def test_cli_endpoint_spec_mistakes_get_one_line_answers(server: Switchboard) -> None:
    bad = cli(server, "llm", "create", "--endpoint", "spec=opnai,url=http://127.0.0.1:1/v1,"
                                                     "model=m")
    assert bad.returncode == 2 and "did you mean 'openai'" in bad.stderr
    unknown = cli(server, "llm", "create", "--endpoint", "url=http://127.0.0.1:1/v1,model=m,"
                                                         "lable=x")
    assert unknown.returncode == 2 and "did you mean 'label'" in unknown.stderr
    no_env = cli(server, "llm", "create", "--endpoint", "url=http://127.0.0.1:1/v1,model=m,"
                                                        "key-env=NOT_SET_ANYWHERE")
    assert no_env.returncode == 2 and "NOT_SET_ANYWHERE" in no_env.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_every_subcommand_has_real_help(server: Switchboard) -> None:
    for command in (["llm", "create"], ["llm", "update"], ["llm", "validate"], ["session"],
                    ["chat"], ["keys"], ["admin"], ["check-endpoint"], ["wait"]):
        shown = cli(server, *command, "--help")
        assert shown.returncode == 0, shown.stderr
        description = shown.stdout.split("\n\n")[1]
        assert len(description) > 20, (command, shown.stdout)
    serve = cli(server, "serve", "--help")
    assert "SWITCHBOARD_GRPC_PORT" in serve.stdout and "SWITCHBOARD_MASTER_KEY_FILE" in serve.stdout
