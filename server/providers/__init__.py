"""The provider layer: one adapter per ``ApiSpec`` and one HTTP path shared by all of them.

What the turn engine uses::

    from server.providers.adapters import adapter_for
    from server.providers.transport import UpstreamClient, UpstreamTimeout
    from server.timeouts import Timeouts
    from server.providers.base import ErrorKind, UpstreamError

    async with UpstreamClient() as upstream:          # one per process (composition root)
        timeouts = Timeouts().capped(context.time_remaining())
        stream = upstream.stream(adapter_for(ep.api_spec), ep, chat_request, timeouts=timeouts)
        async with contextlib.aclosing(stream):         # closes the upstream if we stop early
            async for event in stream: ...               # TextDelta | ReasoningDelta |
                                                         # ToolCallDelta | Usage | Finish

The stream ends with ``Usage`` (when the provider reported one) and then exactly one
``Finish``; anything else ends with an ``UpstreamError``. Normalisations shared by every
adapter:

* ``Usage.output_tokens`` EXCLUDES reasoning; ``reasoning_tokens`` is reported separately
  (billed output = output + reasoning). OpenAI-style ``completion_tokens`` include reasoning,
  so the adapters subtract it; Gemini's ``candidatesTokenCount`` already excludes thoughts.
* A turn that produced tool calls finishes with ``FinishReason.TOOL_CALLS`` even when the
  provider says ``stop`` (Gemini always does; vLLM does for a named tool choice).
* Refusals (``delta.refusal``) are streamed as text: they are the model's answer.
* Reasoning is never sent back upstream in later turns.

Modules: ``sse`` (incremental SSE parser), ``errors`` (the one error classifier), ``think``
(``<think>`` splitter), ``openai_request``/``openai_stream`` (Chat Completions, shared by
``openai``, ``azure`` and ``groq``), ``gemini_request``/``gemini_stream`` (used by ``gemini``),
``registry`` (``adapter_for``), ``transport`` (``UpstreamClient``).
"""
