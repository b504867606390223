"""The OpenAI dialect's image generations and moderations: what the gateway checks before upstream.

``POST /v1/images/generations`` and ``POST /v1/moderations`` take JSON, validated once with
msgspec (:class:`ImageGenerationRequest`, :class:`ModerationRequest`) so that a bad request gets a
400 in OpenAI's format naming the field; members the gateway does not know go upstream as they
came. Neither has a chat ``typed`` form: only providers that list the endpoint serve them (the
OpenAI provider passes the body through with ``model`` rewritten; Gemini translates an image
request, reading it with :func:`read_image_request`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from truckllm._internal.dialect import DialectRoute
from truckllm._internal.safejson import decode_json
from truckllm.errors import GatewayError
from truckllm.types import ChatRequest

__all__ = [
    "IMAGE_ROUTES",
    "MAX_PROMPT_CHARS",
    "ImageGenerationRequest",
    "ModerationRequest",
    "parse_image_generation",
    "parse_moderation",
    "read_image_request",
]

IMAGE_ROUTES = (
    DialectRoute(path="/v1/images/generations", endpoint="images.generations"),
    DialectRoute(path="/v1/moderations", endpoint="moderations"),
)
"""The routes this module reads, mounted by the OpenAI dialect."""

MAX_PROMPT_CHARS = 32000
"""The longest image prompt taken (gpt-image-1's limit; DALL-E's shorter ones are the upstream's)."""
MAX_MODERATION_INPUTS = 2048
"""The most items one moderation ``input`` list may hold."""

_Prompt = Annotated[str, Meta(min_length=1, max_length=MAX_PROMPT_CHARS)]
_Word = Annotated[str, Meta(min_length=1, max_length=32)]
"""A value the upstream judges (models gain qualities and formats faster than gateways)."""
_Size = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^(auto|[0-9]{2,5}x[0-9]{2,5})$")]


class ImageGenerationRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/images/generations`` (the members the gateway checks; others pass as they came).

    :ivar model: the alias.
    :ivar prompt: the description of the image (1 to 32,000 characters).
    :ivar n: how many images (1 to 10; DALL-E 3 takes 1).
    :ivar size: ``auto`` or ``<width>x<height>``.
    :ivar quality: ``auto``, ``low``, ``medium``, ``high`` (GPT image), ``standard``, ``hd``
        (DALL-E 3)...: a short string the upstream judges (as ``style``, ``background``,
        ``moderation`` and ``output_format``).
    :ivar response_format: ``url`` or ``b64_json`` (DALL-E).
    :ivar stream: stream partial images (GPT image models, OpenAI only).
    :ivar partial_images: partial images per streamed image (0 to 3).
    :ivar output_compression: 0 to 100 (``jpeg`` and ``webp``).
    """

    model: Annotated[str, Meta(min_length=1)]
    prompt: _Prompt
    n: Annotated[int, Meta(ge=1, le=10)] | None = None
    size: _Size | None = None
    quality: _Word | None = None
    response_format: Literal["url", "b64_json"] | None = None
    style: _Word | None = None
    background: _Word | None = None
    moderation: _Word | None = None
    output_format: _Word | None = None
    output_compression: Annotated[int, Meta(ge=0, le=100)] | None = None
    stream: bool | None = None
    partial_images: Annotated[int, Meta(ge=0, le=3)] | None = None
    user: str | None = None


class _TextInput(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class _ImageURL(msgspec.Struct):
    url: Annotated[str, Meta(min_length=1)]


class _ImageInput(msgspec.Struct, tag_field="type", tag="image_url"):
    image_url: _ImageURL


class ModerationRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/moderations``: ``input`` is a string, a list of strings, or a list of
    ``{"type": "text", "text"}`` / ``{"type": "image_url", "image_url": {"url"}}`` parts."""

    model: Annotated[str, Meta(min_length=1)]
    input: (
        str
        | Annotated[
            list[str | _TextInput | _ImageInput], Meta(min_length=1, max_length=MAX_MODERATION_INPUTS)
        ]
    )


_IMAGES = msgspec.json.Decoder(ImageGenerationRequest)
_MODERATION = msgspec.json.Decoder(ModerationRequest)


def _decode(body: bytes, decoder: msgspec.json.Decoder[Any]) -> Any:
    from truckllm._internal.openai_api import validation_error  # a cycle at import time otherwise

    try:
        return decode_json(body, decoder=decoder)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise validation_error(exc) from None
    except UnicodeDecodeError:
        raise GatewayError(400, "The request body is not valid UTF-8.") from None


def read_image_request(body: bytes) -> ImageGenerationRequest:
    """An image generation body, validated.

    :raises GatewayError: 400 naming the field at fault.
    """
    typed: ImageGenerationRequest = _decode(body, _IMAGES)
    if not typed.prompt.strip():
        raise GatewayError(400, "Invalid value for 'prompt': the prompt is empty.", param="prompt")
    if typed.partial_images and not typed.stream:
        raise GatewayError(
            400,
            "The 'partial_images' parameter is only allowed when 'stream' is enabled.",
            param="partial_images",
        )
    return typed


def parse_image_generation(
    route: DialectRoute, body: bytes, headers: Mapping[str, str], dialect: str = "openai"
) -> ChatRequest:
    """An image generation request (``stream: true`` streams partial images, OpenAI only).

    :raises GatewayError: 400 naming the field at fault.
    """
    typed = read_image_request(body)
    return ChatRequest(
        endpoint=route.endpoint,
        dialect=dialect,
        body=body,
        model=typed.model,
        stream=bool(typed.stream),
        headers=headers,
    )


def parse_moderation(
    route: DialectRoute, body: bytes, headers: Mapping[str, str], dialect: str = "openai"
) -> ChatRequest:
    """A moderation request.

    :raises GatewayError: 400 naming the field at fault.
    """
    typed: ModerationRequest = _decode(body, _MODERATION)
    if isinstance(typed.input, list) and len({isinstance(item, str) for item in typed.input}) > 1:
        raise GatewayError(
            400, "Invalid value for 'input': a list of strings or a list of parts, not both.", param="input"
        )
    return ChatRequest(
        endpoint=route.endpoint, dialect=dialect, body=body, model=typed.model, headers=headers
    )
