"""TruckLLM provider plugin for OpenAI and every OpenAI-compatible API (``type: openai``).

Chat completions, legacy completions and embeddings pass through with ``model`` rewritten; the
Responses API (a Responses client's ``POST /v1/responses`` and ``/v1/responses/input_tokens``)
passes through to ``/responses`` the same way; chat requests for the models in ``api:
responses``/``responses_models`` are translated to ``/responses`` and their answers back; token
counts asked in another dialect are translated for ``/responses/input_tokens``; a background
response is polled and cancelled at ``/responses/{id}`` (``responses.retrieve`` /
``responses.cancel``, see :mod:`.responses_calls`). ``options.preset`` adapts all this to an
OpenAI-compatible service (Groq, Mistral, DeepSeek, Ollama...: see :mod:`.presets`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import msgspec

from truckllm import hookimpl
from truckllm.errors import UnsupportedRequest
from truckllm.kit.openai_wire import parse_ratelimit_headers
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    RateLimits,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)

from .answers import check_answer
from .audio import ENDPOINTS as MEDIA_ENDPOINTS
from .audio import MediaEvents, RawAudio, build_media, media_stream, media_usage, read_media
from .errors import lost_conversation, read_error
from .files_batches import ENDPOINTS as BATCH_ENDPOINTS
from .files_batches import STREAMED as BATCH_STREAMED
from .files_batches import RawContent, UsageLines, batch_stream, batch_usage, build_call
from .files_batches import check_answer as check_batch_answer
from .options import Options
from .passthrough import ResponsesPassthrough, check_response
from .presets import PRESETS, Preset
from .quirks import adapt_chat_body
from .rerank import RERANK_PATH, rerank_body, rerank_result, rerank_tokens
from .responses_answer import translate_response
from .responses_calls import ENDPOINTS as CALL_ENDPOINTS
from .responses_calls import call_path, call_usage
from .responses_request import count_request, translate_request
from .responses_stream import ResponsesToChat
from .simple_calls import SIMPLE_ENDPOINTS, SIMPLE_PATHS, ImageStream, simple_body, simple_check, simple_usage
from .stream import OpenAIStream, check_content_type
from .usage import answer_usage

__all__ = [
    "PRESETS",
    "SIMPLE_ENDPOINTS",
    "ImageStream",
    "MediaEvents",
    "OpenAIStream",
    "Options",
    "Preset",
    "RawAudio",
    "ResponsesPassthrough",
    "ResponsesToChat",
    "lost_conversation",
    "parse_usage",
    "read_error",
    "register_providers",
    "resolve_entry",
    "transform_request",
    "transform_response",
    "transform_stream",
]

TRUCKLLM_API = 1

TYPE = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings",
         "rerank": RERANK_PATH}  # fmt: skip
"""The paths of a chat-dialect request (rerank: an OpenAI-compatible server's, see :mod:`.rerank`)."""
RESPONSES_PATHS = {"chat": "/responses", "count_tokens": "/responses/input_tokens"}
"""The paths of a Responses API request (the kernel's endpoint → path under ``base_url``)."""


_DEFAULT_OPTIONS = Options()


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer the ``openai`` provider type."""
    register(
        ProviderSpec(
            type=TYPE,
            default_base_url=DEFAULT_BASE_URL,
            dialect="openai",
            endpoints=frozenset(PATHS)
            | frozenset(RESPONSES_PATHS)
            | CALL_ENDPOINTS
            | SIMPLE_ENDPOINTS
            | MEDIA_ENDPOINTS
            | BATCH_ENDPOINTS,
            options=Options,
            passes_through=frozenset({"responses"}),  # Responses API requests go as they came
            resolve=resolve_entry,  # a preset's root; no key needed by a local server's
        )
    )


def _options(provider: Provider) -> Options:
    options = provider.options
    return options if isinstance(options, Options) else _DEFAULT_OPTIONS


class _Plan:
    """What every call to one provider entry shares, worked out at its first call: its options
    and preset, the URL root and query, the headers after the credential, the rate-limit reader,
    and, per upstream model, how a chat request for it is sent."""

    __slots__ = (
        "auth",
        "bearer",
        "extra",
        "limits",
        "models",
        "options",
        "preset",
        "provider",
        "query",
        "root",
    )

    def __init__(self, provider: Provider) -> None:
        options = _options(provider)
        preset = _preset(options)
        self.provider = provider
        self.options = options
        self.preset = preset
        self.root = _base_url(provider, options)
        self.query = "?" + urlencode(options.query) if options.query else ""
        self.auth = options.auth_header.lower()
        self.bearer = self.auth == "authorization"  # else the key is sent bare (Azure's api-key)
        extra: dict[str, str] = {}
        if options.organization:
            extra["openai-organization"] = options.organization
        if options.project:
            extra["openai-project"] = options.project
        extra.update(provider.headers)  # the entry's own headers win
        self.extra = extra
        self.limits: Callable[[Any], RateLimits | None] = (
            preset.limits if preset is not None else parse_ratelimit_headers
        )
        self.models: dict[str, tuple[bool, bool]] = {}

    def url(self, path: str) -> str:
        """The URL of ``path`` under the API root, with the configured query."""
        return self.root + path + self.query

    def headers(self, api_key: str, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` with the credentials, organization, project and the provider's own headers."""
        if api_key:
            headers[self.auth] = f"Bearer {api_key}" if self.bearer else api_key
        headers.update(self.extra)
        return headers

    def model(self, model: str) -> tuple[bool, bool]:
        """For the upstream ``model``: (chat requests go through ``/responses``, ``max_tokens``
        is sent as ``max_completion_tokens``)."""
        found = self.models.get(model)
        if found is None:
            options = self.options
            preset = self.preset
            found = (
                options.uses_responses(model),
                options.renames_max_tokens(model, preset.reasoning_models if preset else None),
            )
            if len(self.models) < _MAX_MODELS:  # models named by clients (provider/model) stay bounded
                self.models[model] = found
        return found


_MAX_PLANS = 64
_MAX_MODELS = 256
_PLANS: dict[int, _Plan] = {}
"""Each provider entry's plan, by identity (a plan holds its entry: the id is not reused while it
is here); emptied when full, as a config reload brings new entries."""


def _plan(provider: Provider) -> _Plan:
    plan = _PLANS.get(id(provider))
    if plan is None or plan.provider is not provider:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        plan = _PLANS[id(provider)] = _Plan(provider)
    return plan


def resolve_entry(options: object) -> tuple[str | None, bool | None]:
    """``(default base URL, needs keys)`` of one provider entry: a preset's documented root, and
    no key for a local server (``ollama``, ``vllm``, ``lmstudio``)."""
    preset = _preset(options) if isinstance(options, Options) else None
    if preset is None:
        return None, None
    return preset.base_url, not preset.local


def _preset(options: Options) -> Preset | None:
    return PRESETS[options.preset] if options.preset is not None else None


def _base_url(provider: Provider, options: Options) -> str:
    """The API root: the config's ``base_url``; with a preset and none given, the preset's (the
    kernel fills OpenAI's own root for an entry without one: it never means another service)."""
    preset = _preset(options)
    if preset is not None and provider.base_url == DEFAULT_BASE_URL:
        return preset.base_url
    return provider.base_url


def _translated(request: ChatRequest, model: str, plan: _Plan) -> bool:
    """Whether a chat request goes through ``/responses`` (``api: responses``, ``responses_models``)."""
    return request.dialect != "responses" and request.endpoint == "chat" and plan.model(model)[0]


def _path_and_body(request: ChatRequest, model: str, plan: _Plan) -> tuple[str, bytes]:
    if request.dialect == "responses":
        path = RESPONSES_PATHS.get(request.endpoint)
        if path is None:
            raise UnsupportedRequest(f"the Responses API has no {request.endpoint} endpoint")
        return path, request.with_model(model)
    if request.dialect != "openai" and request.typed is None:  # the dialect found no OpenAI form
        raise UnsupportedRequest(
            request.refusal or f"this {request.dialect} request has no OpenAI form to send",
            param=request.refusal_param,
        )
    if request.endpoint == "count_tokens":  # another dialect's count: through the Responses API
        return RESPONSES_PATHS["count_tokens"], msgspec.json.encode(count_request(request, model))
    if request.endpoint == "chat":
        translated, renames = plan.model(model)
        if translated:
            return RESPONSES_PATHS["chat"], msgspec.json.encode(translate_request(request, model))
    else:
        renames = False
    body = _body(request, model, renames)
    preset = plan.preset
    if preset is not None and request.endpoint == "chat":
        fields = msgspec.json.decode(body)
        if isinstance(fields, dict) and adapt_chat_body(preset, model, fields):
            body = msgspec.json.encode(fields)
    return PATHS[request.endpoint], body


def _drop_cache_control(message: dict[str, Any]) -> None:
    """Remove the typed form's prompt-cache marks from a message and its parts (OpenAI's chat API
    refuses unknown members; its prompt cache needs no marks)."""
    message.pop("cache_control", None)
    content = message.get("content")
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict):
            part.pop("cache_control", None)


