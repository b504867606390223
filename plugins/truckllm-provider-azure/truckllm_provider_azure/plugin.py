"""The ``azure`` provider type as a plugin object (the module's hooks use the default one; tests
register another under its own type name with a fake Entra ID credential factory)."""

from __future__ import annotations

from collections.abc import Callable

import truckllm_provider_openai as openai
from truckllm_provider_openai.audio import ENDPOINTS as MEDIA_ENDPOINTS
from truckllm_provider_openai.responses_calls import ENDPOINTS as CALL_ENDPOINTS

from truckllm import hookimpl
from truckllm.errors import UnsupportedRequest
from truckllm.kit.credentials import CredentialSource
from truckllm.kit.openai_wire import parse_ratelimit_headers
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

from .credentials import ApiKeySource, CredentialFactory, EntraSource, identity_credential, read_login
from .errors import filtered_answer, read_azure_error
from .options import Options
from .routing import deployment_url, openai_provider
from .stream import AzureStream

__all__ = ["ENDPOINTS", "AzurePlugin"]

ENDPOINTS = (
    frozenset({"chat", "completions", "embeddings", "count_tokens", "images.generations"})
    | CALL_ENDPOINTS
    | MEDIA_ENDPOINTS
)
"""Every endpoint the ``openai`` plugin serves, on Azure's URLs (not moderations: Azure OpenAI has
none; image streams are refused with a 400 naming ``stream``)."""

_DEFAULT_OPTIONS = Options()


def _options(provider: Provider) -> Options:
    options = provider.options
    return options if isinstance(options, Options) else _DEFAULT_OPTIONS


class AzurePlugin:
    """Azure OpenAI as the provider type ``type``.

    :param type: the YAML ``type:`` it answers to.
    :param credential_factory: builds the azure-identity credential of an ``entra`` key.
    """

    def __init__(
        self, type: str = "azure", credential_factory: CredentialFactory = identity_credential
    ) -> None:
        self.type = type
        self._factory = credential_factory

    def credentials(self, provider: Provider, value: str) -> CredentialSource:
        """The credential source of one key: its value (``api-key``) or Entra ID tokens.

        :raises ValueError: an ``entra`` key whose value says nothing usable.
        """
        options = _options(provider)
        if options.auth == "entra":
            return EntraSource(read_login(value), options.scope, self._factory)
        return ApiKeySource(value)

    @hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        """Offer the provider type."""
        register(
            ProviderSpec(
                type=self.type,
                default_base_url="",
                dialect="openai",
                endpoints=ENDPOINTS,
                options=Options,
                passes_through=frozenset({"responses"}),
                credentials=self.credentials,
            )
        )

    @hookimpl
    def transform_request(
        self, provider: Provider, model: str, request: ChatRequest, api_key: str
    ) -> UpstreamRequest | None:
        """The ``openai`` plugin's request at Azure's URL, with Azure's credential header."""
        if provider.type != self.type:
            return None
        if request.endpoint == "images.generations" and request.stream:
            raise UnsupportedRequest("Image streams are served by OpenAI deployments only.", param="stream")
        options = _options(provider)
        target = openai_provider(provider, options)
        upstream = openai.transform_request(target, model, request, api_key)
        if upstream is not None and options.api == "deployments":
            upstream.url = deployment_url(upstream.url, target.base_url, model)
        return upstream

    @hookimpl
    def transform_response(
        self, provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
    ) -> ProviderResult | None:
        """Azure's errors and content-filter refusals; the rest as the ``openai`` plugin reads it."""
        if provider.type != self.type:
            return None
        if response.status >= 400:
            limits = parse_ratelimit_headers(response.headers)
            error = read_azure_error(response.status, response.headers, response.body)
            # a conversation the account lost, which the gateway still holds, is served elsewhere
            return ProviderResult(error=openai.lost_conversation(error, request), limits=limits)
        if request.dialect != "responses" and request.endpoint in ("chat", "completions"):
            refused = filtered_answer(response.body)
            if refused is not None:
                return ProviderResult(error=refused, limits=parse_ratelimit_headers(response.headers))
        return openai.transform_response(
            openai_provider(provider, _options(provider)), request, response, model
        )

    @hookimpl
    def parse_usage(self, provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
        """The usage of an answer, as OpenAI's."""
        if provider.type != self.type:
            return None
        return openai.parse_usage(openai_provider(provider, _options(provider)), request, body)

    @hookimpl
    def transform_stream(
        self, provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
    ) -> AzureStream | StreamTranslator | None:
        """The ``openai`` plugin's stream translator; a chat stream without Azure's chunks of
        prompt filter results (a content-filtered stream keeps its ``finish_reason:
        content_filter``: the client has the text relayed before it)."""
        if provider.type != self.type:
            return None
        target = openai_provider(provider, _options(provider))
        translator = openai.transform_stream(target, request, response, model)
        if isinstance(translator, openai.OpenAIStream):
            return AzureStream(translator)
        return translator
