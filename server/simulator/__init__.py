"""An upstream LLM simulator: OpenAI, Azure OpenAI, Groq and Gemini streaming on loopback.

Used by the integration tests, the demo and the benchmarks. See ``Simulator`` and
``Behavior``; ``python -m server.simulator --help`` runs one from the command line.
"""

from server.simulator.behavior import (
    DEFAULT_TEXT,
    Behavior,
    Fault,
    FaultKind,
    Prefill,
    ReasoningDialect,
    Spec,
    ToolCall,
    Usage,
)
from server.simulator.log import RecordedRequest
from server.simulator.simulator import Simulator

__all__ = [
    "DEFAULT_TEXT",
    "Behavior",
    "Fault",
    "FaultKind",
    "Prefill",
    "ReasoningDialect",
    "RecordedRequest",
    "Simulator",
    "Spec",
    "ToolCall",
    "Usage",
]
