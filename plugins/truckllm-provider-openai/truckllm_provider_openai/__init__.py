"""TruckLLM provider plugin for OpenAI and every OpenAI-compatible API (``type: openai``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlencode

import msgspec

from truckllm import hookimpl
from truckllm.kit.openai_wire import parse_openai_usage, parse_ratelimit_headers
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)

from .answers import check_answer
from .errors import read_error
from .options import Options
from .stream import OpenAIStream, check_content_type

__all__ = [
    "OpenAIStream",
    "Options",
    "parse_usage",
    "read_error",
    "register_providers",
    "transform_request",
    "transform_response",
    "transform_stream",
]

TRUCKLLM_API = 1

TYPE = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}


_DEFAULT_OPTIONS = Options()


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer the ``openai`` provider type."""
    register(
        ProviderSpec(
            type=TYPE,
            default_base_url=DEFAULT_BASE_URL,
            dialect="openai",
            endpoints=frozenset(PATHS),
            options=Options,
        )
    )


def _options(provider: Provider) -> Options:
    options = provider.options
    return options if isinstance(options, Options) else _DEFAULT_OPTIONS


def _body(request: ChatRequest, model: str, options: Options) -> bytes:
    if request.dialect != "openai":  # an inbound dialect plugin translated it to OpenAI's form
        fields = msgspec.json.decode(msgspec.json.encode(request.typed))
        fields["model"] = model
        fields.pop("top_k", None)  # not an OpenAI parameter (other dialects have it)
        if request.stream and request.endpoint != "embeddings":
            fields["stream_options"] = {"include_usage": True}
        return msgspec.json.encode(fields)
    overrides: dict[str, object] = {}
    if model != request.model:
        overrides["model"] = model
    if request.stream and request.endpoint != "embeddings" and not request.include_usage:
        current = request.fields().get("stream_options")
        merged = msgspec.json.decode(current) if current is not None else {}
        if not isinstance(merged, dict):
            merged = {}
        merged["include_usage"] = True
        overrides["stream_options"] = merged
    if request.endpoint == "chat" and re.match(options.reasoning_models, model):
        fields = request.fields()
        if "max_tokens" in fields and "max_completion_tokens" not in fields:
            overrides["max_completion_tokens"] = fields["max_tokens"]
            overrides["max_tokens"] = None
    if not overrides:
        return request.body
    return request.encode(**overrides)


@hookimpl
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """Pass the client's OpenAI body through with only ``model`` (and usage options) changed."""
    if provider.type != TYPE:
        return None
    options = _options(provider)
    url = provider.base_url + PATHS[request.endpoint]
    if options.query:
        url += "?" + urlencode(options.query)
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if request.stream else "application/json",
    }
    if api_key:
        if options.auth_header.lower() == "authorization":
            headers["authorization"] = f"Bearer {api_key}"
        else:
            headers[options.auth_header.lower()] = api_key
    if options.organization:
        headers["openai-organization"] = options.organization
    if options.project:
        headers["openai-project"] = options.project
    headers.update(provider.headers)
    return UpstreamRequest(
        url=url, headers=headers, body=_body(request, model, options), stream=request.stream
    )


@hookimpl
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> ProviderResult | None:
    """Pass a success through; classify an error."""
    if provider.type != TYPE:
        return None
    limits = parse_ratelimit_headers(response.headers)
    if response.status >= 400:
        return ProviderResult(
            error=read_error(response.status, response.headers, response.body), limits=limits
        )
    bad = check_answer(request.endpoint, response.body)
    if bad is not None:
        return ProviderResult(error=bad, limits=limits)
    return ProviderResult(body=response.body, limits=limits, dialect="openai")


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The ``usage`` member of an OpenAI answer."""
    if provider.type != TYPE:
        return None
    return parse_openai_usage(body)


@hookimpl
def transform_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> OpenAIStream | None:
    """A translator for an OpenAI stream (refused at once when the answer is not an event stream)."""
    if provider.type != TYPE:
        return None
    check_content_type(response.headers)
    return OpenAIStream(request.include_usage, parse_ratelimit_headers(response.headers))
