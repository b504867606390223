"""``type: vertex-anthropic``: Claude models on Vertex AI, through ``truckllm-provider-anthropic``.

Claude on Vertex is Anthropic's Messages API with three differences, applied here to the request
the Anthropic plugin builds: the URL is the model's ``:rawPredict`` (``:streamRawPredict`` for a
stream) under the project's Anthropic publisher; the body names no ``model`` (the URL does) and
carries ``anthropic_version`` (``vertex-2023-10-16``) instead of the ``anthropic-version``
header; and the credential is ``Authorization: Bearer <access token>``. An Anthropic-dialect
client's body passes through with ``model`` removed. Token counts go to
``models/count-tokens:rawPredict``, the model in the body, as Vertex takes them. Answers,
streams, errors and usage are Anthropic's, read by the Anthropic plugin unchanged.
"""

from __future__ import annotations

from typing import Any

import msgspec
import truckllm_provider_anthropic as anthropic

from truckllm.errors import UnsupportedRequest
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    StreamTranslator,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)

from .options import AnthropicVertexOptions
from .urls import check_model, model_url, publisher_url, root_of

__all__ = ["TYPE", "anthropic_provider", "build_request", "parse_usage", "read_response", "read_stream"]

TYPE = "vertex-anthropic"
"""The ``providers.<name>.type`` of Claude models on Vertex AI."""

_JSON = msgspec.json.Decoder(dict[str, Any])
_DROPPED_HEADERS = frozenset({"anthropic-version", "x-api-key"})


def _options(provider: Provider) -> AnthropicVertexOptions:
    options = provider.options
    if not isinstance(options, AnthropicVertexOptions):
        raise UnsupportedRequest(f"provider {provider.name!r} (type vertex-anthropic) has no options.project")
    return options


def anthropic_provider(provider: Provider) -> Provider:
    """The provider as the Anthropic plugin sees it (``type: anthropic``; its URL is replaced)."""
    return msgspec.structs.replace(provider, type=anthropic.TYPE)


def vertex_body(body: bytes, anthropic_version: str, *, keep_model: bool = False) -> bytes:
    """A Messages API body as Vertex takes it: ``anthropic_version`` first, and no ``model``
    (but for a token count, whose URL names no model)."""
    fields = _JSON.decode(body)
    if not keep_model:
        fields.pop("model", None)
    fields.pop("anthropic_version", None)
    return msgspec.json.encode({"anthropic_version": anthropic_version, **fields})


def build_request(provider: Provider, model: str, request: ChatRequest, token: str) -> UpstreamRequest:
    """The ``:rawPredict`` / ``:streamRawPredict`` call for one attempt (a token count:
    ``models/count-tokens:rawPredict``, the model in the body).

    :raises UnsupportedRequest: a model that is not one publisher model name, or whatever the
        Anthropic translation cannot express.
    """
    options = _options(provider)
    root = publisher_url(
        root_of(provider.base_url, options.location), options.project, options.location, "anthropic"
    )
    built = anthropic.transform_request(
        provider=anthropic_provider(provider), model=model, request=request, api_key=""
    )
    assert built is not None  # the Anthropic plugin owns type anthropic
    counting = request.endpoint == "count_tokens"
    check_model(model)
    if counting:
        url = root + "/models/count-tokens:rawPredict"
    else:
        url = model_url(root, model, "streamRawPredict" if built.stream else "rawPredict")
    headers = {"authorization": f"Bearer {token}"}
    headers.update((name, value) for name, value in built.headers.items() if name not in _DROPPED_HEADERS)
    try:
        body = vertex_body(built.body, options.anthropic_version, keep_model=counting)
    except (msgspec.DecodeError, RecursionError):
        raise UnsupportedRequest("the request body is not a JSON object") from None
    return msgspec.structs.replace(built, url=url, headers=headers, body=body)


def read_response(provider: Provider, request: ChatRequest, response: UpstreamResponse) -> ProviderResult:
    """A Claude answer (or error) read by the Anthropic plugin."""
    result = anthropic.transform_response(
        provider=anthropic_provider(provider), request=request, response=response
    )
    assert result is not None
    return result


def read_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> StreamTranslator | None:
    """The Anthropic plugin's stream translator (``:streamRawPredict`` streams Anthropic's SSE)."""
    return anthropic.transform_stream(
        provider=anthropic_provider(provider), request=request, response=response
    )


def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The usage of a Claude answer."""
    return anthropic.parse_usage(provider=anthropic_provider(provider), request=request, body=body)