def _body(request: ChatRequest, model: str, renames: bool) -> bytes:
    """The body sent: the client's, ``model`` (and usage options, ``max_completion_tokens`` when
    ``renames``) changed."""
    if request.dialect != "openai":  # an inbound dialect plugin translated it to OpenAI's form
        fields = msgspec.json.decode(msgspec.json.encode(request.typed))
        fields["model"] = model
        fields.pop("top_k", None)  # not an OpenAI parameter (other dialects have it)
        for message in fields.get("messages") or ():
            # another provider's thinking (a conversation begun on Anthropic): OpenAI chat
            # deployments refuse unknown message members, DeepSeek refuses reasoning_content
            if isinstance(message, dict):
                message.pop("thinking_blocks", None)
                message.pop("reasoning_content", None)
                _drop_cache_control(message)
        for tool in fields.get("tools") or ():
            if isinstance(tool, dict):
                tool.pop("cache_control", None)
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
    if renames:  # a chat request for a reasoning model
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
    """Pass the client's body through with only ``model`` (and usage options) changed; translate
    a chat request for a model served through ``/responses``."""
    if provider.type != TYPE:
        return None
    plan = _plan(provider)
    if request.endpoint in SIMPLE_ENDPOINTS:  # images and moderations: the body as it came
        accept = {"accept": "text/event-stream" if request.stream else "application/json"}
        return UpstreamRequest(
            url=plan.url(SIMPLE_PATHS[request.endpoint]),
            headers=plan.headers(api_key, {"content-type": "application/json", **accept}),
            body=simple_body(request, model),
            stream=request.stream,
        )
    if request.endpoint == "rerank":  # an OpenAI-compatible server's Jina-style rerank (vLLM)
        json_headers = {"content-type": "application/json", "accept": "application/json"}
        return UpstreamRequest(
            url=plan.url(RERANK_PATH),
            headers=plan.headers(api_key, json_headers),
            body=rerank_body(request, model),
        )
    if request.endpoint in BATCH_ENDPOINTS:  # files and batches (see files_batches)
        method, path, extra, body, body_stream = build_call(request, model)
        return UpstreamRequest(
            url=plan.url(path),
            headers=plan.headers(api_key, {"accept": "application/json", **extra}),
            method=method,
            body=body,
            body_stream=body_stream,
            stream=request.stream and request.endpoint in BATCH_STREAMED,  # a file read as it comes
        )
    if request.endpoint in MEDIA_ENDPOINTS:  # audio and image edits (see audio)
        path, extra, body, body_stream, stream = build_media(request, model)
        return UpstreamRequest(
            url=plan.url(path),
            headers=plan.headers(api_key, extra),
            body=body,
            body_stream=body_stream,
            stream=stream,
        )
    if request.dialect == "responses" and request.endpoint in CALL_ENDPOINTS:
        method, path = call_path(request)  # a poll or cancel of a background response: no body
        return UpstreamRequest(
            url=plan.url(path),
            headers=plan.headers(api_key, {"accept": "application/json"}),
            method=method,
        )
    path, body = _path_and_body(request, model, plan)
    stream = request.stream and request.endpoint != "count_tokens"
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    return UpstreamRequest(
        url=plan.root + path + plan.query,  # plan.url(path), inline on the hot path
        headers=plan.headers(api_key, headers),
        body=body,
        stream=stream,
    )


