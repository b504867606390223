"""TruckLLM provider plugin for Anthropic's Messages API (``type: anthropic``).

OpenAI-dialect requests (chat completions and legacy completions) are translated to
``POST /v1/messages`` and the answers, streams and errors back to OpenAI's shapes; requests from
an Anthropic-dialect client pass through with only ``model`` rewritten. Token counts are asked of
``POST /v1/messages/count_tokens`` for every dialect (:mod:`.count`). See the README for what is
translated and what is refused.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from loguru import logger

from truckllm import hookimpl
from truckllm.errors import UnsupportedRequest
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

from .batch_results import ResultsToOutput, ResultsUsage, whole_usage
from .batches import ENDPOINTS as BATCH_ENDPOINTS
from .batches import batch_call, batch_result
from .count import count_answer, count_body
from .errors import classify_error, error_from_body, parse_ratelimits
from .headers import beta_header
from .options import DEFAULT_OPTIONS, Options
from .request import MAX_REQUEST_BYTES, translate, uses_json_tool
from .response import UnreadableAnswer, check_answer, parse_usage_body, translate_message
from .stream import AnthropicPassthrough, AnthropicStream

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

TYPE = "anthropic"
"""The ``type:`` of the provider entries this plugin serves."""

DEFAULT_BASE_URL = "https://api.anthropic.com"
"""Used when a provider entry gives no ``base_url``."""


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer the ``anthropic`` provider type."""
    register(
        ProviderSpec(
            type=TYPE,
            default_base_url=DEFAULT_BASE_URL,
            dialect="anthropic",
            endpoints=frozenset({"chat", "completions", "count_tokens"}) | BATCH_ENDPOINTS,
            options=Options,
        )
    )


def _options(provider: Provider) -> Options:
    options = provider.options
    return options if isinstance(options, Options) else DEFAULT_OPTIONS


def _beta(options: Options, request: ChatRequest) -> str:
    # an Anthropic client's own beta features go along, once checked to be feature names
    client = request.headers.get("anthropic-beta") if request.dialect == "anthropic" else None
    return beta_header(options.beta, client)


def _bad_response(status: int, why: str) -> UpstreamError:
    """A 2xx that is not an Anthropic answer: 502 ``bad_response``, counted against the key."""
    return upstream_error(
        502, f"Anthropic answered HTTP {status} with {why}", kind="bad_response", type="server_error"
    )


@hookimpl
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """Build ``POST {base_url}/v1/messages`` (or ``.../count_tokens``): translated from OpenAI's
    chat form, or passed through for an Anthropic client."""
    if provider.type != TYPE:
        return None
    options = _options(provider)
    if request.endpoint in BATCH_ENDPOINTS:  # Message Batches behind OpenAI's Batch API (see batches)
        return batch_call(provider, options, request, model, api_key)
    counting = request.endpoint == "count_tokens"
    path = "/v1/messages/count_tokens" if counting else "/v1/messages"
    stream = request.stream and not counting
    if request.dialect == "anthropic":
        body = request.with_model(model)
    else:
        try:
            translation = translate(request, model, options)
        except RecursionError:  # client JSON nested deeper than the translation can follow
            raise UnsupportedRequest("the request is nested too deeply to translate for Anthropic") from None
        if translation.notes:
            logger.debug("provider {} ({}): {}", provider.name, model, "; ".join(translation.notes))
        body = msgspec.json.encode(count_body(translation.body) if counting else translation.body)
        if len(body) > MAX_REQUEST_BYTES:
            raise UnsupportedRequest(
                f"the request is {len(body)} bytes once translated; Anthropic accepts at most 32 MB",
                param="messages",
            )
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "anthropic-version": options.anthropic_version,
    }
    if api_key:
        headers["x-api-key"] = api_key
    beta = _beta(options, request)
    if beta:
        headers["anthropic-beta"] = beta
    headers.update(provider.headers)
    return UpstreamRequest(url=provider.base_url + path, headers=headers, body=body, stream=stream)


@hookimpl
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> ProviderResult | None:
    """Translate a success to OpenAI's shape (a token count to OpenAI's count answer), or pass it
    through for an Anthropic client; classify an error."""
    if provider.type != TYPE:
        return None
    limits = parse_ratelimits(response.headers)
    if request.endpoint in BATCH_ENDPOINTS:
        return batch_result(request, response, limits)
    status = response.status
    if status >= 400:
        return ProviderResult(error=classify_error(status, response.headers, response.body), limits=limits)
    if status >= 300 or status < 200:
        return ProviderResult(error=_bad_response(status, "no answer"), limits=limits)
    error = error_from_body(response.body)
    if error is not None:
        return ProviderResult(error=error, limits=limits)
    try:
        if request.dialect == "anthropic":
            check_answer(response.body, request.endpoint)
            return ProviderResult(body=response.body, limits=limits, dialect="anthropic")
        if request.endpoint == "count_tokens":
            return ProviderResult(body=count_answer(response.body), limits=limits)
        body = translate_message(
            response.body,
            endpoint=request.endpoint,
            json_tool=uses_json_tool(request, _options(provider)),
            fallback_model=request.model,
        )
    except UnreadableAnswer as exc:
        return ProviderResult(error=_bad_response(status, f"an unreadable body ({exc})"), limits=limits)
    return ProviderResult(body=body, limits=limits)


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The usage of an Anthropic message, in OpenAI's sense (prompt includes cached tokens)."""
    if provider.type != TYPE:
        return None
    if request.endpoint == "count_tokens":
        return Usage()  # counting tokens is free: nothing was generated or billed
    if request.endpoint in BATCH_ENDPOINTS:  # only a batch's results carry usage, billed once
        return whole_usage(body) if request.endpoint == "batches.usage" else Usage()
    return parse_usage_body(body)


@hookimpl
def transform_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> AnthropicStream | AnthropicPassthrough | ResultsToOutput | ResultsUsage | None:
    """A translator for one Anthropic stream (or a pass-through for an Anthropic client; a
    batch's results as OpenAI output lines, or their usage)."""
    if provider.type != TYPE:
        return None
    limits = parse_ratelimits(response.headers)
    if request.endpoint == "batches.usage":
        return ResultsUsage(limits)
    if request.endpoint == "files.content":
        return ResultsToOutput(request.model, limits)
    if request.dialect == "anthropic":
        return AnthropicPassthrough(limits)
    return AnthropicStream(
        endpoint=request.endpoint,
        include_usage=request.include_usage,
        json_tool=uses_json_tool(request, _options(provider)),
        fallback_model=request.model,
        limits=limits,
    )
