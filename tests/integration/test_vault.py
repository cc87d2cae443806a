"""The credential vault over gRPC: tampering, wrong keys, rotation under traffic, canary keys.

What is promised:
- a stored secret that was tampered with (ciphertext, nonce, tag, wrapped key), copied onto
  another endpoint, or is opened with the wrong master key fails with INTERNAL and a message
  naming the record (LLM and endpoint ids), never the secret;
- a server refuses to start when a stored secret names a master key it has not loaded;
- `switchboard keys rotate` (another process) re-wraps every secret under a new primary while
  the server keeps serving; the old key can then be removed (`keys remove`, which refuses while
  a secret still names the key) and the server, and a restarted server, serve every LLM;
- a provider key never appears in a log line, a response, an error or the database file.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import secrets
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from aiohttp import web
from switchboard.v1 import llm_pb2 as lpb
from switchboard_client import AsyncClient

from server import logs
from server.admin import key_usage, remove_master_key, rotate_keys
from server.app import Switchboard
from server.chat import ChatRequest, Message, Role, TextPart
from server.clock import FakeClock
from server.config import ConfigError, Settings
from server.providers.adapters import adapter_for
from server.providers.base import UpstreamError
from server.providers.transport import UpstreamClient
from server.registry.llm import ApiSpec, Endpoint
from server.secret import Secret
from server.simulator import Behavior, Simulator
from server.store.open import open_store
from server.timeouts import Timeouts
from server.vault.errors import KeyringError
from server.vault.keys import add_key, generate_key_file
from server.vault.redact import KnownSecrets, Redactor
from server.vault.sealer import VaultSealer
from tests.security_support import run_cli, status_of
from tests.support import (
    API_KEY,
    ROOT,
    create_llm,
    endpoint,
    master_keys,
    running,
    server_env,
    settings,
    start_server_process,
)

KEY_A = "sk-vault-a-" + secrets.token_hex(12)
KEY_B = "sk-vault-b-" + secrets.token_hex(12)


# -- helpers -------------------------------------------------------------------------------------


def db_path(s: Settings) -> Path:
    return Path(s.database)


def edit_endpoints(s: Settings, llm_id: str, edit: Callable[[list[dict[str, Any]]], None]) -> None:
    """Edits an LLM's stored endpoints in the SQLite file directly (the server is stopped)."""
    with sqlite3.connect(db_path(s)) as conn:
        (body,) = conn.execute("SELECT body FROM llms WHERE id = ?", (llm_id,)).fetchone()
        data = json.loads(body)
        edit(data["endpoints"])
        conn.execute("UPDATE llms SET body = ? WHERE id = ?", (json.dumps(data), llm_id))


def read_files(where: Path, pattern: str = "") -> list[tuple[str, bytes]]:
    """(name, bytes) of ``where`` itself, or of the files in it matching ``pattern``."""
    paths = sorted(where.glob(pattern)) if pattern else [where]
    return [(p.name, p.read_bytes()) for p in paths]


def sealed_key_ids(s: Settings) -> list[str]:
    with sqlite3.connect(db_path(s)) as conn:
        rows = conn.execute("SELECT body FROM llms").fetchall()
    return [VaultSealer.key_id_of(e["api_key"]) for (body,) in rows
            for e in json.loads(body)["endpoints"]]


def _flip(text: str, where: Callable[[bytes], int]) -> str:
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw[where(bytes(raw))] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def _offset(part: str) -> Callable[[bytes], int]:
    """Byte offset of a part of the v1 layout: version, kid_len, kid, key_nonce(12),
    wrapped_key(48), nonce(12), ciphertext + tag(16)."""

    def at(raw: bytes) -> int:
        key_nonce = 2 + raw[1]
        return {
            "wrapped_key": key_nonce + 12 + 5,
            "nonce": key_nonce + 12 + 48 + 3,
            "ciphertext": key_nonce + 12 + 48 + 12,
            "tag": len(raw) - 1,
        }[part]

    return at


