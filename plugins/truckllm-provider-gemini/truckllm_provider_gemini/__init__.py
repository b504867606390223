"""TruckLLM provider plugin for Google's Gemini API (``type: gemini``).

OpenAI chat, legacy completions and embeddings requests are translated to Gemini's
``generateContent``, ``streamGenerateContent?alt=sse`` and ``batchEmbedContents``, and the answers
back to OpenAI's shapes. A Gemini-dialect client's body is passed through untouched.

OpenAI image generations are served by Imagen (``:predict``) and Gemini image models
(``generateContent`` answering images): see :mod:`.images`.

Modules: :mod:`.request` (OpenAI → Gemini), :mod:`.response` (Gemini → OpenAI), :mod:`.stream`
(stream translators), :mod:`.images` (image generations), :mod:`.schema` (JSON Schema cleaning),
:mod:`.errors` (error classification), :mod:`.ids` (the tool-call id scheme), :mod:`.options`.
"""

from __future__ import annotations

from collections.abc import Callable

from truckllm import hookimpl
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)

from . import images as _images
from . import response as _response
from .options import Options
from .request import build_request
from .stream import GeminiPassthroughStream, GeminiStream

__all__ = [
    "DEFAULT_BASE_URL",
    "TRUCKLLM_API",
    "TYPE",
    "Options",
    "parse_usage",
    "register_providers",
    "transform_request",
    "transform_response",
    "transform_stream",
]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

TYPE = "gemini"
"""The ``providers.<name>.type`` this plugin serves."""

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
"""The Gemini Developer API root."""


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer the ``gemini`` provider type."""
    register(
        ProviderSpec(
            type=TYPE,
            default_base_url=DEFAULT_BASE_URL,
            dialect="gemini",
            endpoints=frozenset({"chat", "completions", "embeddings", "count_tokens", _images.ENDPOINT}),
            options=Options,
        )
    )


@hookimpl
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """Translate the client's request into a Gemini call (or pass a Gemini body through)."""
    if provider.type != TYPE:
        return None
    if request.endpoint == _images.ENDPOINT:
        return _images.build_image_request(provider, model, request, api_key)
    return build_request(provider, model, request, api_key)


@hookimpl
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> ProviderResult | None:
    """Translate a Gemini answer to OpenAI's shape; classify a Gemini error."""
    if provider.type != TYPE:
        return None
    if request.endpoint == _images.ENDPOINT and 200 <= response.status < 300:
        return _images.read_images(request, response.body)
    return _response.translate_response(request, response)


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The token counts of a Gemini answer (``usageMetadata``)."""
    if provider.type != TYPE:
        return None
    if request.endpoint == _images.ENDPOINT:
        return _images.image_usage(request, body)
    return _response.parse_usage(request, body)


@hookimpl
def transform_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> GeminiStream | GeminiPassthroughStream | None:
    """A fresh translator for one Gemini stream."""
    if provider.type != TYPE:
        return None
    if request.dialect == "gemini":
        return GeminiPassthroughStream()
    return GeminiStream(request)
