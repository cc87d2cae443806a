"""Per-provider wire formats: how answers, errors and faults look on the wire."""

from __future__ import annotations

from server.simulator.behavior import Spec
from server.simulator.formats.azure import AzureFormat
from server.simulator.formats.common import Encoded, ErrorContext, Quirks, Reply, WireFormat
from server.simulator.formats.gemini import GeminiFormat
from server.simulator.formats.groq import GroqFormat
from server.simulator.formats.openai import OpenAIFormat

__all__ = ["Encoded", "ErrorContext", "Quirks", "Reply", "WireFormat", "wire_formats"]


def wire_formats() -> dict[Spec, WireFormat]:
    """One formatter per spec; formatters hold no per-request state."""
    return {
        Spec.OPENAI: OpenAIFormat(),
        Spec.AZURE_OPENAI: AzureFormat(),
        Spec.GROQ: GroqFormat(),
        Spec.GEMINI: GeminiFormat(),
    }
