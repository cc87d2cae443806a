"""The switchboard command line.

    switchboard serve                         run the server (--help lists every setting)
    switchboard llm create --name N --endpoint spec=openai,url=U,model=M,key-env=VAR [...]
    switchboard llm create --file llm.yaml    or one endpoint: --spec --url --model --key
    switchboard llm update ID | validate [ID] | list | get ID | delete ID
    switchboard session create LLM_ID [--system S] | get ID | end ID
    switchboard chat LLM_ID [--system S]      interactive streaming chat
    switchboard wait ADDRESS...               until each host:port accepts connections
    switchboard keys init FILE                a new master key file (once; back it up)
    switchboard keys rotate [--use-existing] | list | remove KEY_ID
    switchboard admin create-account NAME | create-key ACCOUNT | revoke-key KEY | list-keys ACCT
    switchboard check-endpoint --spec openai --url U --model M [--key K]

The client commands read SWITCHBOARD_TARGET (default 127.0.0.1:50051) and
SWITCHBOARD_API_KEY; --target and --api-key override them. `switchboard COMMAND --help`
describes each command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

import grpc
from switchboard.v1 import conversations_pb2 as cpb

from switchboard_client import cli_llm
from switchboard_client.cli_llm import print_check, print_json
from switchboard_client.client import DEFAULT_TIMEOUT_S, Client, system, user
from switchboard_client.errors import SwitchboardError
from switchboard_client.reply import Reply
from switchboard_client.specs import SpecError

DIM, RESET = "\033[2m", "\033[0m"


def _client(args: argparse.Namespace) -> Client:
    key = getattr(args, "api_key", None) or os.environ.get("SWITCHBOARD_API_KEY", "")
    if not key:
        sys.exit("set SWITCHBOARD_API_KEY or pass --api-key")
    target = getattr(args, "target", None) or os.environ.get("SWITCHBOARD_TARGET",
                                                             "127.0.0.1:50051")
    return Client(target, key)


def stream_turn(sb: Client, messages: Sequence[cpb.Message] | str, *, session_id: str = "",
                llm_id: str = "", barge_in: bool = False) -> Reply:
    """Streams one turn to stdout: reasoning dimmed and apart from the text. ``barge_in``:
    interrupt the session's running turn instead of failing with SESSION_BUSY."""
    write = sys.stdout.write
    reply = Reply()
    mode = ""
    extra = {"barge_in": True} if barge_in else {}
    for event in sb.converse(messages, session_id=session_id, llm_id=llm_id, **extra):
        reply.apply(event)
        if isinstance(event, cpb.RouteDecision):
            reason = cpb.RouteReason.Name(event.reason).removeprefix("ROUTE_REASON_").lower()
            label = f" ({event.endpoint_label})" if event.endpoint_label else ""
            write(f"{DIM}[route] attempt {event.attempt} -> {event.endpoint_id}{label}: "
                  f"{reason}{RESET}\n")
            mode = ""
        elif isinstance(event, cpb.ReasoningDelta):
            if mode != "reasoning":
                write(f"{DIM}[reasoning] ")
                mode = "reasoning"
            write(event.delta)
        elif isinstance(event, cpb.TextDelta):
            if mode != "text":
                write(f"{RESET}\n[answer] " if mode == "reasoning" else "[answer] ")
                mode = "text"
            write(event.delta)
        elif isinstance(event, cpb.Failover):
            what = ("continuing the same answer, nothing discarded"
                    if event.mode == cpb.FAILOVER_MODE_CONTINUE else
                    f"restarting, discarding {', '.join(event.discard_message_ids) or 'nothing'}")
            write(f"{RESET}\n{DIM}[failover] {event.from_endpoint_id} -> {event.to_endpoint_id}: "
                  f"{event.cause}; {what}{RESET}\n")
            mode = ""
        elif isinstance(event, cpb.ToolCallDelta) and event.name:
            write(f"\n[tool call] {event.name}")
        elif isinstance(event, cpb.TurnFinished):
            u = reply.usage or cpb.Usage()
            write(f"{RESET}\n{DIM}[finished] {cpb.FinishReason.Name(event.finish_reason)} "
                  f"by {event.endpoint_id} ({event.model}), attempts {event.attempts}, "
                  f"ttft {event.time_to_first_token.ToMilliseconds()} ms, tokens in "
                  f"{u.input_tokens} out {u.output_tokens} reasoning {u.reasoning_tokens}"
                  f"{RESET}\n")
        sys.stdout.flush()
    return reply


def cmd_llm(args: argparse.Namespace) -> int:
    with _client(args) as sb:
        return cli_llm.run(args, sb)


def cmd_session(args: argparse.Namespace) -> int:
    with _client(args) as sb:
        if args.action == "create":
            print_json(sb.create_session(args.id, args.system or "", timeout=args.timeout))
        elif args.action == "get":
            print_json(sb.get_session(args.id, timeout=args.timeout))
        elif args.action == "end":
            sb.end_session(args.id, timeout=args.timeout)
            print(f"ended {args.id}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    with _client(args) as sb:
        session = sb.create_session(args.llm_id, args.system or "", timeout=args.timeout)
        print(f"session {session.id}; an empty line ends the chat")
        while True:
            try:
                line = input("> ").strip()
            except EOFError:
                break
            if not line:
                break
            try:
                stream_turn(sb, [user(line)], session_id=session.id)
            except SwitchboardError as exc:
                print(f"error: {exc}")
        sb.end_session(session.id, timeout=args.timeout)
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    """Waits until every address accepts a TCP connection, or the timeout passes (exit 1)."""
    deadline = time.monotonic() + args.timeout
    for address in args.address:
        host, _, port = address.rpartition(":")
        while True:
            try:
                with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)),
                                              timeout=1.0):
                    break
            except OSError:
                if time.monotonic() >= deadline:
                    print(f"error: nothing accepts connections on {address} after "
                          f"{args.timeout:g} s", file=sys.stderr)
                    return 1
                time.sleep(0.05)
    return 0


