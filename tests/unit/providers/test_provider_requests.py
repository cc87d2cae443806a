"""Request translation per spec: URLs, auth headers, bodies."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from server.chat import (
    ChatRequest,
    Generation,
    ImagePart,
    Message,
    ReasoningEffort,
    Role,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)
from server.errors import InvalidArgument
from server.providers.adapters import adapter_for
from server.providers.azure import AzureOpenAIAdapter
from server.providers.base import HttpRequest
from server.providers.gemini import GeminiAdapter
from server.providers.groq import GroqAdapter
from server.providers.openai import OpenAIAdapter
from server.registry.llm import ApiSpec
from server.secret import Secret
from tests.unit.providers._provider_testkit import decode_fixture, endpoint_for

KEY = "sk-test-key-0123456789"
PNG = b"\x89PNG\r\n\x1a\nfake"
WEATHER = Tool(
    "get_weather",
    "Weather for a city",
    '{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],'
    '"additionalProperties":false}',
)

CONVERSATION = ChatRequest(
    messages=(
        Message(Role.SYSTEM, (TextPart("Be brief."),)),
        Message(
            Role.USER,
            (
                TextPart("What is in these pictures, and the weather?"),
                ImagePart(mime_type="image/png", data=PNG),
                ImagePart(url="https://example.com/cat.jpg"),
            ),
        ),
        Message(
            Role.ASSISTANT,
            tool_calls=(ToolCall("call_1", "get_weather", '{"city":"Paris"}'),),
            reasoning="secret chain of thought",
        ),
        Message(
            Role.TOOL, (TextPart('{"temp_c": 21}'),), tool_call_id="call_1", name="get_weather"
        ),
        Message(Role.ASSISTANT, (TextPart("21 °C and a cat."),), reasoning="more thoughts"),
        Message(Role.USER, (TextPart("Thanks"),)),
    ),
    tools=(WEATHER,),
    tool_choice=ToolChoice(ToolChoiceMode.AUTO),
    generation=Generation(temperature=0.2, top_p=0.9, max_output_tokens=256, stop=("END",), seed=7),
)


def body_of(req: HttpRequest) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(req.body)
    return data


def with_gen(**kw: Any) -> ChatRequest:
    return ChatRequest(messages=CONVERSATION.messages, generation=Generation(**kw))


# -- OpenAI-family ----------------------------------------------------------------------------


def test_openai_url_auth_and_body() -> None:
    ep = endpoint_for(ApiSpec.OPENAI, "https://api.openai.com/v1/", model="gpt-4o-mini")
    req = OpenAIAdapter().build_request(ep, CONVERSATION)
    assert req.url == "https://api.openai.com/v1/chat/completions"
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in req.url and KEY not in repr(req)
    body = body_of(req)
    assert body["model"] == "gpt-4o-mini"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "n" not in body
    assert body["max_completion_tokens"] == 256 and "max_tokens" not in body
    assert (body["temperature"], body["top_p"], body["stop"], body["seed"]) == (
        0.2,
        0.9,
        ["END"],
        7,
    )
    assert [m["role"] for m in body["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    system, user, call, result, answer, _ = body["messages"]
    assert system["content"] == "Be brief."
    assert user["content"] == [
        {"type": "text", "text": "What is in these pictures, and the weather?"},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
        },
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    assert call == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert result == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'}
    assert answer == {"role": "assistant", "content": "21 °C and a cat."}
    assert "thought" not in req.body.decode() and "reasoning" not in req.body.decode()
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": json.loads(WEATHER.parameters_json),
            },
        }
    ]
    assert body["tool_choice"] == "auto"


def test_openai_compatible_servers_get_max_tokens_and_no_auth_without_key() -> None:
    ep = endpoint_for(
        ApiSpec.OPENAI,
        "http://127.0.0.1:8000/v1",
        api_key=Secret(""),
        extra_headers=(("X-Title", "switchboard"),),
    )
    req = OpenAIAdapter().build_request(ep, CONVERSATION)
    assert req.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert "Authorization" not in req.headers
    assert req.headers["X-Title"] == "switchboard"
    body = body_of(req)
    assert body["max_tokens"] == 256 and "max_completion_tokens" not in body


def test_openai_base_url_that_already_names_the_route() -> None:
    ep = endpoint_for(ApiSpec.OPENAI, "https://openrouter.ai/api/v1/chat/completions")
    assert OpenAIAdapter().build_request(ep, CONVERSATION).url == ep.base_url


@pytest.mark.parametrize(
    ("choice", "want"),
    [
        (ToolChoice(ToolChoiceMode.AUTO), "auto"),
        (ToolChoice(ToolChoiceMode.NONE), "none"),
        (ToolChoice(ToolChoiceMode.REQUIRED), "required"),
        (
            ToolChoice(ToolChoiceMode.FUNCTION, "get_weather"),
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_openai_tool_choice(choice: ToolChoice, want: object) -> None:
    request = ChatRequest(messages=CONVERSATION.messages, tools=(WEATHER,), tool_choice=choice)
    ep = endpoint_for(ApiSpec.OPENAI, "https://api.openai.com/v1")
    assert body_of(OpenAIAdapter().build_request(ep, request))["tool_choice"] == want


def test_openai_reasoning_effort_and_unset_params() -> None:
    ep = endpoint_for(ApiSpec.OPENAI, "https://api.openai.com/v1")
    body = body_of(
        OpenAIAdapter().build_request(ep, with_gen(reasoning_effort=ReasoningEffort.HIGH))
    )
    assert body["reasoning_effort"] == "high"
    for absent in ("temperature", "top_p", "stop", "seed", "max_completion_tokens", "tools"):
        assert absent not in body


def test_invalid_tool_schema_is_an_invalid_argument() -> None:
    request = ChatRequest(messages=CONVERSATION.messages, tools=(Tool("t", "", "[1, 2"),))
    with pytest.raises(InvalidArgument) as err:
        OpenAIAdapter().build_request(endpoint_for(ApiSpec.OPENAI, "http://x/v1"), request)
    assert err.value.violations[0].field == "tools[0].parameters_json"


def test_empty_tool_schema_becomes_an_empty_object_schema() -> None:
    request = ChatRequest(messages=CONVERSATION.messages, tools=(Tool("now"),))
    body = body_of(OpenAIAdapter().build_request(endpoint_for(ApiSpec.OPENAI, "http://x"), request))
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}


def test_azure_deployment_route() -> None:
    ep = endpoint_for(
        ApiSpec.AZURE_OPENAI,
        "https://res.openai.azure.com/",
        model="my-gpt4o",
        api_version="2024-10-21",
    )
    req = AzureOpenAIAdapter().build_request(ep, CONVERSATION)
    assert req.url == (
        "https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions"
        "?api-version=2024-10-21"
    )
    assert req.headers["api-key"] == KEY and "Authorization" not in req.headers
    body = body_of(req)
    assert "model" not in body
    assert body["max_completion_tokens"] == 256


def test_azure_old_api_version_uses_max_tokens() -> None:
    ep = endpoint_for(
        ApiSpec.AZURE_OPENAI, "https://res.openai.azure.com/openai", api_version="2024-02-01"
    )
    req = AzureOpenAIAdapter().build_request(ep, CONVERSATION)
    assert req.url.startswith("https://res.openai.azure.com/openai/deployments/test-model/")
    assert body_of(req)["max_tokens"] == 256


def test_azure_v1_route() -> None:
    ep = endpoint_for(ApiSpec.AZURE_OPENAI, "https://res.openai.azure.com/openai/v1", model="dep")
    req = AzureOpenAIAdapter().build_request(ep, with_gen(reasoning_effort=ReasoningEffort.LOW))
    assert req.url == "https://res.openai.azure.com/openai/v1/chat/completions"
    body = body_of(req)
    assert body["model"] == "dep" and body["reasoning_effort"] == "low"


def test_groq_body() -> None:
    ep = endpoint_for(ApiSpec.GROQ, "https://api.groq.com/openai/v1", model="llama-3.3-70b")
    req = GroqAdapter().build_request(ep, CONVERSATION)
    assert req.url == "https://api.groq.com/openai/v1/chat/completions"
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    body = body_of(req)
    assert body["max_completion_tokens"] == 256
    assert "reasoning_format" not in body and "reasoning_effort" not in body
    assert "reasoning" not in req.body.decode()  # Groq rejects reasoning in history


@pytest.mark.parametrize(
    ("model", "effort", "want"),
    [
        ("openai/gpt-oss-120b", ReasoningEffort.HIGH, {"reasoning_effort": "high"}),
        ("openai/gpt-oss-20b", ReasoningEffort.NONE, {"reasoning_effort": "low"}),
        (
            "qwen/qwen3-32b",
            ReasoningEffort.NONE,
            {"reasoning_effort": "none", "reasoning_format": "parsed"},
        ),
        (
            "qwen/qwen3-32b",
            ReasoningEffort.MEDIUM,
            {"reasoning_effort": "default", "reasoning_format": "parsed"},
        ),
        ("deepseek-r1-distill-llama-70b", ReasoningEffort.LOW, {"reasoning_format": "parsed"}),
    ],
)
def test_groq_reasoning_controls(model: str, effort: ReasoningEffort, want: dict[str, str]) -> None:
    ep = endpoint_for(ApiSpec.GROQ, "https://api.groq.com/openai/v1", model=model)
    body = body_of(GroqAdapter().build_request(ep, with_gen(reasoning_effort=effort)))
    got = {k: body[k] for k in ("reasoning_effort", "reasoning_format") if k in body}
    assert got == want


# -- Gemini ----------------------------------------------------------------------------------


def gemini(request: ChatRequest, **kw: Any) -> tuple[HttpRequest, dict[str, Any]]:
    ep = endpoint_for(ApiSpec.GEMINI, "https://generativelanguage.googleapis.com/v1beta", **kw)
    req = GeminiAdapter().build_request(ep, request)
    return req, body_of(req)


def test_gemini_url_and_auth() -> None:
    req, _ = gemini(CONVERSATION, model="models/gemini-2.5-flash")
    assert req.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        ":streamGenerateContent?alt=sse"
    )
    assert req.headers["x-goog-api-key"] == KEY
    assert "key=" not in req.url and KEY not in req.url


def test_gemini_contents() -> None:
    _, body = gemini(CONVERSATION)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user", "model", "user"]
    user, call, result, answer, _ = body["contents"]
    assert user["parts"] == [
        {"text": "What is in these pictures, and the weather?"},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
    ]
    assert call["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}}
    ]
    assert result["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}, "id": "call_1"}}
    ]
    assert answer["parts"] == [{"text": "21 °C and a cat."}]
    assert "secret chain" not in json.dumps(body)
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "maxOutputTokens": 256,
        "stopSequences": ["END"],
        "seed": 7,
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parametersJsonSchema": json.loads(WEATHER.parameters_json),
                }
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


def test_gemini_tool_results_merge_and_wrap() -> None:
    request = ChatRequest(
        messages=(
            Message(Role.USER, (TextPart("weather in two cities"),)),
            Message(
                Role.ASSISTANT,
                tool_calls=(
                    ToolCall("gemini-call-abc-0", "get_weather", '{"city":"A"}', "SIG"),
                    ToolCall("gemini-call-abc-1", "get_weather", '{"city":"B"}'),
                ),
            ),
            Message(Role.TOOL, (TextPart("sunny"),), tool_call_id="gemini-call-abc-0"),
            Message(Role.TOOL, (TextPart("[1, 2]"),), tool_call_id="gemini-call-abc-1"),
        )
    )
    _, body = gemini(request)
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    calls = body["contents"][1]["parts"]
    assert calls[0] == {
        "functionCall": {"name": "get_weather", "args": {"city": "A"}},
        "thoughtSignature": "SIG",
    }  # generated ids are not sent back
    assert "thoughtSignature" not in calls[1]
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
        {"functionResponse": {"name": "get_weather", "response": {"result": "[1, 2]"}}},
    ]


@pytest.mark.parametrize(
    ("effort", "want"),
    [
        (ReasoningEffort.NONE, {"thinkingBudget": 0}),
        (ReasoningEffort.LOW, {"thinkingBudget": 1024, "includeThoughts": True}),
        (ReasoningEffort.MEDIUM, {"thinkingBudget": 8192, "includeThoughts": True}),
        (ReasoningEffort.HIGH, {"thinkingBudget": 24576, "includeThoughts": True}),
    ],
)
def test_gemini_thinking_config(effort: ReasoningEffort, want: dict[str, object]) -> None:
    _, body = gemini(with_gen(reasoning_effort=effort))
    assert body["generationConfig"] == {"thinkingConfig": want}


@pytest.mark.parametrize(
    ("choice", "want"),
    [
        (ToolChoice(ToolChoiceMode.NONE), {"mode": "NONE"}),
        (ToolChoice(ToolChoiceMode.REQUIRED), {"mode": "ANY"}),
        (
            ToolChoice(ToolChoiceMode.FUNCTION, "get_weather"),
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_gemini_tool_config(choice: ToolChoice, want: dict[str, object]) -> None:
    request = ChatRequest(messages=CONVERSATION.messages, tools=(WEATHER,), tool_choice=choice)
    _, body = gemini(request)
    assert body["toolConfig"] == {"functionCallingConfig": want}


def test_gemini_data_url_image_becomes_inline_data() -> None:
    url = "data:image/webp;base64,QUJD"
    request = ChatRequest(messages=(Message(Role.USER, (ImagePart(url=url),)),))
    _, body = gemini(request)
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/webp", "data": "QUJD"}}
    ]


def _history_from(name: str, text_signature: bool = False) -> tuple[Message, ...]:
    got = decode_fixture(name)
    assert got.error is None and got.finish is not None
    assistant = Message(
        Role.ASSISTANT,
        (TextPart(got.text),) if got.text else (),
        tool_calls=tuple(
            ToolCall(c["id"], c["name"], c["arguments"], c["sig"]) for c in got.tool_calls
        ),
        thought_signature=got.finish.thought_signature if text_signature else "",
    )
    results = tuple(
        Message(Role.TOOL, (TextPart('{"ok": true}'),), tool_call_id=c["id"], name=c["name"])
        for c in got.tool_calls
    )
    return (Message(Role.USER, (TextPart("go"),)), assistant, *results)


def test_gemini_thought_signature_round_trip_on_the_same_part() -> None:
    raw = decode_fixture("gemini/stream-tool-call-thought-signature.sse")
    signature = raw.tool_calls[0]["sig"]
    _, body = gemini(
        ChatRequest(messages=_history_from("gemini/stream-tool-call-thought-signature.sse"))
    )
    model_turn = body["contents"][1]
    assert model_turn["role"] == "model"
    assert model_turn["parts"] == [
        {"functionCall": {"name": "get_country", "args": {}}, "thoughtSignature": signature}
    ]
    assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_country"


def test_gemini_parallel_calls_round_trip_ids_and_first_signature() -> None:
    _, body = gemini(
        ChatRequest(messages=_history_from("gemini/stream-parallel-function-calls.sse"))
    )
    first, second = body["contents"][1]["parts"]
    assert first["functionCall"]["id"] == "dv8szvqe" and len(first["thoughtSignature"]) == 680
    assert second["functionCall"]["id"] == "j80tal12" and "thoughtSignature" not in second
    responses = [p["functionResponse"] for p in body["contents"][2]["parts"]]
    assert [r["id"] for r in responses] == ["dv8szvqe", "j80tal12"]


def test_gemini_text_signature_round_trip() -> None:
    name = "gemini/stream-gemini3-empty-text-signature.jsonl"
    history = _history_from(name, text_signature=True)
    _, body = gemini(ChatRequest(messages=history))
    part = body["contents"][1]["parts"][0]
    assert part["text"].startswith("There are **3**")
    assert len(part["thoughtSignature"]) == 1392


def test_adapter_for_every_spec() -> None:
    want = {
        ApiSpec.OPENAI: OpenAIAdapter,
        ApiSpec.AZURE_OPENAI: AzureOpenAIAdapter,
        ApiSpec.GEMINI: GeminiAdapter,
        ApiSpec.GROQ: GroqAdapter,
    }
    for spec in ApiSpec:
        assert isinstance(adapter_for(spec), want[spec])