async def two_endpoint_llm(s: Settings, sims: tuple[Simulator, Simulator]) -> lpb.Llm:
    async with running(s) as app, AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        llm = await create_llm(client, endpoint(sims[0], key=KEY_A, label="a"),
                               endpoint(sims[1], key=KEY_B, label="b"))
        assert (await client.reply("hi", llm_id=llm.id)).complete
        return llm


def assert_names_record_not_secret(exc: grpc.aio.AioRpcError, llm: lpb.Llm,
                                   endpoint_id: str | None = None) -> None:
    """INTERNAL naming the LLM and the endpoint (``endpoint_id``, or any of the LLM's)."""
    st = status_of(exc)
    assert st.code == grpc.StatusCode.INTERNAL
    named = st.info.metadata["endpoint_id"]
    assert named == endpoint_id if endpoint_id else named in {e.id for e in llm.endpoints}
    assert llm.id in st.message and named in st.message
    assert st.info.metadata["llm_id"] == llm.id
    for key in (KEY_A, KEY_B):
        assert key not in st.text()


@pytest.fixture
async def sims() -> AsyncIterator[tuple[Simulator, Simulator]]:
    async with Simulator("openai", Behavior(text="ok"), api_key=KEY_A) as a, \
            Simulator("openai", Behavior(text="ok"), api_key=KEY_B) as b:
        yield a, b


# -- tampering and wrong keys --------------------------------------------------------------------


@pytest.mark.parametrize("part", ["ciphertext", "nonce", "tag", "wrapped_key"])
async def test_tampered_secret_fails_with_internal_naming_the_record(
        tmp_path: Path, sims: tuple[Simulator, Simulator], part: str) -> None:
    s = settings(tmp_path)
    llm = await two_endpoint_llm(s, sims)
    target = llm.endpoints[1].id

    def tamper(endpoints: list[dict[str, Any]]) -> None:
        for e in endpoints:
            e["api_key"] = _flip(e["api_key"], _offset(part))

    edit_endpoints(s, llm.id, tamper)
    async with running(s) as app, AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        # Reading never decrypts (keys are opened only for the upstream call): the hints show.
        shown = await client.get_llm(llm.id)
        assert [e.api_key_hint for e in shown.endpoints] == [e.api_key_hint
                                                             for e in llm.endpoints]
        assert target in {e.id for e in shown.endpoints}
        with pytest.raises(grpc.aio.AioRpcError) as conv:
            await client.reply("hi", llm_id=llm.id)
        assert_names_record_not_secret(conv.value, llm)
        assert "does not authenticate" in (conv.value.details() or "")


async def test_ciphertext_swapped_between_endpoints_fails(
        tmp_path: Path, sims: tuple[Simulator, Simulator]) -> None:
    s = settings(tmp_path)
    llm = await two_endpoint_llm(s, sims)

    def swap(endpoints: list[dict[str, Any]]) -> None:
        endpoints[0]["api_key"], endpoints[1]["api_key"] = (endpoints[1]["api_key"],
                                                            endpoints[0]["api_key"])

    edit_endpoints(s, llm.id, swap)
    async with running(s) as app, AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        assert (await client.get_llm(llm.id)).id == llm.id  # reading never decrypts
        with pytest.raises(grpc.aio.AioRpcError) as conv:
            await client.reply("hi", llm_id=llm.id)
        assert_names_record_not_secret(conv.value, llm)
        assert (conv.value.details() or "").startswith("Cannot decrypt the stored secret")


async def test_wrong_master_key_under_the_same_id_refuses_to_start(
        tmp_path: Path, sims: tuple[Simulator, Simulator]) -> None:
    """The README trap: the same key id with new material (``export`` run again in a new
    shell). The server used to start and fail every turn; it refuses to start instead."""
    s = settings(tmp_path)
    await two_endpoint_llm(s, sims)
    other = settings(tmp_path, master_keys=master_keys())  # "test1" again, other material
    assert other.master_keys.split(":")[0] == s.master_keys.split(":")[0]
    app = Switchboard(other)
    with pytest.raises(ConfigError) as err:
        await app.start()
    await app.stop(grace_s=0)
    message = str(err.value)
    assert message.startswith("master key 'test1' is not the key 'test1' that sealed")
    assert "Start with the original 'test1'" in message
    assert other.master_keys.split(":")[1] not in message
    async with running(s) as app:  # the right material still starts
        assert app.port


