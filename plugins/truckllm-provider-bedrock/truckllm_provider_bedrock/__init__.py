"""TruckLLM provider plugin for Amazon Bedrock's Converse API (``type: bedrock``).

OpenAI chat requests (and, through the dialect plugins, Anthropic and Gemini clients' requests
in their typed form) are translated to ``POST /model/{modelId}/converse`` or
``/converse-stream``, signed with SigV4 (or sent with a Bedrock API key), and the answers, the
binary event streams and the errors translated back to OpenAI's shapes. Credentials come from
a :class:`~truckllm.kit.credentials.CredentialSource` (:mod:`.credentials`) the kernel refreshes
off the request path.

Modules: :mod:`.request` (OpenAI → Converse), :mod:`.response` (Converse → OpenAI),
:mod:`.stream` and :mod:`.eventstream` (streams), :mod:`.errors`, :mod:`.signing` (SigV4),
:mod:`.credentials`, :mod:`.options`.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from loguru import logger

from truckllm import hookimpl
from truckllm.errors import UnsupportedRequest
from truckllm.kit.openai_schemas import ChatCompletionRequest
from truckllm.kit.openai_wire import upstream_error
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)

from .cache import cache_marks
from .count import converse_count_body, count_answer, invoke_count_body
from .credentials import decode_credential, make_source
from .errors import classify
from .options import DEFAULT_OPTIONS, Options, region_of
from .passthrough import InvokeStream, invoke_body, is_message, message_usage
from .request import is_claude, translate
from .response import UnreadableAnswer, parse_usage_body, translate_answer
from .signing import model_path, sign
from .stream import ConverseStream

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

TYPE = "bedrock"
"""The ``type:`` of the provider entries this plugin serves."""

DEFAULT_BASE_URL = "https://bedrock-runtime.us-east-1.amazonaws.com"
"""Used when a provider entry gives no ``base_url``: the endpoint of ``options.region`` then."""

MAX_REQUEST_BYTES = 20 * 1024 * 1024
"""Bedrock's request size limit."""


class MissingCredentials(Exception):
    """No usable credential reached ``transform_request`` (a failed attempt, never the secret)."""


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer the ``bedrock`` provider type (keys optional: none means the AWS credential chain)."""
    register(
        ProviderSpec(
            type=TYPE,
            default_base_url=DEFAULT_BASE_URL,
            dialect="openai",
            endpoints=frozenset({"chat", "count_tokens"}),
            options=Options,
            needs_keys=False,
            passes_through=frozenset({"anthropic"}),
            credentials=make_source,
        )
    )


def _options(provider: Provider) -> Options:
    options = provider.options
    return options if isinstance(options, Options) else DEFAULT_OPTIONS


def _endpoint(provider: Provider, options: Options) -> tuple[str, str]:
    """``(base URL, region)``: the configured URL, or the region's endpoint for the default."""
    if provider.base_url == DEFAULT_BASE_URL and options.region:
        return f"https://bedrock-runtime.{options.region}.amazonaws.com", options.region
    region = region_of(options, provider.base_url)
    if region is None:
        raise MissingCredentials(f"provider {provider.name!r}: set options.region (the base_url names none)")
    return provider.base_url, region


