"""What validation reports: events while checks run, then one report per endpoint.

Plain values with no gRPC types; ``server.edge.validator`` turns them into protos. Event order
for one run: ``CheckStarted`` and ``CheckFinished`` (endpoints interleave, each endpoint's own
checks in catalogue order), then exactly one ``ValidationReport``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from server.registry.endpoint_capabilities import Capabilities


class CheckStatus(enum.StrEnum):
    PASS = "pass"  # the endpoint does what the spec says
    WARN = "warn"  # it works, with a caveat, or an optional capability is missing
    FAIL = "fail"  # it breaks the spec; a required failure blocks registration
    SKIPPED = "skipped"  # not run: a prerequisite failed, or it does not apply


@dataclass(frozen=True, slots=True)
class CheckStarted:
    endpoint_id: str
    check: str


@dataclass(frozen=True, slots=True)
class CheckFinished:
    """The result of one check on one endpoint. Texts never hold the endpoint's key."""

    endpoint_id: str
    check: str
    status: CheckStatus
    required: bool
    observed: str = ""
    expected: str = ""
    hint: str = ""
    duration_s: float = 0.0

    @property
    def blocking(self) -> bool:
        return self.required and self.status is CheckStatus.FAIL


# What a validation that detected nothing records (a probe that did not run detected nothing).
NOTHING_DETECTED = Capabilities(
    reasoning=False, reasoning_dialect="", tool_calling=False, image_input=False,
    reported_context_window_tokens=0, continues_partial_answer=False)


@dataclass(frozen=True, slots=True)
class EndpointReport:
    endpoint_id: str
    base_url: str
    checks: tuple[CheckFinished, ...]
    capabilities: Capabilities = NOTHING_DETECTED
    ttft_s: float | None = None  # measured time to first token of the streaming check
    prompt_tokens: int = 0  # the prompt size of that request (for the router's first sample)

    @property
    def passed(self) -> bool:
        return not any(c.blocking for c in self.checks)

    def check(self, name: str) -> CheckFinished | None:
        return next((c for c in self.checks if c.check == name), None)


@dataclass(frozen=True, slots=True)
class ValidationReport:
    endpoints: tuple[EndpointReport, ...]

    @property
    def passed(self) -> bool:
        return all(e.passed for e in self.endpoints)


Event = CheckStarted | CheckFinished | ValidationReport
