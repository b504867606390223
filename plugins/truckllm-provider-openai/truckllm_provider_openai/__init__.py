"""TruckLLM provider plugin for OpenAI and every OpenAI-compatible API (``type: openai``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import msgspec

from truckllm import hookimpl
from truckllm.errors import UpstreamFailure
from truckllm.openai_wire import (
    parse_openai_usage,
    parse_ratelimit_headers,
    parse_retry_after,
    upstream_error,
)
from truckllm.sse import SSEEvent, SSEParser
from truckllm.types import (
    ChatRequest,
    Provider,
    ProviderResult,
    ProviderSpec,
    RateLimits,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)

TRUCKLLM_API = 1

TYPE = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}


class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``providers.<name>.options`` for ``type: openai``."""

    organization: str | None = None
    project: str | None = None
    auth_header: str = "authorization"
    query: dict[str, str] = msgspec.field(default_factory=dict)
    reasoning_models: str = r"^(o\d|gpt-5)"


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


class _ErrorObject(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorObject | str | None = None


_ERROR_DECODER = msgspec.json.Decoder(_ErrorBody)
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?)(ms|s)\b", re.IGNORECASE)


def read_error(status: int, headers: object, body: bytes) -> UpstreamError:
    """Classify an OpenAI(-compatible) error answer."""
    try:
        parsed = _ERROR_DECODER.decode(body).error
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, str):
        parsed = _ErrorObject(message=parsed)
    message = (parsed.message if parsed and parsed.message else None) or (
        body[:300].decode("utf-8", "replace").strip() or f"upstream answered HTTP {status}"
    )
    code = str(parsed.code) if parsed and parsed.code is not None else None
    etype = parsed.type if parsed else None
    kind = None
    retry_after = parse_retry_after(headers) if status in (429, 503) else None
    if code == "context_length_exceeded" or (status == 400 and "maximum context length" in message):
        kind = "context_length"
    elif status == 429 and (code == "insufficient_quota" or etype == "insufficient_quota"):
        kind = "quota"
    elif status == 429 and retry_after is None:
        match = _TRY_AGAIN.search(message)
        if match:
            retry_after = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
    param = parsed.param if parsed else None
    return upstream_error(status, message, kind=kind, code=code, param=param, retry_after=retry_after)


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
    return ProviderResult(body=response.body, limits=limits, dialect="openai")


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The ``usage`` member of an OpenAI answer."""
    if provider.type != TYPE:
        return None
    return parse_openai_usage(body)


class _Chunk(msgspec.Struct):
    error: Any = None
    choices: list[Any] | None = None


_CHUNK_DECODER = msgspec.json.Decoder(_Chunk)


def _decode_chunk(data: bytes) -> _Chunk:
    """A chunk's error and choices; invalid UTF-8 is replaced so an error object is still seen."""
    try:
        return _CHUNK_DECODER.decode(data)
    except UnicodeDecodeError:
        try:
            return _CHUNK_DECODER.decode(data.decode("utf-8", "replace").encode())
        except (msgspec.DecodeError, msgspec.ValidationError):
            return _Chunk()
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _Chunk()


class OpenAIStream:
    """Forwards an OpenAI stream frame by frame; reads usage; drops the usage chunk the client
    did not ask for; turns a mid-stream ``{"error":...}`` or a missing ``[DONE]`` into an error."""

    dialect = "openai"

    def __init__(self, include_usage: bool, limits: RateLimits | None) -> None:
        self.include_usage = include_usage
        self.limits = limits
        self.usage: Usage | None = None
        self.done = False
        self._parser = SSEParser()

    def feed(self, chunk: bytes) -> bytes:
        """Frames to forward for this chunk of upstream bytes."""
        return self._handle(self._parser.feed(chunk))

    def _handle(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        try:
            self._events(events, out)
        except UpstreamFailure as failure:
            failure.pending = b"".join(out)
            raise
        return b"".join(out)

    def _events(self, events: list[SSEEvent], out: list[bytes]) -> None:
        for event in events:
            if event.raw:
                self._raw_error(event.data)
                continue
            data = event.data
            if data == b"[DONE]":
                self.done = True
                out.append(b"data: [DONE]\n\n")
                continue
            if b'"error"' in data or b'"usage":{' in data or b'"usage": {' in data:
                parsed = _decode_chunk(data)
                if parsed.error is not None:
                    self._raise(parsed.error)
                usage = parse_openai_usage(data)
                if usage is not None:
                    self.usage = usage
                    if not self.include_usage and not parsed.choices:
                        continue
            out.append(b"data: " + data + b"\n\n")

    def _raw_error(self, data: bytes) -> None:
        parsed = _decode_chunk(data)
        if parsed.error is not None:
            self._raise(parsed.error)

    def _raise(self, payload: Any) -> None:
        error = read_error(500, {}, msgspec.json.encode({"error": payload}))
        raise UpstreamFailure(
            UpstreamError(status=502, kind="stream", message=error.message, type=error.type, code=error.code)
        )

    def close(self) -> bytes:
        """The upstream ended: a stream without ``[DONE]`` was cut short."""
        tail = self._handle(self._parser.close())
        if not self.done:
            raise UpstreamFailure(
                UpstreamError(status=502, kind="stream", message="upstream stream ended before [DONE]")
            )
        return tail


@hookimpl
def transform_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> OpenAIStream | None:
    """A translator for an OpenAI stream."""
    if provider.type != TYPE:
        return None
    return OpenAIStream(request.include_usage, parse_ratelimit_headers(response.headers))