async def test_a_database_from_before_check_values_is_checked_against_its_secrets(
        tmp_path: Path, sims: tuple[Simulator, Simulator]) -> None:
    s = settings(tmp_path)
    await two_endpoint_llm(s, sims)
    with sqlite3.connect(s.database) as db:  # as a database migrated from before check values
        db.execute("DELETE FROM master_key_checks")
    app = Switchboard(settings(tmp_path, master_keys=master_keys()))
    with pytest.raises(ConfigError) as err:
        await app.start()
    await app.stop(grace_s=0)
    assert "master key 'test1' is not the key 'test1'" in str(err.value)
    with sqlite3.connect(s.database) as db:  # the wrong key recorded nothing
        assert db.execute("SELECT COUNT(*) FROM master_key_checks").fetchone() == (0,)
    async with running(s):
        pass
    with sqlite3.connect(s.database) as db:  # the right one recorded its check value
        assert db.execute("SELECT key_id FROM master_key_checks").fetchall() == [("test1",)]


def test_server_process_with_mismatched_key_prints_one_line_and_exits_2(
        tmp_path: Path) -> None:
    env = server_env(tmp_path)
    proc, _ = start_server_process(env)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    env["SWITCHBOARD_MASTER_KEYS"] = master_keys()
    done = subprocess.run([sys.executable, "-m", "server.main"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "master key 'test1' is not the key" in lines[0], done.stderr


async def test_startup_fails_when_a_secret_names_an_unloaded_key(
        tmp_path: Path, sims: tuple[Simulator, Simulator]) -> None:
    s = settings(tmp_path)
    llm = await two_endpoint_llm(s, sims)
    other = "other:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    app = Switchboard(replace(s, master_keys=other))
    with pytest.raises(ConfigError) as err:
        await app.start()
    await app.stop(grace_s=0)
    message = str(err.value)
    assert llm.id in message and llm.endpoints[0].id in message
    assert "'test1'" in message and "not loaded" in message and "(loaded: other)" in message


# -- rotation ------------------------------------------------------------------------------------


def key_file_settings(tmp_path: Path, **overrides: Any) -> tuple[Settings, dict[str, str]]:
    key_file = tmp_path / "master-keys.toml"
    generate_key_file(key_file, key_id="old")
    s = settings(tmp_path, master_keys="", master_key_file=str(key_file), probes_per_hour=0,
                 **overrides)
    env = {"SWITCHBOARD_DATABASE": s.database, "SWITCHBOARD_MASTER_KEY_FILE": str(key_file)}
    return s, env


class Traffic:
    """Converse turns (by llm_id and by session) and GetLlm reads in a loop, until stopped."""

    def __init__(self, client: AsyncClient, llms: list[lpb.Llm], sessions: list[str]) -> None:
        self.client, self.llms, self.sessions = client, llms, sessions
        self.rounds = 0
        self.failures: list[str] = []
        self.stopped = False
        self._progress = asyncio.Condition()

    async def run(self) -> None:
        while not self.stopped:
            for llm, session_id in zip(self.llms, self.sessions, strict=True):
                try:
                    assert (await self.client.reply("hi", llm_id=llm.id)).complete
                    assert (await self.client.reply("again", session_id=session_id)).complete
                    got = await self.client.get_llm(llm.id)  # reads the store, opens the keys
                    assert got.endpoints[0].api_key_hint == llm.endpoints[0].api_key_hint
                except (grpc.aio.AioRpcError, AssertionError) as exc:
                    self.failures.append(f"{llm.id}: {exc!r}")
            async with self._progress:
                self.rounds += 1
                self._progress.notify_all()

    async def wait_rounds(self, n: int) -> None:
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self.rounds >= n), 30)


