"""The ``switchboard`` command line.

    switchboard serve                                  run the server (settings from env/TOML)
    switchboard llm create --name N --spec openai --url U --model M [--key K] [--label L] ...
    switchboard llm list | get ID | delete ID | validate ID
    switchboard session create LLM_ID [--system S] | get ID | end ID
    switchboard chat LLM_ID [--system S]               interactive streaming chat
    switchboard keys rotate [--use-existing]           new primary master key, re-wrap secrets
    switchboard keys list | remove KEY_ID              master keys in use; drop a retired one
    switchboard admin create-account NAME | create-key ACCOUNT | revoke-key KEY | list-keys ACCT
    switchboard check-endpoint --spec openai --url U --model M [--key K]

The client commands read ``SWITCHBOARD_TARGET`` (default 127.0.0.1:50051) and
``SWITCHBOARD_API_KEY``; ``--target`` and ``--api-key`` override them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import grpc
from google.protobuf import json_format
from switchboard.v1 import conversations_pb2 as cpb
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb

from switchboard_client.client import Client, system, user
from switchboard_client.reply import Reply

SPECS = {
    "openai": lpb.API_SPEC_OPENAI,
    "azure": lpb.API_SPEC_AZURE_OPENAI,
    "azure_openai": lpb.API_SPEC_AZURE_OPENAI,
    "gemini": lpb.API_SPEC_GEMINI,
    "groq": lpb.API_SPEC_GROQ,
}
DIM, RESET = "\033[2m", "\033[0m"


def _client(args: argparse.Namespace) -> Client:
    key = args.api_key or os.environ.get("SWITCHBOARD_API_KEY", "")
    if not key:
        sys.exit("set SWITCHBOARD_API_KEY or pass --api-key")
    return Client(args.target or os.environ.get("SWITCHBOARD_TARGET", "127.0.0.1:50051"), key)


def _print(message: object) -> None:
    print(json_format.MessageToJson(message, preserving_proto_field_name=True))  # type: ignore[arg-type]


def endpoint_from_args(args: argparse.Namespace) -> lpb.Endpoint:
    ep = lpb.Endpoint(api_spec=SPECS[args.spec], base_url=args.url, model=args.model,
                      api_key=args.key or os.environ.get("UPSTREAM_API_KEY", ""),
                      api_version=args.api_version or "", label=args.label or "")
    if args.priority is not None:
        ep.priority = args.priority
    return ep


def print_check(event: rpb.ValidateLlmResponse) -> None:
    if event.HasField("check_finished"):
        c = event.check_finished
        status = rpb.CheckStatus.Name(c.status).removeprefix("CHECK_STATUS_")
        print(f"  [{status:<7}] {c.endpoint_id} {c.check}: {c.observed}")
        if c.status in (rpb.CHECK_STATUS_FAIL, rpb.CHECK_STATUS_WARN) and c.hint:
            print(f"            expected: {c.expected}\n            fix: {c.hint}")
    elif event.HasField("report"):
        print("PASSED" if event.report.passed else "FAILED: fix the checks marked FAIL above")


def cmd_llm(args: argparse.Namespace) -> int:
    with _client(args) as sb:
        if args.action == "create":
            llm = lpb.Llm(display_name=args.name, endpoints=[endpoint_from_args(args)])
            _print(sb.create_llm(llm, skip_validation=args.skip_validation))
        elif args.action == "list":
            for llm in sb.list_llms():
                print(f"{llm.id}  {llm.display_name}  ({len(llm.endpoints)} endpoints)")
        elif args.action == "get":
            _print(sb.get_llm(args.id))
        elif args.action == "delete":
            sb.delete_llm(args.id)
            print(f"deleted {args.id}")
        elif args.action == "validate":
            for event in sb.validate_llm(args.id):
                print_check(event)
    return 0


def cmd_session(args: argparse.Namespace) -> int:
    with _client(args) as sb:
        if args.action == "create":
            _print(sb.create_session(args.id, args.system or ""))
        elif args.action == "get":
            _print(sb.get_session(args.id))
        elif args.action == "end":
            sb.end_session(args.id)
            print(f"ended {args.id}")
    return 0


def stream_turn(sb: Client, messages: Sequence[cpb.Message] | str, *, session_id: str = "",
                llm_id: str = "") -> Reply:
    """Streams one turn to stdout: reasoning dimmed and apart from the text."""
    write = sys.stdout.write
    reply = Reply()
    mode = ""
    for event in sb.converse(messages, session_id=session_id, llm_id=llm_id):
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
            write(f"{RESET}\n{DIM}[failover] {event.from_endpoint_id} -> {event.to_endpoint_id}: "
                  f"{event.cause}; discarding {', '.join(event.discard_message_ids) or 'nothing'}"
                  f"{RESET}\n")
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


def cmd_chat(args: argparse.Namespace) -> int:
    with _client(args) as sb:
        session = sb.create_session(args.llm_id, args.system or "")
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
            except grpc.RpcError as exc:
                print(f"error: {exc.code().name}: {exc.details()}")
        sb.end_session(session.id)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from server.main import main as serve_main

    return serve_main([])


def cmd_admin(args: argparse.Namespace) -> int:
    from server.admin import run_admin

    return int(asyncio.run(run_admin(args)))


def cmd_check_endpoint(args: argparse.Namespace) -> int:
    from server.admin import check_endpoint

    return int(asyncio.run(check_endpoint(args, endpoint_from_args(args), print_check)))


def _endpoint_flags(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--spec", choices=sorted(SPECS), default="openai")
    p.add_argument("--url", required=required, help="base URL, e.g. https://api.openai.com/v1")
    p.add_argument("--model", required=required)
    p.add_argument("--key", help="provider API key (or UPSTREAM_API_KEY)")
    p.add_argument("--api-version", help="Azure api-version")
    p.add_argument("--label")
    p.add_argument("--priority", type=int)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="switchboard", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--target")
    top.add_argument("--api-key")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("serve").set_defaults(fn=cmd_serve)
    llm = sub.add_parser("llm")
    llm.add_argument("action", choices=["create", "list", "get", "delete", "validate"])
    llm.add_argument("id", nargs="?")
    llm.add_argument("--name", default="my-llm")
    llm.add_argument("--skip-validation", action="store_true")
    _endpoint_flags(llm, required=False)
    llm.set_defaults(fn=cmd_llm)
    ses = sub.add_parser("session")
    ses.add_argument("action", choices=["create", "get", "end"])
    ses.add_argument("id")
    ses.add_argument("--system")
    ses.set_defaults(fn=cmd_session)
    chat = sub.add_parser("chat")
    chat.add_argument("llm_id")
    chat.add_argument("--system")
    chat.set_defaults(fn=cmd_chat)
    keys = sub.add_parser("keys")
    keys.add_argument("action", choices=["rotate", "list", "remove"])
    keys.add_argument("key_id", nargs="?", help="remove: the retired master key id")
    keys.add_argument("--use-existing", action="store_true",
                      help="rotate: re-wrap under the configured primary, add no key")
    keys.add_argument("--new-key-id", help="rotate: id of the new key (default k<date>-<hex>)")
    keys.set_defaults(fn=cmd_admin, admin="keys")
    admin = sub.add_parser("admin")
    admin.add_argument("admin", choices=["create-account", "create-key", "revoke-key",
                                         "list-keys"])
    admin.add_argument("arg")
    admin.add_argument("--description", default="")
    admin.set_defaults(fn=cmd_admin)
    check = sub.add_parser("check-endpoint")
    _endpoint_flags(check, required=True)
    check.set_defaults(fn=cmd_check_endpoint)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1


__all__ = ["main", "stream_turn", "system", "user"]

if __name__ == "__main__":
    sys.exit(main())
