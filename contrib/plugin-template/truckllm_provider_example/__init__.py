"""TruckLLM provider plugin ``example``: a local OpenAI-compatible server (vLLM, Ollama, LM Studio).

Those servers speak OpenAI's wire format, so the plugin has little to translate: it points the
client's body at the deployment's model, asks for usage on streams, reads errors, and forwards
stream events one by one. The five hooks below are all a provider plugin implements; each returns
``None`` at once for a provider type that is not ``example``.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from truckllm import hookimpl
from truckllm.errors import UpstreamFailure
from truckllm.kit.openai_wire import parse_openai_usage, parse_retry_after, upstream_error
from truckllm.kit.sse import SSEEvent, SSEParser, data_frame
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

__all__ = [
    "TRUCKLLM_API",
    "TYPE",
    "ExampleStream",
    "Options",
    "parse_usage",
    "read_error",
    "register_providers",
    "transform_request",
    "transform_response",
    "transform_stream",
]

TRUCKLLM_API = 1
"""The plugin API version this plugin was written for."""

TYPE = "example"
"""The YAML ``type:`` of a ``providers:`` entry served by this plugin."""

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
"""vLLM's default address; Ollama is ``http://127.0.0.1:11434/v1``, LM Studio ``:1234/v1``."""


class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``providers.<name>.options`` for ``type: example`` (decoded strictly by the kernel).

    :ivar default_max_tokens: sent as ``max_tokens`` when the client gives none (local servers
        may otherwise generate until their context is full).
    """

    default_max_tokens: int | None = None


_DEFAULT_OPTIONS = Options()


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer the ``example`` provider type."""
    register(
        ProviderSpec(
            type=TYPE,
            default_base_url=DEFAULT_BASE_URL,
            dialect="openai",
            endpoints=frozenset({"chat"}),
            options=Options,
            needs_keys=False,  # local servers usually take no key; one is sent when configured
        )
    )


@hookimpl
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """The upstream call: the client's body with ``model`` (and the options) applied."""
    if provider.type != TYPE:
        return None
    options = provider.options if isinstance(provider.options, Options) else _DEFAULT_OPTIONS
    changes: dict[str, object] = {"model": model}
    if request.stream:
        changes["stream_options"] = {"include_usage": True}  # so that streamed tokens are counted
    if options.default_max_tokens is not None and not {"max_tokens", "max_completion_tokens"} & set(
        request.fields()
    ):
        changes["max_tokens"] = options.default_max_tokens
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    headers.update(provider.headers)
    return UpstreamRequest(
        url=f"{provider.base_url}/chat/completions",
        headers=headers,
        body=request.encode(**changes),
        stream=request.stream,
    )


class _Error(msgspec.Struct):
    message: str = ""
    code: str | int | None = None
    param: str | None = None


class _ErrorBody(msgspec.Struct):
    error: _Error | str | None = None  # OpenAI and vLLM: an object; Ollama: a string


def read_error(status: int, headers: object, body: bytes) -> UpstreamError:
    """Classify an error answer (the kernel retries, fails over or answers from the result)."""
    try:
        error = msgspec.json.decode(body, type=_ErrorBody).error
    except msgspec.MsgspecError:
        error = None
    if isinstance(error, str):
        error = _Error(message=error)
    message = (error.message if error else "") or f"upstream answered HTTP {status}"
    code = str(error.code) if error is not None and error.code is not None else None
    kind = "context_length" if code == "context_length_exceeded" else None
    return upstream_error(
        status,
        message,
        kind=kind,
        code=code,
        param=error.param if error else None,
        retry_after=parse_retry_after(headers),
    )


def bad_response(message: str) -> UpstreamError:
    """The failure for a 2xx that is not a valid answer (the kernel retries or answers 502)."""
    return UpstreamError(status=502, kind="bad_response", type="server_error", message=message)


class _Choice(msgspec.Struct):
    message: dict[str, object]


class _Answer(msgspec.Struct):
    choices: list[_Choice]


@hookimpl
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> ProviderResult | None:
    """A success must be a chat completion (then passed through as it is); an error is classified.

    The upstream is not trusted: HTML from a proxy, an empty or cut body or JSON of another shape
    in a 2xx is a ``bad_response`` failure, never forwarded to the client.
    """
    if provider.type != TYPE:
        return None
    if response.status >= 400:
        return ProviderResult(error=read_error(response.status, response.headers, response.body))
    try:
        msgspec.json.decode(response.body, type=_Answer)
    except (msgspec.MsgspecError, RecursionError):
        return ProviderResult(error=bad_response("upstream answered 2xx with no chat completion"))
    return ProviderResult(body=response.body, dialect="openai")


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """The ``usage`` of a non-stream answer."""
    if provider.type != TYPE:
        return None
    return parse_openai_usage(body)


class _Chunk(msgspec.Struct):
    error: _Error | str | None = None
    choices: list[msgspec.Raw] | None = None
    usage: object = None  # decoded only when present (the usage chunk)


class ExampleStream:
    """Forwards one upstream stream event by event (one object per attempt).

    Reads the usage chunk (and drops it when the client did not ask for it), turns an error event
    or a stream that ends without ``[DONE]`` into :class:`~truckllm.errors.UpstreamFailure`.
    """

    dialect = "openai"

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self._parser = SSEParser()
        self._done = False
        self._seen = False

    def feed(self, chunk: bytes) -> bytes:
        """Frames to send the client for this chunk of upstream bytes."""
        return self._translate(self._parser.feed(chunk))

    def close(self) -> bytes:
        """The upstream ended: the last frames, or an error if ``[DONE]`` never came."""
        events = self._parser.close()
        if not (self._seen or events):
            raise UpstreamFailure(bad_response("upstream answered a stream request with no event"))
        tail = self._translate(events)
        if not self._done:
            raise UpstreamFailure(
                UpstreamError(status=502, kind="stream", message="upstream stream ended before [DONE]"),
                pending=tail,
            )
        return tail

    def _translate(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        for event in events:
            self._seen = True
            if event.data == b"[DONE]" and not event.raw:
                self._done = True
                out.append(data_frame(b"[DONE]"))
                continue
            try:
                chunk = msgspec.json.decode(event.data, type=_Chunk)
            except (msgspec.MsgspecError, RecursionError):
                # not a JSON object (HTML, text, a cut frame): never forwarded, not even in part
                error = bad_response("upstream stream sent a frame that is not a JSON object")
                raise UpstreamFailure(error, pending=b"".join(out)) from None
            if event.raw:  # not SSE at all (a proxy's JSON error, say): not this dialect's stream
                raise UpstreamFailure(
                    bad_response("upstream stream sent a line that is not SSE"), pending=b"".join(out)
                )
            if chunk.error is not None:
                message = chunk.error if isinstance(chunk.error, str) else chunk.error.message
                error = UpstreamError(status=502, kind="stream", message=message or "upstream stream error")
                raise UpstreamFailure(error, pending=b"".join(out))  # frames before it are still sent
            usage = parse_openai_usage(event.data) if chunk.usage is not None else None
            if usage is not None:
                self.usage = usage
                if not chunk.choices and not self.include_usage:
                    continue  # the usage-only chunk we asked for, not the client
            out.append(data_frame(event.data))
        return b"".join(out)


@hookimpl
def transform_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> ExampleStream | None:
    """A translator for one streamed answer."""
    if provider.type != TYPE:
        return None
    content_type = response.headers.get("content-type", "text/event-stream")
    if not content_type.startswith("text/event-stream"):
        raise UpstreamFailure(bad_response("upstream answered a stream request with no event stream"))
    return ExampleStream(include_usage=request.include_usage)
