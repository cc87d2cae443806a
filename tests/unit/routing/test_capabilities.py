"""Issue 19: a turn with images or tools goes only to endpoints whose recorded capabilities
allow it; with none, it fails naming the capability (the edge's INVALID_ARGUMENT)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from server.chat import ChatRequest, ImagePart, Message, Role, TextPart, Tool
from server.errors import InvalidArgument
from server.registry.endpoint_capabilities import Capabilities
from server.registry.llm import Llm
from server.routing import capabilities
from server.turns.failures import capable_llm

from .conftest import MakeLlm

TEXT = ChatRequest((Message(Role.USER, (TextPart("hi"),)),))
IMAGE = ChatRequest((Message(Role.USER, (TextPart("what is it?"),
                                         ImagePart("image/png", data=b"\x89PNG"))),))
TOOLS = ChatRequest(TEXT.messages, tools=(Tool("get_weather", "weather", "{}"),))


def _with(make_llm: MakeLlm, caps: dict[str, Capabilities]) -> Llm:
    llm = make_llm(*caps)
    return replace(llm, endpoints=tuple(replace(e, capabilities=caps[e.id])
                                        for e in llm.endpoints))


def test_an_image_turn_goes_only_where_image_input_is_not_ruled_out(make_llm: MakeLlm) -> None:
    llm = _with(make_llm, {"text": Capabilities(image_input=False, tool_calling=True),
                           "vision": Capabilities(image_input=True), "unvalidated": Capabilities()})
    assert [e.id for e in capable_llm(llm, IMAGE).endpoints] == ["vision", "unvalidated"]
    assert capable_llm(llm, TEXT) is llm
    assert [e.id for e in capable_llm(llm, TOOLS).endpoints] == ["text", "vision", "unvalidated"]


@pytest.mark.parametrize(("request_", "named"), [(IMAGE, "image input"),
                                                 (TOOLS, "tool calling")])
def test_no_capable_endpoint_is_invalid_argument_naming_the_capability(
        make_llm: MakeLlm, request_: ChatRequest, named: str) -> None:
    llm = _with(make_llm, {"a": Capabilities(image_input=False, tool_calling=False),
                           "b": Capabilities(image_input=False, tool_calling=False)})
    with pytest.raises(InvalidArgument) as caught:
        capable_llm(llm, request_)
    assert caught.value.reason == "CAPABILITY_UNAVAILABLE" and named in caught.value.message


def test_images_and_tools_together_need_one_endpoint_with_both(make_llm: MakeLlm) -> None:
    llm = _with(make_llm, {"a": Capabilities(image_input=True, tool_calling=False),
                           "b": Capabilities(image_input=False, tool_calling=True)})
    both = ChatRequest(IMAGE.messages, tools=TOOLS.tools)
    assert capabilities.required_by(both) == ("image_input", "tool_calling")
    with pytest.raises(InvalidArgument) as caught:
        capable_llm(llm, both)
    assert "image input and tool calling" in caught.value.message
