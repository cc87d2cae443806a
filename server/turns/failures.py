"""Why a turn cannot be answered: the typed error it ends with.

A request no endpoint can take (capabilities), a failure another endpoint would not fix, an
answer that broke after output with nothing left to restart it, or no endpoint left to try.
"""

from __future__ import annotations

from collections.abc import Callable

from server.chat import ChatRequest
from server.errors import FailedPrecondition, InvalidArgument, SwitchboardError, Unavailable
from server.providers.base import ErrorKind, UpstreamError
from server.registry.llm import Llm
from server.routing import capabilities
from server.routing.route_plan import RoutePlan, StopReason
from server.turns.turn_state import TurnState


def capable_llm(llm: Llm, request: ChatRequest) -> Llm:
    """``llm`` with only the endpoints whose recorded capabilities allow ``request``."""
    capable, missing = capabilities.restrict(llm, capabilities.required_by(request))
    if missing:
        what = capabilities.describe(missing)
        raise InvalidArgument(
            f"this turn needs {what}, and no endpoint of this LLM supports it (as validation "
            f"recorded); leave that part out, or add an endpoint that has {what}",
            reason="CAPABILITY_UNAVAILABLE", metadata={"capability": missing})
    return capable


def terminal(error: UpstreamError, every_endpoint: bool = True) -> SwitchboardError:
    if error.kind is ErrorKind.CONTEXT_LENGTH:
        # Every endpoint was tried or has a known window too small (an unknown one is tried):
        # "every endpoint" is true unless the turn's capabilities left some out.
        which = ("every endpoint of this LLM" if every_endpoint
                 else "every endpoint of this LLM that supports what this turn needs")
        return InvalidArgument(f"the conversation is too long for {which}: "
                               f"{error.message}", reason="CONTEXT_LENGTH_EXCEEDED")
    if error.kind is ErrorKind.CONTENT_FILTERED:
        return FailedPrecondition(f"the provider's content filter refused: {error.message}",
                                  reason="CONTENT_FILTERED")
    if error.kind is ErrorKind.BAD_REQUEST:
        return InvalidArgument(f"the provider rejected the request: {error.message}",
                               reason="UPSTREAM_BAD_REQUEST")
    if error.kind is ErrorKind.UNSUPPORTED_INPUT:
        return InvalidArgument(f"no endpoint of this LLM could take this request: "
                               f"{error.message}", reason="UNSUPPORTED_INPUT")
    return Unavailable(error.message, reason="UPSTREAM_UNAVAILABLE",
                       retry_after_s=error.retry_after_s or 1.0)


# Why a broken answer was not restarted on another endpoint (the error says which).
TOOL_CALL_SENT = "a tool call was already streamed and is never replayed"
POLICY_NO_RESTART = "this LLM's routing policy does not restart an answer after its first token"
NOTHING_LEFT = "no other endpoint is left to restart the answer"
NO_TAKE_BACK = ("an OpenAI-compatible client cannot take back text it was sent, so the "
                "answer is not restarted, and no other endpoint could continue it")


def after_output(error: UpstreamError, why: str) -> SwitchboardError:
    return Unavailable(f"the answer broke after output was streamed ({error.message}) and "
                       f"{why}; discard the partial answer and retry the turn",
                       reason="UPSTREAM_STREAM_BROKEN", retry_after_s=1.0)


def restart_failed(broke: UpstreamError, refused: SwitchboardError) -> SwitchboardError:
    """After a failover, the restart hit an error another endpoint would not fix (the
    fallback rejected it): the request itself was fine where it began, so this is not the
    caller's INVALID_ARGUMENT but a broken answer to retry."""
    return Unavailable(f"the answer broke after output was streamed ({broke.message}) and its "
                       f"restart on another endpoint failed ({refused.message}); discard the "
                       "partial answer and retry the turn", reason="UPSTREAM_STREAM_BROKEN",
                       retry_after_s=1.0)


def no_plan(plan: RoutePlan) -> SwitchboardError:
    if plan.stop is StopReason.NO_ENDPOINTS:
        return FailedPrecondition("this LLM has no endpoints", reason="NO_ENDPOINTS")
    wait = plan.retry_after_s or 1.0
    return Unavailable(f"no endpoint of this LLM can take traffic now ({plan.stop}); "
                       f"retry in {wait:.1f}s", reason="NO_ENDPOINT_AVAILABLE",
                       retry_after_s=wait)


def exhausted(turn: TurnState, plan: Callable[[], RoutePlan]) -> SwitchboardError:
    """Nothing left to try: why, from the errors of the attempts (none: from the plan)."""
    errors = turn.errors
    if not errors:
        return no_plan(plan())
    last = errors[-1]
    if all(e.kind is ErrorKind.AUTHENTICATION for e in errors):
        return FailedPrecondition(
            f"every endpoint tried rejected its stored provider API key ({last.message}); "
            "update the LLM's api_key", reason="UPSTREAM_KEY_REJECTED")
    retry = max((e.retry_after_s or 0.0 for e in errors), default=0.0) or 1.0
    causes = "; ".join(dict.fromkeys(e.message for e in errors))
    return Unavailable(f"no endpoint could answer after {len(turn.attempted)} attempt(s): "
                       f"{causes}", reason="UPSTREAM_UNAVAILABLE", retry_after_s=retry)
