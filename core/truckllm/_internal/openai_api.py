"""The OpenAI-compatible API: the kernel's own inbound dialect, and the models endpoints.

:class:`OpenAIDialect` decodes ``/v1/chat/completions``, ``/v1/completions`` and
``/v1/embeddings`` bodies once with msgspec into the typed structs of
:mod:`truckllm.kit.openai_schemas` (``/v1/rerank`` and ``/v2/rerank``: :mod:`.schemas.rerank`),
so that a bad request gets a 400 naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from truckllm._internal.auth import bearer
from truckllm._internal.dialect import DialectRoute
from truckllm._internal.openai_images import IMAGE_ROUTES, parse_image_generation, parse_moderation
from truckllm._internal.openai_media import MEDIA_ROUTES, parse_speech
from truckllm._internal.openai_media import parse_upload as parse_media_upload
from truckllm._internal.safejson import decode_json
from truckllm._internal.schemas.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from truckllm._internal.schemas.rerank import RerankRequest
from truckllm.errors import GatewayError
from truckllm.types import ChatRequest, Upload

__all__ = ["OPENAI", "OpenAIDialect", "validation_error"]

_DECODERS: dict[str, Any] = {
    "chat": msgspec.json.Decoder(ChatCompletionRequest),
    "completions": msgspec.json.Decoder(CompletionRequest),
    "embeddings": msgspec.json.Decoder(EmbeddingRequest),
    "rerank": msgspec.json.Decoder(RerankRequest),
}
_PATH = re.compile(r"`\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)`")


def validation_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> GatewayError:
    """A 400 in OpenAI's shape naming the field at fault."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return GatewayError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload.)",
        )
    param = None
    match = _PATH.search(text)
    if match and match.group(1):
        param = match.group(1).lstrip(".")
    missing = re.match(r"Object missing required field `(.+?)`", text)
    if missing:
        field = missing.group(1)
        param = f"{param}.{field}" if param else field
        return GatewayError(400, f"Missing required parameter: '{param}'.", param=param)
    message, _, _ = text.partition(" - at ")
    if param:
        return GatewayError(400, f"Invalid value for '{param}': {message}", param=param)
    return GatewayError(400, f"Invalid request: {message}")


class _ErrorObject(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _ErrorBody(msgspec.Struct):
    error: _ErrorObject


class _Identity:
    """Frames already in the client's dialect."""

    def feed(self, frames: bytes) -> bytes:
        return frames

    def close(self) -> bytes:
        return b""


class OpenAIDialect:
    """OpenAI's API as the gateway's front door (the kernel's canonical dialect)."""

    name = "openai"
    routes = (
        DialectRoute(path="/v1/chat/completions", endpoint="chat"),
        DialectRoute(path="/v1/completions", endpoint="completions"),
        DialectRoute(path="/v1/embeddings", endpoint="embeddings"),
        *IMAGE_ROUTES,  # image generations and moderations (openai_images)
        *MEDIA_ROUTES,  # audio and image edits (openai_media)
        DialectRoute(path="/v1/rerank", endpoint="rerank"),  # Jina-style clients, cohere v1
        DialectRoute(path="/v2/rerank", endpoint="rerank"),  # cohere.ClientV2
    )

    def credentials(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """``Authorization: Bearer <key>``."""
        return bearer(headers.get("authorization"))

    def parse(
        self,
        route: DialectRoute,
        body: bytes,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> ChatRequest:
        """Decode and validate an OpenAI request body."""
        if route.endpoint == "images.generations":
            return parse_image_generation(route, body, headers)
        if route.endpoint == "moderations":
            return parse_moderation(route, body, headers)
        if route.endpoint == "audio.speech":
            return parse_speech(route, body, headers)
        try:
            typed = decode_json(body, decoder=_DECODERS[route.endpoint])
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise validation_error(exc) from None
        except UnicodeDecodeError:
            raise GatewayError(400, "The request body is not valid UTF-8.") from None
        stream = bool(getattr(typed, "stream", False))
        options = getattr(typed, "stream_options", None)
        if options and not stream:
            raise GatewayError(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        return ChatRequest(
            endpoint=route.endpoint,
            dialect=self.name,
            body=body,
            model=typed.model,
            stream=stream,
            include_usage=bool(stream and options and options.include_usage is True),
            typed=typed,
            headers=headers,
        )

    def parse_upload(
        self,
        route: DialectRoute,
        upload: Upload,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> ChatRequest:
        """Read a transcription, translation or image edit from its spooled multipart form."""
        return parse_media_upload(route, upload, path_params, query, headers)

    def error_body(self, error: GatewayError) -> bytes:
        """``{"error": {"message", "type", "param", "code"}}`` with all four members."""
        return msgspec.json.encode(
            _ErrorBody(
                _ErrorObject(message=error.message, type=error.type, param=error.param, code=error.code)
            )
        )

    def stream_error(self, error: GatewayError) -> bytes:
        """``data: {"error": {...}}`` (openai-python raises ``APIError`` on it)."""
        return b"data: " + self.error_body(error) + b"\n\n"

    def response(self, request: ChatRequest, body: bytes, source: str) -> bytes:
        """Answers reach this dialect in OpenAI's form already."""
        if source != self.name:
            raise GatewayError(
                502, f"cannot turn a {source} answer into OpenAI's format", type="server_error"
            )
        return body

    def stream(self, request: ChatRequest, source: str) -> _Identity:
        """Streams reach this dialect in OpenAI's form already."""
        if source != self.name:
            raise GatewayError(
                502, f"cannot turn a {source} stream into OpenAI's format", type="server_error"
            )
        return _Identity()

    def stream_content_type(self, request: ChatRequest) -> str:
        """Server-sent events."""
        return "text/event-stream; charset=utf-8"


OPENAI = OpenAIDialect()
"""The kernel's OpenAI dialect."""