async def serve_every_llm(client: AsyncClient, llms: list[lpb.Llm]) -> None:
    for llm in llms:
        assert (await client.get_llm(llm.id)).id == llm.id
        assert (await client.reply("still there?", llm_id=llm.id)).complete


async def test_rotation_under_live_traffic_then_old_key_removed(tmp_path: Path) -> None:
    s, env = key_file_settings(tmp_path)
    keys = [f"sk-rot-{i}-{secrets.token_hex(8)}" for i in range(3)]
    clock = FakeClock()
    async with AsyncExitStack() as stack:
        sims = [await stack.enter_async_context(
            Simulator("openai", Behavior(text="fine", chunks=2), api_key=k)) for k in keys]
        app = Switchboard(s, clock=clock)
        await app.start()
        stack.push_async_callback(app.stop, 1.0)
        client = await stack.enter_async_context(AsyncClient(f"127.0.0.1:{app.port}", API_KEY))
        llms = [await create_llm(client, endpoint(sim, key=k), name=f"llm-{i}")
                for i, (sim, k) in enumerate(zip(sims, keys, strict=True))]
        sessions = [(await client.create_session(llm.id)).id for llm in llms]
        assert set(sealed_key_ids(s)) == {"old"}

        traffic = Traffic(client, llms, sessions)
        task = asyncio.create_task(traffic.run())
        await traffic.wait_rounds(2)
        rotated = await run_cli("keys", "rotate", "--new-key-id", "new", env=env)
        await traffic.wait_rounds(traffic.rounds + 3)  # reads re-wrapped secrets, no restart
        traffic.stopped = True
        await task
        assert rotated.code == 0, rotated.stderr
        assert "added master key new" in rotated.stdout
        assert "re-wrapped the secrets of 3 LLM(s) under new" in rotated.stdout
        assert "keys remove" in rotated.stdout
        assert traffic.failures == []
        assert set(sealed_key_ids(s)) == {"new"}

        clock.advance(1.0)  # the server re-checks the key file: new secrets go under "new"
        llms.append(await create_llm(client, endpoint(sims[0], key=keys[0]), name="after"))
        assert set(sealed_key_ids(s)) == {"new"}

        listed = await run_cli("keys", "list", env=env)
        assert "new  primary  4 secret(s)" in listed.stdout
        assert "old  old      0 secret(s)" in listed.stdout
        removed = await run_cli("keys", "remove", "old", env=env)
        assert removed.code == 0, removed.stderr
        assert "old" not in read_files(Path(env["SWITCHBOARD_MASTER_KEY_FILE"]))[0][1].decode()
        clock.advance(1.0)  # the server drops "old" too
        await serve_every_llm(client, llms)

        async with running(s) as restarted, \
                AsyncClient(f"127.0.0.1:{restarted.port}", API_KEY) as client2:
            await serve_every_llm(client2, llms)


async def test_keys_remove_refuses_while_a_secret_names_the_key(
        tmp_path: Path, sims: tuple[Simulator, Simulator]) -> None:
    s, env = key_file_settings(tmp_path)
    async with running(s) as app, AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        await create_llm(client, endpoint(sims[0], key=KEY_A), endpoint(sims[1], key=KEY_B))
    add_key(s.master_key_file, key_id="next")  # new primary, nothing re-wrapped yet
    with pytest.raises(KeyringError, match=r"2 stored secret\(s\) are still sealed under master "
                                           r"key 'old'; run `switchboard keys rotate"):
        await remove_master_key(s, "old")
    refused = await run_cli("keys", "remove", "next", env=env)
    assert refused.code == 2 and "is the primary key" in refused.stderr
    rotation = await rotate_keys(s, use_existing=True)
    assert (rotation.primary, rotation.added, rotation.rewrapped) == ("next", False, 1)
    assert rotation.remaining == {}
    await remove_master_key(s, "old")
    with pytest.raises(KeyringError, match="no master key 'old'"):
        await remove_master_key(s, "old")


