"""Which endpoints can take a turn at all: a turn with images or tools goes only where the
recorded capabilities allow it.

Validation records ``image_input`` and ``tool_calling`` on each endpoint. An endpoint whose
record says False never gets such a turn (a text-only llama-server answers an image with an
error, and that error must not cost a turn an attempt); an endpoint without a record (it was
registered with ``skip_validation``) is a candidate, and its refusal is a request-caused error
that sends the turn on to the next endpoint.
"""

from __future__ import annotations

from dataclasses import replace

from server.chat import ChatRequest, ImagePart
from server.registry.llm import Endpoint, Llm

IMAGE_INPUT = "image_input"
TOOL_CALLING = "tool_calling"
_WHAT = {IMAGE_INPUT: "image input", TOOL_CALLING: "tool calling"}


def required_by(request: ChatRequest) -> tuple[str, ...]:
    """The capabilities ``request`` needs (images anywhere in the history, offered tools)."""
    needed: list[str] = []
    if any(isinstance(p, ImagePart) for m in request.messages for p in m.parts):
        needed.append(IMAGE_INPUT)
    if request.tools:
        needed.append(TOOL_CALLING)
    return tuple(needed)


def allows(endpoint: Endpoint, capability: str) -> bool:
    """False only when validation recorded that the endpoint lacks ``capability``."""
    caps = endpoint.capabilities
    recorded = {IMAGE_INPUT: caps.image_input, TOOL_CALLING: caps.tool_calling}.get(capability)
    return recorded is not False


def restrict(llm: Llm, needed: tuple[str, ...]) -> tuple[Llm, str]:
    """``llm`` with only the endpoints that allow every capability in ``needed``, and the
    name of a capability that no endpoint has ("" if none is missing)."""
    if not needed:
        return llm, ""
    for capability in needed:
        if llm.endpoints and not any(allows(e, capability) for e in llm.endpoints):
            return replace(llm, endpoints=()), capability
    capable = tuple(e for e in llm.endpoints if all(allows(e, c) for c in needed))
    if len(capable) == len(llm.endpoints):
        return llm, ""
    return replace(llm, endpoints=capable), "" if capable else "+".join(needed)


def describe(capability: str) -> str:
    return " and ".join(_WHAT.get(c, c) for c in capability.split("+"))
