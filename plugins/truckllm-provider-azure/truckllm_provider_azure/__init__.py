"""TruckLLM provider plugin for Azure OpenAI (``type: azure``).

Deployment URLs (``{base_url}/openai/deployments/{model}/chat/completions?api-version=...``) or
the OpenAI-compatible v1 endpoint (``options.api: v1``); ``api-key`` keys or Entra ID tokens
(``options.auth: entra``: client credentials, a managed identity or azure-identity's default
chain, refreshed by the kernel off the request path); Azure's content-filter refusals as a 400
naming the categories. Bodies, streams, the Responses API and its translation are the
``openai`` plugin's (see :mod:`.routing`).
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

from .credentials import ApiKeySource, EntraLogin, EntraSource, TokenCredential, read_login
from .errors import filtered_answer, read_azure_error
from .options import DEFAULT_API_VERSION, DEFAULT_SCOPE, Options
from .plugin import AzurePlugin
from .stream import AzureStream

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_SCOPE",
    "ApiKeySource",
    "AzurePlugin",
    "AzureStream",
    "EntraLogin",
    "EntraSource",
    "Options",
    "TokenCredential",
    "filtered_answer",
    "parse_usage",
    "read_azure_error",
    "read_login",
    "register_providers",
    "transform_request",
    "transform_response",
    "transform_stream",
]

TRUCKLLM_API = 1

_PLUGIN = AzurePlugin()


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer the ``azure`` provider type."""
    _PLUGIN.register_providers(register)


@hookimpl
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """The request at Azure's URL with Azure's credential header."""
    return _PLUGIN.transform_request(provider, model, request, api_key)


@hookimpl
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
) -> ProviderResult | None:
    """An answer checked and passed on, Azure's errors and content-filter refusals classified."""
    return _PLUGIN.transform_response(provider, request, response, model)


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The usage of an answer."""
    return _PLUGIN.parse_usage(provider, request, body)


@hookimpl
def transform_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
) -> AzureStream | StreamTranslator | None:
    """The stream translator."""
    return _PLUGIN.transform_stream(provider, request, response, model)
