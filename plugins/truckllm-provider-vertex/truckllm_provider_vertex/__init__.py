"""TruckLLM provider plugin for Google Vertex AI (``type: vertex`` and ``type: vertex-anthropic``).

- ``vertex``: Gemini models (``publishers/google/models/{model}:generateContent`` and
  ``:streamGenerateContent?alt=sse``), translated by ``truckllm-provider-gemini`` (:mod:`.gemini`);
  OpenAI image generations on Imagen (``:predict``) and Gemini image models, by the same plugin.
- ``vertex-anthropic``: Claude models (``publishers/anthropic/models/{model}:rawPredict`` and
  ``:streamRawPredict``), translated by ``truckllm-provider-anthropic`` (:mod:`.anthropic`).

Both authenticate with a Google OAuth access token that the kernel keeps fresh through
:class:`~.credentials.GoogleTokenSource` (google-auth: a service-account key, inline or a file,
or application default credentials), never fetched on the request path. See the README.
"""

from __future__ import annotations

from collections.abc import Callable

from truckllm import hookimpl
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    StreamTranslator,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)

from . import anthropic as _anthropic
from . import gemini as _gemini
from .credentials import GoogleTokenSource
from .options import AnthropicVertexOptions, VertexOptions

__all__ = [
    "TRUCKLLM_API",
    "TYPES",
    "AnthropicVertexOptions",
    "GoogleTokenSource",
    "VertexOptions",
    "parse_usage",
    "register_providers",
    "token_source",
    "transform_request",
    "transform_response",
    "transform_stream",
]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

TYPES = (_gemini.TYPE, _anthropic.TYPE)
"""The provider types this plugin serves: ``vertex`` (Gemini models), ``vertex-anthropic`` (Claude)."""


def token_source(provider: Provider, value: str) -> GoogleTokenSource:
    """The kernel's credential factory: one token source per (provider, key value)."""
    return GoogleTokenSource(value)


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer ``vertex`` and ``vertex-anthropic``; keys are optional (none: application default
    credentials)."""
    register(
        ProviderSpec(
            type=_gemini.TYPE,
            dialect="gemini",
            endpoints=frozenset({"chat", "completions", "images.generations"}),
            options=VertexOptions,
            needs_keys=False,
            credentials=token_source,
        )
    )
    register(
        ProviderSpec(
            type=_anthropic.TYPE,
            dialect="anthropic",
            endpoints=frozenset({"chat", "completions", "count_tokens"}),
            options=AnthropicVertexOptions,
            needs_keys=False,
            credentials=token_source,
        )
    )


@hookimpl
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """Build the Vertex AI call; ``api_key`` is the key's current access token."""
    if provider.type == _gemini.TYPE:
        return _gemini.build_request(provider, model, request, api_key)
    if provider.type == _anthropic.TYPE:
        return _anthropic.build_request(provider, model, request, api_key)
    return None


@hookimpl
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> ProviderResult | None:
    """Read an answer or an error (Gemini's shape for ``vertex``, Anthropic's for ``vertex-anthropic``)."""
    if provider.type == _gemini.TYPE:
        return _gemini.read_response(provider, request, response)
    if provider.type == _anthropic.TYPE:
        return _anthropic.read_response(provider, request, response)
    return None


@hookimpl
def transform_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> StreamTranslator | None:
    """A fresh translator for one stream."""
    if provider.type == _gemini.TYPE:
        return _gemini.read_stream(provider, request, response)
    if provider.type == _anthropic.TYPE:
        return _anthropic.read_stream(provider, request, response)
    return None


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The token counts of a non-stream answer."""
    if provider.type == _gemini.TYPE:
        return _gemini.parse_usage(provider, request, body)
    if provider.type == _anthropic.TYPE:
        return _anthropic.parse_usage(provider, request, body)
    return None
