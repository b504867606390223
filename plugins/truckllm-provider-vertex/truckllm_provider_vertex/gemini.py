"""``type: vertex``: Gemini models on Vertex AI, through ``truckllm-provider-gemini``'s translation.

Vertex AI speaks the Gemini API's JSON under other URLs and another credential: the request is
built by the Gemini plugin for a provider whose API root is the project's Google publisher
(``{root}/v1/projects/{project}/locations/{location}/publishers/google``, so that its
``models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse`` land on Vertex's
paths), with no API key, and sent with ``Authorization: Bearer <access token>``. Answers, streams,
errors and usage are read by the Gemini plugin unchanged.
"""

from __future__ import annotations

import msgspec
import truckllm_provider_gemini as gemini

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

from .options import VertexOptions
from .urls import publisher_url, root_of

__all__ = ["TYPE", "build_request", "gemini_provider", "parse_usage", "read_response", "read_stream"]

TYPE = "vertex"
"""The ``providers.<name>.type`` of Gemini models on Vertex AI."""


def gemini_provider(provider: Provider) -> Provider:
    """The provider as the Gemini plugin sees it: ``type: gemini``, rooted at the Google publisher."""
    options = provider.options
    if not isinstance(options, VertexOptions):
        raise UnsupportedRequest(f"provider {provider.name!r} (type vertex) has no options.project")
    root = publisher_url(
        root_of(provider.base_url, options.location), options.project, options.location, "google"
    )
    return msgspec.structs.replace(provider, type=gemini.TYPE, base_url=root)


def build_request(provider: Provider, model: str, request: ChatRequest, token: str) -> UpstreamRequest:
    """The Vertex call for one attempt: the Gemini plugin's request, with a bearer token.

    :raises UnsupportedRequest: a tuned-model name (``tunedModels/...`` is the Gemini API's, not
        Vertex's), or whatever the Gemini translation cannot express.
    """
    if model.startswith("tunedModels/"):
        raise UnsupportedRequest(
            "Vertex AI serves tuned models from endpoints, not tunedModels/ names", param="model"
        )
    built = gemini.transform_request(
        provider=gemini_provider(provider), model=model, request=request, api_key=""
    )
    assert built is not None  # the Gemini plugin owns type gemini
    headers = {"authorization": f"Bearer {token}", **built.headers}
    return msgspec.structs.replace(built, headers=headers)


def read_response(provider: Provider, request: ChatRequest, response: UpstreamResponse) -> ProviderResult:
    """A Vertex answer (the Gemini API's shape) read by the Gemini plugin."""
    result = gemini.transform_response(provider=gemini_provider(provider), request=request, response=response)
    assert result is not None
    return result


def read_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> StreamTranslator | None:
    """The Gemini plugin's stream translator (Vertex streams Gemini's ``alt=sse`` events)."""
    return gemini.transform_stream(provider=gemini_provider(provider), request=request, response=response)


def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """``usageMetadata`` of a Vertex answer."""
    return gemini.parse_usage(provider=gemini_provider(provider), request=request, body=body)
