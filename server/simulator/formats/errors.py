"""Error texts shared by the OpenAI family, and Azure's content-filter body.

Messages are the providers' own wording (recorded fixtures, or quoted in FORMATS.md sources).
"""

from __future__ import annotations

from typing import Any

import orjson

from server.simulator.formats.common import Reply

SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
OVERLOADED = (
    "That model is currently overloaded with other requests. You can retry your request, or "
    "contact us through our help center at help.openai.com if the error persists."
)
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    "username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
CONTENT_FILTER = (
    "The response was filtered due to the prompt triggering Azure Content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies "
    "please read our documentation: https://go.microsoft.com/fwlink/?linkid=21298766"
)


def masked_key(key: str) -> str:
    """OpenAI quotes a wrong key with its middle starred out."""
    if len(key) <= 8:
        return key[:3]
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def rate_limit_message(model: str, retry_after_s: float | None) -> str:
    wait = f"{retry_after_s:g}s" if retry_after_s is not None else "20s"
    return (
        f"Rate limit reached for {model or 'gpt-4o-mini'} in organization org-simulator on "
        f"requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in {wait}. "
        "Visit https://platform.openai.com/account/rate-limits to learn more."
    )


def context_length_message() -> str:
    return (
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in 130000 tokens. Please reduce the length of the messages."
    )


def _severity(filtered: bool, severity: str) -> dict[str, Any]:
    return {"filtered": filtered, "severity": severity}


def content_filter_error() -> Reply:
    """Azure's 400 for a filtered prompt (``azure/error-400-content-filter-prompt.json``)."""
    body = {
        "error": {
            "message": CONTENT_FILTER,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": _severity(True, "high"),
                    "self-harm": _severity(False, "safe"),
                    "sexual": _severity(False, "safe"),
                    "violence": _severity(False, "safe"),
                },
            },
        }
    }
    return Reply(400, orjson.dumps(body), "application/json", {"x-ms-rai-invoked": "true"})
