"""Conformance checks run when an LLM is registered (issue 6).

``Validation(limits).run(endpoints, generation)`` checks each endpoint over its raw HTTP
exchange and streams ``CheckStarted``/``CheckFinished`` events, then one ``ValidationReport``.
Domain code only: ``server.edge.validator`` turns the events into protos.
"""

from server.validation.report import (
    CheckFinished,
    CheckStarted,
    CheckStatus,
    EndpointReport,
    Event,
    ValidationReport,
)
from server.validation.suite import Validation, ValidationLimits

__all__ = [
    "CheckFinished",
    "CheckStarted",
    "CheckStatus",
    "EndpointReport",
    "Event",
    "Validation",
    "ValidationLimits",
    "ValidationReport",
]
