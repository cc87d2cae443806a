"""Small helpers shared by the adapters (request side)."""

from __future__ import annotations

import base64
import mimetypes
from typing import Any

import orjson

from server.chat import ImagePart, Tool
from server.errors import FieldViolation, InvalidArgument
from server.registry.llm import Endpoint
from server.secret import Secret

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}

EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def join_url(base_url: str, path: str) -> str:
    """``base_url`` (with or without a trailing slash) + ``path`` (starting with ``/``)."""
    return base_url.rstrip("/") + path


def with_extra_headers(endpoint: Endpoint, headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus the endpoint's own extra headers (which win on a clash); a secret
    header's value is revealed here, for the request being built, and nowhere else."""
    for name, value in endpoint.extra_headers:
        headers[name] = value.reveal() if isinstance(value, Secret) else value
    return headers


def tool_schema(tool: Tool, index: int) -> dict[str, Any]:
    """The tool's JSON Schema as an object; an empty schema when none was given."""
    if not tool.parameters_json.strip():
        return dict(EMPTY_SCHEMA)
    try:
        schema = orjson.loads(tool.parameters_json)
    except orjson.JSONDecodeError:
        schema = None
    if not isinstance(schema, dict):
        path = f"tools[{index}].parameters_json"
        raise InvalidArgument(
            f"{path}: the tool's parameters must be a JSON Schema object",
            violations=[FieldViolation(path, "must be a JSON object (a JSON Schema)")],
        )
    return schema


def image_mime(image: ImagePart) -> str:
    """The image's MIME type, guessed from the URL when it was not given."""
    if image.mime_type:
        return image.mime_type
    if image.url.startswith("data:"):
        return image.url[5:].split(";", 1)[0].split(",", 1)[0] or "image/png"
    guessed, _ = mimetypes.guess_type(image.url.split("?", 1)[0])
    return guessed or "image/jpeg"


def image_url(image: ImagePart) -> str:
    """A URL for the image: its own URL, or a ``data:`` URL for inline bytes."""
    if image.data:
        return f"data:{image_mime(image)};base64,{base64.b64encode(image.data).decode('ascii')}"
    return image.url


def inline_data(image: ImagePart) -> tuple[str, str] | None:
    """(MIME type, base64 data) for inline bytes or a base64 ``data:`` URL; else ``None``."""
    if image.data:
        return image_mime(image), base64.b64encode(image.data).decode("ascii")
    if image.url.startswith("data:") and ";base64," in image.url[:200]:
        header, _, payload = image.url.partition(",")
        return header[5:].split(";", 1)[0] or image_mime(image), payload
    return None


def dumps(obj: object) -> bytes:
    """A request body as JSON bytes."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError as exc:  # nesting deeper than orjson's limit (255)
        raise InvalidArgument(
            f"The request cannot be encoded as JSON for the upstream: {exc}"
        ) from None


def json_text(value: object) -> str | None:
    """``value`` as compact JSON text; ``None`` if it cannot be encoded (too deeply nested)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return None