@hookimpl
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
) -> ProviderResult | None:
    """Pass a success through (checked; a Response with ``dialect="responses"``), or translate a
    Response back to a chat completion; classify an error (a conversation this account lost while
    the gateway holds it: another candidate may serve it, see :func:`.errors.lost_conversation`)."""
    if provider.type != TYPE:
        return None
    plan = _plan(provider)
    limits = plan.limits(response.headers)
    if response.status >= 400:
        error = read_error(response.status, response.headers, response.body)
        return ProviderResult(error=lost_conversation(error, request), limits=limits)
    if request.endpoint in SIMPLE_ENDPOINTS:
        bad = simple_check(request.endpoint, response.body)
        return ProviderResult(body=response.body if bad is None else b"", error=bad, limits=limits)
    if request.endpoint == "rerank":
        return rerank_result(request, response.body, model, limits)
    if request.endpoint in MEDIA_ENDPOINTS:
        return read_media(request, response.body, limits)
    if request.endpoint in BATCH_ENDPOINTS:
        bad = check_batch_answer(request.endpoint, response.body)
        return ProviderResult(body=response.body if bad is None else b"", error=bad, limits=limits)
    if request.dialect == "responses" or request.endpoint == "count_tokens":
        bad = check_response(request.endpoint, response.body)  # a poll's failed Response is its answer
        if bad is not None:
            return ProviderResult(error=lost_conversation(bad, request), limits=limits)
        # a count is OpenAI's own count answer, which every inbound dialect reads
        dialect = "responses" if request.dialect == "responses" else "openai"
        return ProviderResult(body=response.body, limits=limits, dialect=dialect)
    if request.endpoint == "chat" and plan.model(model)[0]:  # _translated (not a Responses request)
        translated = translate_response(response.body, model)
        if isinstance(translated, bytes):
            return ProviderResult(body=translated, limits=limits, dialect="openai")
        return ProviderResult(error=translated, limits=limits)
    bad = check_answer(request.endpoint, response.body)
    if bad is not None:
        return ProviderResult(error=bad, limits=limits)
    return ProviderResult(body=response.body, limits=limits, dialect="openai")


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The usage of an OpenAI answer: a chat or legacy completion's, a Response's (none for a
    token count)."""
    if provider.type != TYPE:
        return None
    if request.endpoint in SIMPLE_ENDPOINTS:
        return simple_usage(request.endpoint, body)
    if request.endpoint == "rerank":
        return rerank_tokens(body)
    if request.endpoint in BATCH_ENDPOINTS:  # only a batch's output file carries usage
        return batch_usage(body) if request.endpoint == "batches.usage" else Usage()
    if request.endpoint in MEDIA_ENDPOINTS:
        return media_usage(request, body)
    if request.dialect == "responses" and request.endpoint in CALL_ENDPOINTS:
        return call_usage(request, body)  # counted once per background response (see responses_calls)
    return answer_usage(body, request.dialect == "responses", request.endpoint == "count_tokens")


@hookimpl
def transform_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse, model: str
) -> (
    OpenAIStream
    | ResponsesPassthrough
    | ResponsesToChat
    | RawAudio
    | MediaEvents
    | ImageStream
    | RawContent
    | UsageLines
    | None
):
    """A translator for an OpenAI stream (refused at once when the answer is not an event
    stream): chat chunks relayed, Responses events relayed, or Responses events as chat chunks."""
    if provider.type != TYPE:
        return None
    plan = _plan(provider)
    if request.endpoint in MEDIA_ENDPOINTS:  # raw audio, or events relayed as they come
        return media_stream(request, response.headers, plan.limits(response.headers))
    if request.endpoint in BATCH_STREAMED:  # a file's bytes relayed, or its lines' usage summed
        content_type = response.headers.get("content-type", "")
        return batch_stream(request, content_type, plan.limits(response.headers))
    check_content_type(response.headers)
    limits = plan.limits(response.headers)
    if request.endpoint == "images.generations":
        return ImageStream(limits)
    if request.dialect == "responses":
        return ResponsesPassthrough(limits)
    if _translated(request, model, plan):
        return ResponsesToChat(request.include_usage, model, limits)
    return OpenAIStream(request.include_usage, limits)
