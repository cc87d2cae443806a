"""``switchboard llm ...``: create, update, validate, list, get, delete, and how a validation
report reads on a terminal (warnings on success; failing checks with their fixes on refusal)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb

from switchboard_client.client import Client
from switchboard_client.errors import SwitchboardError
from switchboard_client.specs import SPECS, SpecError, load_llm_file, parse_endpoint

_STATUS = {rpb.CHECK_STATUS_PASS: "PASS", rpb.CHECK_STATUS_WARN: "WARN",
           rpb.CHECK_STATUS_FAIL: "FAIL", rpb.CHECK_STATUS_SKIPPED: "SKIPPED"}


def print_json(message: Message) -> None:
    print(json_format.MessageToJson(message, preserving_proto_field_name=True))


def check_lines(c: rpb.CheckResult, *, detail: bool) -> list[str]:
    """One check as terminal lines; ``detail`` adds what was expected and the fix."""
    lines = [f"  [{_STATUS.get(c.status, '?'):<7}] {c.endpoint_id} {c.check}: {c.observed}"]
    if detail:
        if c.expected:
            lines.append(f"            expected: {c.expected}")
        if c.hint:
            lines.append(f"            fix: {c.hint}")
    return lines


def print_check(event: rpb.ValidateLlmResponse) -> None:
    """A ValidateLlm event as it arrives (used by ``llm validate`` and ``check-endpoint``)."""
    if event.HasField("check_finished"):
        c = event.check_finished
        detail = c.status in (rpb.CHECK_STATUS_FAIL, rpb.CHECK_STATUS_WARN)
        print("\n".join(check_lines(c, detail=detail)), flush=True)
    elif event.HasField("report"):
        print("PASSED" if event.report.passed else "FAILED: fix the checks marked FAIL above")


def report_lines(report: rpb.ValidationReport) -> list[str]:
    """The checks worth reading: failures (with fixes) and warnings; passes are counted."""
    lines: list[str] = []
    for endpoint in report.endpoints:
        worth = [c for c in endpoint.checks
                 if c.status in (rpb.CHECK_STATUS_FAIL, rpb.CHECK_STATUS_WARN)]
        passed = sum(c.status == rpb.CHECK_STATUS_PASS for c in endpoint.checks)
        verdict = "passed" if endpoint.passed else "FAILED"
        lines.append(f"endpoint {endpoint.endpoint_id} ({endpoint.base_url}): {verdict}, "
                     f"{passed} of {len(endpoint.checks)} checks passed")
        for c in sorted(worth, key=lambda c: c.status != rpb.CHECK_STATUS_FAIL):
            lines.extend(check_lines(c, detail=True))
    return lines


def _endpoints(args: argparse.Namespace) -> list[lpb.Endpoint]:
    endpoints = [parse_endpoint(spec) for spec in args.endpoint or ()]
    if getattr(args, "url", None):  # the single-endpoint flags
        ep = lpb.Endpoint(api_spec=SPECS[args.spec], base_url=args.url, model=args.model or "",
                          api_key=args.key or "", api_version=args.api_version or "",
                          label=args.label or "")
        if args.priority is not None:
            ep.priority = args.priority
        endpoints.append(ep)
    return endpoints


def llm_from_args(args: argparse.Namespace) -> tuple[lpb.Llm, list[str]]:
    """The LLM the flags describe, and the fields they set (an update's mask)."""
    if args.file:
        llm, paths = load_llm_file(args.file)
    else:
        llm, paths = lpb.Llm(), []
    endpoints = _endpoints(args)
    if endpoints:
        del llm.endpoints[:]
        llm.endpoints.extend(endpoints)
        paths.append("endpoints")
    if args.name:
        llm.display_name = args.name
        paths.append("display_name")
    return llm, sorted(set(paths))


def _show_saved(verb: str, llm: lpb.Llm, report: rpb.ValidationReport | None,
                quiet: bool) -> None:
    out = sys.stderr if quiet else sys.stdout
    if quiet:
        print(llm.id)
    else:
        print(f"{verb} LLM {llm.id} ({llm.display_name}) with {len(llm.endpoints)} "
              f"endpoint(s)", file=out)
        for e in llm.endpoints:
            label = f" [{e.label}]" if e.label else ""
            print(f"  {e.id}{label} {lpb.ApiSpec.Name(e.api_spec).removeprefix('API_SPEC_')} "
                  f"{e.base_url} model {e.model} key {e.api_key_hint or '(none)'}", file=out)
    if report is not None and report.endpoints:
        print("validation:", file=out)
        print("\n".join(report_lines(report)), file=out)


def explain_refusal(exc: SwitchboardError) -> None:
    """A refused call on stderr; for a failed validation, the failing checks and their fixes."""
    print(f"error: {exc}", file=sys.stderr)
    for v in exc.field_violations:
        print(f"  {v.field}: {v.description}", file=sys.stderr)
    if exc.validation is not None:
        print("\n".join(report_lines(exc.validation)), file=sys.stderr)
        print("nothing was stored; fix the checks marked FAIL (or pass --skip-validation)",
              file=sys.stderr)


def run(args: argparse.Namespace, sb: Client) -> int:
    action = args.action
    if action == "create":
        llm, _ = llm_from_args(args)
        if not llm.display_name:
            llm.display_name = "my-llm"
        created = sb.create_llm(llm, skip_validation=args.skip_validation,
                                validate_only=args.validate_only, timeout=args.timeout)
        report = created.validation if created.HasField("validation") else None
        if args.validate_only:
            print("\n".join(report_lines(created.validation)))
            return 0
        _show_saved("created", created.llm, report, args.quiet)
    elif action == "update":
        llm, paths = llm_from_args(args)
        if not paths:
            raise SpecError("nothing to update: give --name, --endpoint or --file")
        llm.id = args.id
        updated = sb.update_llm(llm, paths, skip_validation=args.skip_validation,
                                timeout=args.timeout)
        report = updated.validation if updated.HasField("validation") else None
        _show_saved(f"updated ({', '.join(paths)})", updated.llm, report, args.quiet)
    elif action == "validate":
        if args.id:
            events: Iterable[rpb.ValidateLlmResponse] = sb.validate_llm(args.id,
                                                                        timeout=args.timeout)
        else:
            llm, _ = llm_from_args(args)
            if not llm.endpoints:
                raise SpecError("validate what? give an LLM id, --endpoint or --file")
            llm.display_name = llm.display_name or "draft"
            events = sb.validate_llm(llm=llm, timeout=args.timeout)
        passed = False
        for event in events:
            print_check(event)
            passed = passed or (event.HasField("report") and event.report.passed)
        return 0 if passed else 1
    elif action == "list":
        for llm in sb.list_llms(timeout=args.timeout):
            print(f"{llm.id}  {llm.display_name}  ({len(llm.endpoints)} endpoints)")
    elif action == "get":
        print_json(sb.get_llm(args.id, timeout=args.timeout))
    elif action == "delete":
        sb.delete_llm(args.id, timeout=args.timeout)
        print(f"deleted {args.id}")
    return 0


def single_endpoint_flags(p: argparse.ArgumentParser, required: bool) -> None:
    """--spec --url --model --key ...: one endpoint, the short way."""
    group = p if required else p.add_argument_group("one endpoint, the short way")
    group.add_argument("--spec", choices=sorted(SPECS), default="openai",
                       help="the API the endpoint speaks (default openai)")
    group.add_argument("--url", required=required,
                       help="base URL, e.g. https://api.openai.com/v1")
    group.add_argument("--model", required=required, help="the model (Azure: deployment)")
    group.add_argument("--key", help="the provider's API key")
    group.add_argument("--api-version", help="Azure api-version")
    group.add_argument("--label", help="a name for the endpoint, shown in routes and metrics")
    group.add_argument("--priority", type=int, help="lower is preferred when latencies tie")


def _definition_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="display name")
    p.add_argument("--endpoint", action="append", metavar="SPEC",
                   help="an endpoint, repeatable: spec=openai,url=URL,model=M,key-env=VAR"
                        "[,label=L][,priority=N][,api-version=V] (key=K instead of key-env)")
    p.add_argument("--file", metavar="PATH",
                   help="the LLM as JSON or YAML (protobuf JSON names; apiKeyEnv for keys)")
    single_endpoint_flags(p, required=False)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               common: argparse.ArgumentParser) -> None:
    llm = sub.add_parser("llm", help="register and manage custom LLMs",
                         description="Register and manage custom LLMs.")
    actions = llm.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", parents=[common], help="register an LLM (its endpoints are validated first)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Register an LLM. Every endpoint is validated first; a failed required\n"
                    "check refuses the registration and prints the failing checks with their\n"
                    "fixes; warnings are printed on success.",
        epilog="example, two endpoints:\n"
               "  switchboard llm create --name assistant \\\n"
               "    --endpoint spec=openai,url=https://api.openai.com/v1,model=gpt-4o-mini,"
               "key-env=OPENAI_API_KEY,label=us \\\n"
               "    --endpoint spec=groq,url=https://api.groq.com/openai/v1,"
               "model=llama-3.1-8b-instant,key-env=GROQ_API_KEY,label=groq")
    _definition_flags(create)
    create.add_argument("--skip-validation", action="store_true", help="store without checks")
    create.add_argument("--validate-only", action="store_true",
                        help="run the checks and store nothing")
    create.add_argument("-q", "--quiet", action="store_true",
                        help="print only the new LLM's id on stdout (the report goes to stderr)")
    update = actions.add_parser(
        "update", parents=[common], help="change an LLM's name or endpoints",
        description="Change the fields given (--name, --endpoint replaces every endpoint, "
                    "--file sets the fields it holds). Changed endpoints are validated.")
    update.add_argument("id", help="the LLM id (llm_...)")
    _definition_flags(update)
    update.add_argument("--skip-validation", action="store_true")
    update.add_argument("-q", "--quiet", action="store_true", help="print only the id")
    validate = actions.add_parser(
        "validate", parents=[common], help="run the conformance checks, streaming the report",
        description="Run the conformance checks on a stored LLM (by id) or on endpoints given "
                    "with --endpoint / --file (nothing is stored); exit 1 if a required "
                    "check fails.")
    validate.add_argument("id", nargs="?", help="a stored LLM's id")
    _definition_flags(validate)
    actions.add_parser("list", parents=[common], help="list your LLMs",
                       description="List your LLMs, one per line.")
    for name, text in (("get", "show an LLM as JSON"), ("delete", "delete an LLM")):
        p = actions.add_parser(name, parents=[common], help=text, description=text.capitalize())
        p.add_argument("id", help="the LLM id (llm_...)")


def handle_errors(exc: Exception) -> int:
    if isinstance(exc, SpecError):
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, SwitchboardError):
        explain_refusal(exc)
        return 1
    assert isinstance(exc, grpc.RpcError)
    print(f"error: {SwitchboardError.from_rpc_error(exc)}", file=sys.stderr)
    return 1
