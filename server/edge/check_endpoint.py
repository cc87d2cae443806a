"""``switchboard check-endpoint``: the validation suite on one endpoint, nothing registered.

An edge like the gRPC servicers (it speaks protos): the CLI hands in an ``lpb.Endpoint`` and
prints ``ValidateLlmResponse`` events, the same ones ``ValidateLlm`` streams, converted by
``server.edge.validator``. The endpoint's fields are checked
as the registry checks them; a bad field is reported as a failed ``config.endpoint`` check.
Exit code 0 when every required check passed, 1 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from switchboard.v1 import llm_pb2 as lpb
from switchboard.v1 import registry_pb2 as rpb

from server.config import ConfigError, Settings, load
from server.edge.convert import llm_draft_from_pb
from server.edge.validation_pb import check_to_pb, response_to_pb
from server.edge.validator import ConformanceValidator
from server.errors import InvalidArgument, SwitchboardError
from server.netguard import NetPolicy, check_base_url
from server.registry.drafts import UPDATABLE, check_draft
from server.registry.llm import Endpoint, Llm
from server.secret import Secret
from server.validation.report import CheckFinished, CheckStatus, ValidationReport
from server.validation.suite import Validation

CONFIG_CHECK = "config.endpoint"
POLICY_CHECK = "config.server_policy"


async def policy_warning(endpoint_id: str, base_url: str,
                         settings: Settings | None = None) -> CheckFinished | None:
    """A WARN when a server with these settings (the environment's, as ``switchboard serve``
    would read them) would refuse ``base_url`` at registration: check-endpoint runs from this
    machine without the server's SSRF guard, so a PASS alone would mislead."""
    try:
        s = settings or load()
        policy = NetPolicy.parse(allow_http=s.allow_http_upstreams,
                                 allow_hosts=s.upstream_allow_hosts,
                                 allow_cidrs=s.upstream_allow_cidrs)
        await check_base_url(base_url, policy)
    except InvalidArgument as exc:
        why = "; ".join(v.description for v in exc.violations) or exc.message
        return CheckFinished(
            endpoint_id, POLICY_CHECK, CheckStatus.WARN, False,
            observed=f"a server with the current SWITCHBOARD_* settings refuses this URL: {why}",
            expected="a base_url the server's upstream guard admits",
            hint="on the server, admit the upstream: SWITCHBOARD_ALLOW_HTTP_UPSTREAMS=true for "
                 "http://, SWITCHBOARD_UPSTREAM_ALLOW_CIDRS (e.g. 127.0.0.0/8) or "
                 "SWITCHBOARD_UPSTREAM_ALLOW_HOSTS for private addresses; only for upstreams "
                 "you trust")
    except (ConfigError, SwitchboardError, ValueError):
        return None  # a bad setting is serve's to report; DNS trouble is network.dns's
    return None


async def check_endpoint(endpoint_pb: lpb.Endpoint,
                         show: Callable[[rpb.ValidateLlmResponse], None],
                         validation: Validation | None = None,
                         settings: Settings | None = None) -> int:
    draft = llm_draft_from_pb(lpb.Llm(display_name="check-endpoint", endpoints=[endpoint_pb]))
    endpoint_id = endpoint_pb.id or "#0"
    try:
        check_draft(draft, None, UPDATABLE)
    except InvalidArgument as exc:
        problems = "; ".join(f"{v.field.removeprefix('llm.endpoints[0].')} {v.description}"
                             for v in exc.violations) or exc.message
        result = CheckFinished(endpoint_id, CONFIG_CHECK, CheckStatus.FAIL, True,
                               observed=problems, expected="a complete, valid endpoint",
                               hint="fix the flags named above")
        show(rpb.ValidateLlmResponse(check_finished=check_to_pb(result)))
        show(rpb.ValidateLlmResponse(report=rpb.ValidationReport(passed=False)))
        return 1
    e = draft.endpoints[0]
    assert e.api_spec is not None  # checked by check_draft
    endpoint = Endpoint(
        id=endpoint_id, api_spec=e.api_spec, base_url=e.base_url.strip().rstrip("/"),
        model=e.model.strip(), api_key=e.api_key or Secret(""), api_version=e.api_version,
        label=e.label, priority=e.priority,
        extra_headers=tuple((n, v) for n, v in e.extra_headers if v is not None))
    llm = Llm(id="", account_id="", display_name="check-endpoint", endpoints=(endpoint,))
    passed = False
    warning = await policy_warning(endpoint_id, endpoint.base_url, settings)
    validator = ConformanceValidator(validation=validation or Validation(log_summary=False))
    async for event in validator.validate(llm):
        if isinstance(event, ValidationReport):
            if warning is not None:
                show(rpb.ValidateLlmResponse(check_finished=check_to_pb(warning)))
            passed = event.passed
        show(response_to_pb(event, datetime.now(UTC)))
    return 0 if passed else 1