@hookimpl
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """Build the signed ``POST /model/{modelId}/converse`` (``converse-stream``, ``invoke``,
    ``invoke-with-response-stream`` or ``count-tokens``)."""
    if provider.type != TYPE:
        return None
    options = _options(provider)
    base_url, region = _endpoint(provider, options)
    counting = request.endpoint == "count_tokens"
    stream = request.stream and not counting
    if _passes_through(request, model):
        invoke = invoke_body(request)
        if counting:
            return _send(
                provider,
                options,
                base_url + model_path(model, "count-tokens"),
                invoke_count_body(invoke),
                False,
                api_key,
                region,
            )
        operation = "invoke-with-response-stream" if stream else "invoke"
        return _send(
            provider, options, base_url + model_path(model, operation), invoke, stream, api_key, region
        )
    typed = request.typed
    if not isinstance(typed, ChatCompletionRequest):
        if request.refusal:
            raise UnsupportedRequest(request.refusal, param=request.refusal_param)
        raise UnsupportedRequest(f"Bedrock does not serve the {request.endpoint} endpoint")
    try:
        translation = translate(
            typed,
            model,
            max_tokens=options.max_tokens,
            thinking_max_tokens=options.thinking_max_tokens,
            marks=cache_marks(request),
        )
    except RecursionError:
        raise UnsupportedRequest("the request is nested too deeply to translate for Bedrock") from None
    if translation.notes:
        logger.debug("provider {} ({}): {}", provider.name, model, "; ".join(translation.notes))
    body = converse_count_body(translation.body) if counting else msgspec.json.encode(translation.body)
    if len(body) > MAX_REQUEST_BYTES:
        raise UnsupportedRequest(
            f"the request is {len(body)} bytes once translated; Bedrock accepts at most 20 MB",
            param="messages",
        )
    operation = "count-tokens" if counting else ("converse-stream" if stream else "converse")
    return _send(provider, options, base_url + model_path(model, operation), body, stream, api_key, region)


def _passes_through(request: ChatRequest, model: str) -> bool:
    """An Anthropic client's request to a Claude model goes through InvokeModel as it came."""
    return (
        request.dialect == "anthropic" and request.endpoint in ("chat", "count_tokens") and is_claude(model)
    )


def _send(
    provider: Provider,
    options: Options,
    url: str,
    body: bytes,
    stream: bool,
    api_key: str,
    region: str,
) -> UpstreamRequest:
    """The call with its credentials: a bearer API key, or SigV4 over every header set here."""
    headers = {
        "content-type": "application/json",
        "accept": "application/vnd.amazon.eventstream" if stream else "application/json",
        **provider.headers,
    }
    if options.auth == "api_key":
        if not api_key:
            raise MissingCredentials(f"provider {provider.name!r}: no Bedrock API key")
        headers["authorization"] = f"Bearer {api_key}"
    else:
        credential = decode_credential(api_key)
        if credential is None:
            raise MissingCredentials(f"provider {provider.name!r}: no AWS credentials ready")
        headers.update(sign(url=url, headers=headers, body=body, credential=credential, region=region))
    return UpstreamRequest(url=url, headers=headers, body=body, stream=stream)


def _bad_response(status: int, why: str) -> UpstreamError:
    return upstream_error(
        502, f"Bedrock answered HTTP {status} with {why}", kind="bad_response", type="server_error"
    )


@hookimpl
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
) -> ProviderResult | None:
    """Translate a Converse answer to OpenAI's shape (pass an InvokeModel answer back to an
    Anthropic client); classify an error."""
    if provider.type != TYPE:
        return None
    status = response.status
    if status >= 400:
        return ProviderResult(error=classify(status, response.headers, response.body))
    if not 200 <= status < 300:
        return ProviderResult(error=_bad_response(status, "no answer"))
    if request.endpoint == "count_tokens":
        try:
            return ProviderResult(body=count_answer(response.body))
        except UnreadableAnswer as exc:
            return ProviderResult(error=_bad_response(status, f"an unreadable count ({exc})"))
    if _passes_through(request, model):
        if not is_message(response.body):
            return ProviderResult(error=_bad_response(status, "a body that is not an Anthropic message"))
        return ProviderResult(body=response.body, dialect="anthropic")
    try:
        body = translate_answer(response.body, model=request.model)
    except UnreadableAnswer as exc:
        return ProviderResult(error=_bad_response(status, f"an unreadable body ({exc})"))
    return ProviderResult(body=body)


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The usage of a Converse answer, in OpenAI's sense (the prompt counts cached tokens)."""
    if provider.type != TYPE:
        return None
    if request.endpoint == "count_tokens":
        return Usage()  # counting tokens generates nothing
    usage = parse_usage_body(body)
    return usage if usage is not None else message_usage(body)


@hookimpl
def transform_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
) -> ConverseStream | InvokeStream | None:
    """A translator for one ConverseStream answer (or an InvokeModel stream for an Anthropic client)."""
    if provider.type != TYPE:
        return None
    if _passes_through(request, model):
        return InvokeStream()
    return ConverseStream(model=request.model, include_usage=request.include_usage)
