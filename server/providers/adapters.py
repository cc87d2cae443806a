"""Which adapter speaks which ``ApiSpec``."""

from __future__ import annotations

from types import MappingProxyType

from server.providers.azure import AzureOpenAIAdapter
from server.providers.base import ProviderAdapter
from server.providers.gemini import GeminiAdapter
from server.providers.groq import GroqAdapter
from server.providers.openai import OpenAIAdapter
from server.registry.llm import ApiSpec

# Adapters are stateless, so one instance per spec is shared (read-only mapping).
_ADAPTERS: MappingProxyType[ApiSpec, ProviderAdapter] = MappingProxyType(
    {
        ApiSpec.OPENAI: OpenAIAdapter(),
        ApiSpec.AZURE_OPENAI: AzureOpenAIAdapter(),
        ApiSpec.GEMINI: GeminiAdapter(),
        ApiSpec.GROQ: GroqAdapter(),
    }
)


def adapter_for(api_spec: ApiSpec) -> ProviderAdapter:
    """The adapter for ``api_spec``; ``KeyError`` for a spec without one."""
    return _ADAPTERS[api_spec]