def _needs_server(command: str) -> None:
    """The server-side commands import the server; the client package alone does not have it."""
    import importlib.util

    if importlib.util.find_spec("server") is None:
        print(f"switchboard: `switchboard {command}` needs the server, which this installation "
              "does not have: install the repository's root package (pip install .)",
              file=sys.stderr)
        raise SystemExit(2)


def cmd_serve(args: argparse.Namespace) -> int:
    _needs_server("serve")
    from server.main import main as serve_main

    return serve_main()


def cmd_admin(args: argparse.Namespace) -> int:
    _needs_server("keys" if args.admin == "keys" else "admin")
    from server.admin import run_admin

    return int(asyncio.run(run_admin(args)))


def cmd_check_endpoint(args: argparse.Namespace) -> int:
    _needs_server("check-endpoint")
    from server.admin import check_endpoint

    endpoint = cli_llm.llm_from_args(args)[0].endpoints[0]
    return int(asyncio.run(check_endpoint(args, endpoint, print_check)))


class _SettingsHelp(argparse.Action):
    """``serve --help``: the usage, then every setting (read from the server's Settings)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        _needs_server("serve")
        from server.config import settings_help

        parser.print_help()
        print("\nsettings (environment SWITCHBOARD_<NAME>, or keys of the TOML file named by "
              "SWITCHBOARD_CONFIG):")
        print(settings_help())
        parser.exit()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="switchboard", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    conn = common.add_argument_group("connection")
    conn.add_argument("--target", default=argparse.SUPPRESS,
                      help="host:port of the server (default $SWITCHBOARD_TARGET or "
                           "127.0.0.1:50051)")
    conn.add_argument("--api-key", default=argparse.SUPPRESS,
                      help="caller key (default $SWITCHBOARD_API_KEY)")
    conn.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                      help=f"seconds per call (default {DEFAULT_TIMEOUT_S:g})")
    top.add_argument("--target", help=argparse.SUPPRESS)
    top.add_argument("--api-key", help=argparse.SUPPRESS)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", add_help=False, help="run the server",
                           description="Run the server until SIGTERM or SIGINT. Settings come "
                                       "from defaults, a TOML file and the environment.")
    serve.add_argument("-h", "--help", action=_SettingsHelp, help="show settings and exit")
    serve.set_defaults(fn=cmd_serve)
    cli_llm.add_parser(sub, common)
    sub.choices["llm"].set_defaults(fn=cmd_llm)
    ses = sub.add_parser("session", parents=[common], help="create, show or end a session",
                         description="Sessions keep a conversation's history on the server.")
    ses.add_argument("action", choices=["create", "get", "end"])
    ses.add_argument("id", help="create: the LLM id; get, end: the session id")
    ses.add_argument("--system", help="create: the system prompt")
    ses.set_defaults(fn=cmd_session)
    chat = sub.add_parser("chat", parents=[common], help="chat with an LLM in a session",
                          description="Interactive streaming chat; an empty line ends it.")
    chat.add_argument("llm_id")
    chat.add_argument("--system", help="the system prompt")
    chat.set_defaults(fn=cmd_chat)
    wait = sub.add_parser("wait", help="wait until servers accept connections",
                          description="Wait until each host:port accepts TCP connections "
                                      "(scripts: start a server in the background, then wait).")
    wait.add_argument("address", nargs="+", metavar="HOST:PORT")
    wait.add_argument("--timeout", type=float, default=30.0, help="seconds in all (default 30)")
    wait.set_defaults(fn=cmd_wait)
    keys = sub.add_parser("keys", help="the vault's master keys",
                          description="init FILE: create a key file with one new key (once; "
                                      "back it up). rotate: a new primary key, every secret "
                                      "re-wrapped. list: keys and their secrets. remove KEY_ID.")
    keys.add_argument("action", choices=["init", "rotate", "list", "remove"])
    keys.add_argument("key_id", nargs="?", help="init: the key file; remove: the key id")
    keys.add_argument("--use-existing", action="store_true",
                      help="rotate: re-wrap under the configured primary, add no key")
    keys.add_argument("--new-key-id", help="rotate, init: id of the new key (default "
                                           "k<date>-<hex>)")
    keys.set_defaults(fn=cmd_admin, admin="keys")
    admin = sub.add_parser("admin", help="accounts and caller keys (acts on the database)",
                           description="Accounts and caller keys, on the configured database.")
    admin.add_argument("admin", choices=["create-account", "create-key", "revoke-key",
                                         "list-keys"])
    admin.add_argument("arg", help="the account name, account id or key id")
    admin.add_argument("--description", default="")
    admin.set_defaults(fn=cmd_admin)
    check = sub.add_parser("check-endpoint", help="run the conformance checks on one endpoint",
                           description="Run the validation suite on one endpoint from this "
                                       "machine; nothing is registered. Exit 1 on failure.")
    cli_llm.single_endpoint_flags(check, required=True)
    check.set_defaults(fn=cmd_check_endpoint, endpoint=None, file=None, name=None)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (SpecError, grpc.RpcError) as exc:
        return cli_llm.handle_errors(exc)


__all__ = ["main", "stream_turn", "system", "user"]

if __name__ == "__main__":
    sys.exit(main())