async def test_keys_rotate_with_env_keys_needs_use_existing(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with pytest.raises(KeyringError, match="--use-existing"):
        await rotate_keys(s)
    assert (await rotate_keys(s, use_existing=True)).rewrapped == 0


async def test_rotation_retries_a_record_changed_concurrently(
        tmp_path: Path, sims: tuple[Simulator, Simulator]) -> None:
    """A server's update between the rotation's read and its compare-and-set wins; the record
    is read again and re-wrapped in the next pass."""
    s, _ = key_file_settings(tmp_path)
    async with running(s) as app, AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
        llm = await create_llm(client, endpoint(sims[0], key=KEY_A))
    add_key(s.master_key_file, key_id="new")
    store = await open_store(s.database)
    try:
        original = store.replace_llm
        raced = False

        async def racing_replace(record: Any, expected_etag: str) -> bool:
            nonlocal raced
            if not raced:  # a server updates the LLM first (still sealed under "old")
                raced = True
                (current,) = [r for r in await store.all_llms() if r.id == llm.id]
                assert await original(replace(current, display_name="renamed",
                                              etag="etag-2"), current.etag)
            return await original(record, expected_etag)

        store.replace_llm = racing_replace  # type: ignore[method-assign]
        from server.admin import rewrap_all
        from server.vault.keys import load_key_file

        changed, failures = await rewrap_all(
            store, VaultSealer(load_key_file(s.master_key_file), KnownSecrets()))
        assert raced and (changed, failures) == (1, [])
        assert dict(await key_usage(store)) == {"new": 1}
        assert (await store.all_llms())[0].display_name == "renamed"
    finally:
        await store.close()


# -- canary keys ---------------------------------------------------------------------------------


CANARY_OK = "sk-canary-" + secrets.token_hex(20)  # works
CANARY_401 = "sk-canary-" + secrets.token_hex(20)  # rejected by the upstream (401)
CANARY_ECHO = "sk-canary-" + secrets.token_hex(20)  # echoed in a 500 body and header
CANARY_PLAIN = "sk-canary-" + secrets.token_hex(20)  # echoed in a non-JSON 502 body
CANARY_MID = "sk-canary-" + secrets.token_hex(20)  # echoed in a mid-stream error
CANARY_AZURE = secrets.token_hex(16)  # 32 hex characters, no recognisable shape
CANARY_GEMINI = "gm-canary-" + secrets.token_hex(16)  # echoed in a URL as ?key=
CANARY_URL = "sk-canary-" + secrets.token_hex(20)  # sent in a bad base_url
CANARIES = (CANARY_OK, CANARY_401, CANARY_ECHO, CANARY_PLAIN, CANARY_MID, CANARY_AZURE,
            CANARY_GEMINI, CANARY_URL)


def fragments(key: str) -> list[str]:
    """The key, and its random part without the last four characters (the shown hint)."""
    return [key, key[-28:-4]]


def assert_clean(text: str | bytes, where: str) -> None:
    data = text if isinstance(text, bytes) else text.encode()
    for key in CANARIES:
        for frag in fragments(key):
            assert frag.encode() not in data, f"a canary key leaked into {where}"


def echo_upstream() -> web.Application:
    """Upstreams that echo the caller's key back in every way a real one might."""

    def key_of(request: web.Request) -> str:
        auth = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return auth or request.headers.get("api-key", "") or request.headers.get(
            "x-goog-api-key", "")

    async def echo500(request: web.Request) -> web.Response:
        key = key_of(request)
        body = {"error": {"message": f"Internal error for Authorization: Bearer {key} at "
                                     f"{request.url}?key={key}; key {key} logged",
                          "type": "server_error", "code": None}}
        return web.json_response(body, status=500, headers={"X-Echo-Key": key})

    async def plain(request: web.Request) -> web.Response:
        return web.Response(status=502, text=f"proxy error: upstream rejected {key_of(request)}",
                            content_type="text/plain")

    async def midstream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"},
                              "finish_reason": None}]}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        error = {"error": {"message": f"key {key_of(request)} exceeded its quota mid-stream",
                           "type": "server_error"}}
        await resp.write(f"data: {json.dumps(error)}\n\n".encode())
        await resp.write_eof()
        return resp

    async def azure(request: web.Request) -> web.Response:
        body = {"error": {"code": "401", "message": "Access denied due to invalid subscription "
                          f"key {key_of(request)}. Make sure to provide a valid key."}}
        return web.json_response(body, status=401)

    async def gemini(request: web.Request) -> web.Response:
        url = ("https://generativelanguage.googleapis.com/v1beta/models/m:streamGenerateContent"
               f"?alt=sse&key={key_of(request)}")
        body = {"error": {"code": 400, "message": f"API key not valid for {url}",
                          "status": "INVALID_ARGUMENT",
                          "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                       "reason": "API_KEY_INVALID"}]}}
        return web.json_response(body, status=400)

    app = web.Application()
    app.router.add_post("/echo500/v1/chat/completions", echo500)
    app.router.add_post("/plain/v1/chat/completions", plain)
    app.router.add_post("/midstream/v1/chat/completions", midstream)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", azure)
    app.router.add_post("/v1beta/models/{tail}", gemini)
    return app


@pytest.fixture
async def echo_root() -> AsyncIterator[str]:
    runner = web.AppRunner(echo_upstream())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextmanager
def captured_logs(known: KnownSecrets) -> Iterator[io.StringIO]:
    saved = structlog.get_config()
    out = io.StringIO()
    logs.configure("debug", "json", Redactor(known), stream=out)
    try:
        yield out
    finally:
        structlog.configure(**saved)


def failing_endpoints(root: str) -> list[tuple[lpb.Endpoint, str]]:
    spec = lpb.API_SPEC_OPENAI
    return [
        (lpb.Endpoint(api_spec=spec, base_url=f"{root}/echo500/v1", model="m",
                      api_key=CANARY_ECHO), "echo500"),
        (lpb.Endpoint(api_spec=spec, base_url=f"{root}/plain/v1", model="m",
                      api_key=CANARY_PLAIN), "plain"),
        (lpb.Endpoint(api_spec=spec, base_url=f"{root}/midstream/v1", model="m",
                      api_key=CANARY_MID), "midstream"),
        (lpb.Endpoint(api_spec=lpb.API_SPEC_AZURE_OPENAI, base_url=root, model="dep",
                      api_version="2024-10-21", api_key=CANARY_AZURE), "azure"),
        (lpb.Endpoint(api_spec=lpb.API_SPEC_GEMINI, base_url=f"{root}/v1beta", model="m",
                      api_key=CANARY_GEMINI), "gemini"),
    ]


async def test_canary_keys_never_leak(tmp_path: Path, echo_root: str) -> None:
    s = settings(tmp_path, max_attempts=2)
    known = KnownSecrets()
    seen: list[tuple[str, bytes | str]] = []  # (where, what the caller or a log received)

    def failed(where: str, exc: grpc.aio.AioRpcError) -> None:
        st = status_of(exc)
        seen.append((where, st.text()))
        seen.append((f"{where} debug string", exc.debug_error_string() or ""))
        seen.append((f"{where} repr", repr(exc)))

    with captured_logs(known) as log_out:
        async with Simulator("openai", Behavior(text="canary ok"), api_key=CANARY_OK) as good, \
                Simulator("openai", Behavior(text="never"), api_key="sk-the-right-key") as strict:
            app = Switchboard(s, known_secrets=known)
            await app.start()
            try:
                async with AsyncClient(f"127.0.0.1:{app.port}", API_KEY) as client:
                    # A working key through register, read, update, list, converse.
                    llm = await create_llm(client, endpoint(good, key=CANARY_OK))
                    assert llm.endpoints[0].api_key == ""
                    assert llm.endpoints[0].api_key_hint == "..." + CANARY_OK[-4:]
                    seen.append(("CreateLlm response", llm.SerializeToString()))
                    seen.append(("GetLlm", (await client.get_llm(llm.id)).SerializeToString()))
                    session = await client.create_session(llm.id)
                    reply = await client.reply("hello", session_id=session.id)
                    assert reply.text == "canary ok"
                    seen.append(("GetSession", (await client.get_session(session.id))
                                 .SerializeToString()))
                    llm.display_name = "renamed"
                    updated = (await client.update_llm(llm, ["display_name"])).llm
                    seen.append(("UpdateLlm", updated.SerializeToString()))
                    seen.extend([("ListLlms", x.SerializeToString())
                                 async for x in client.list_llms()])
                    async for event in client.converse("hi", llm_id=llm.id):
                        seen.append(("Converse event", repr(event)))

                    # A key the upstream rejects (401 that echoes a masked key).
                    bad = await create_llm(client, endpoint(strict, key=CANARY_401))
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await client.reply("hi", llm_id=bad.id)
                    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                    failed("401", err.value)

                    # Upstreams that echo the key in bodies, headers and URLs.
                    for ep, name in failing_endpoints(echo_root):
                        broken = await create_llm(client, ep, name=name)
                        events: list[str] = []
                        with pytest.raises(grpc.aio.AioRpcError) as err:
                            async for event in client.converse("hi", llm_id=broken.id):
                                events.append(repr(event))
                        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE,
                                                    grpc.StatusCode.FAILED_PRECONDITION,
                                                    grpc.StatusCode.INVALID_ARGUMENT), name
                        failed(name, err.value)
                        seen.extend((f"{name} event", e) for e in events)

                    # A key in a base_url query string is refused without being echoed.
                    for url in (f"ftp://example.com/v1?key={CANARY_URL}",
                                f"https://example.com/v1?key={CANARY_URL}",
                                f"http://user:{CANARY_URL}@127.0.0.1:9/v1"):
                        with pytest.raises(grpc.aio.AioRpcError) as err:
                            await client.create_llm(lpb.Llm(display_name="x", endpoints=[
                                lpb.Endpoint(api_spec=lpb.API_SPEC_OPENAI, base_url=url,
                                             model="m", api_key="sk-x")]), skip_validation=True)
                        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                        failed(f"bad base_url {url[:12]}", err.value)

                    # The database holds sealed keys only (main file and WAL).
                    seen.extend(read_files(tmp_path, "switchboard.db*"))
                    assert any(name.endswith("-wal") for name, _ in seen)
                    # The backstop: a careless log line with keys that have no recognisable
                    # shape is masked because the redactor shares the app's KnownSecrets.
                    structlog.get_logger("test").warning(
                        "careless", detail=f"upstream said {CANARY_AZURE} / {CANARY_GEMINI}")
            finally:
                await app.stop(grace_s=1.0)
    assert '"event": "careless"' in log_out.getvalue()
    seen.append(("logs", log_out.getvalue()))
    seen.extend(read_files(tmp_path, "switchboard.db*"))
    assert '"event": "rpc"' in log_out.getvalue() or '"event":"rpc"' in log_out.getvalue()
    for where, what in seen:
        assert_clean(what, where)


async def test_upstream_error_text_is_scrubbed_at_the_source(echo_root: str) -> None:
    """Before any log redactor: the UpstreamError the transport raises holds no key."""
    request = ChatRequest(messages=(Message(Role.USER, (TextPart("hi"),)),))
    async with UpstreamClient() as client:
        for ep, name in failing_endpoints(echo_root):
            endpoint_ = Endpoint(id="ep_1", api_spec=ApiSpec(_SPEC_NAMES[ep.api_spec]),
                                 base_url=ep.base_url, model=ep.model,
                                 api_key=Secret(ep.api_key), api_version=ep.api_version)
            with pytest.raises(UpstreamError) as info:
                async for _ in client.stream(adapter_for(endpoint_.api_spec), endpoint_,
                                             request, timeouts=Timeouts(2, 5, 5, 10)):
                    pass
            for text in (str(info.value), info.value.message, repr(info.value)):
                assert_clean(text, f"{name} exception")


_SPEC_NAMES = {lpb.API_SPEC_OPENAI: "openai", lpb.API_SPEC_AZURE_OPENAI: "azure_openai",
               lpb.API_SPEC_GEMINI: "gemini", lpb.API_SPEC_GROQ: "groq"}
