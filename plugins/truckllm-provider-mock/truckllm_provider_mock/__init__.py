"""TruckLLM provider plugin ``mock``: deterministic in-process answers in OpenAI's wire format."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import re
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from truckllm import hookimpl
from truckllm.errors import UpstreamFailure
from truckllm.kit.openai_schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    UserMessage,
    text_of,
)
from truckllm.kit.openai_wire import (
    DONE_FRAME,
    ChunkBuilder,
    chat_completion,
    completion_id,
    parse_openai_usage,
    parse_retry_after,
    upstream_error,
    usage_object,
)
from truckllm.kit.options import Duration
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

TRUCKLLM_API = 1

TYPE = "mock"


class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``providers.<name>.options`` for ``type: mock``."""

    latency: Duration = Duration(0)
    chunks: int = 4
    chunk_interval: Duration = Duration(0)
    error_rate: float = 0.0
    error_status: int = 503
    max_reply_words: int = 64
    dimensions: int = 8
    client_faults: bool = True


_DEFAULTS = Options()


@hookimpl
def register_providers(register: Callable[[ProviderSpec], None]) -> None:
    """Offer the ``mock`` provider type."""
    register(
        ProviderSpec(
            type=TYPE,
            default_base_url="mock://local",
            dialect="openai",
            endpoints=frozenset({"chat", "completions", "embeddings", "count_tokens"}),
            options=Options,
            needs_keys=False,
        )
    )


MAX_RETRY_AFTER = 3600.0
"""The longest ``retry_after`` a fault may ask for (seconds)."""
MAX_LATENCY = 600.0
"""The longest ``latency`` a fault may ask for (seconds)."""
GARBAGE = {
    "html": b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
    "empty": b"",
    "array": b"[]",
    "object": b'{"foo": 1}',
    "truncated": b'{"id": "chatcmpl-mock", "object": "chat.completion", "choi',
    "bytes": bytes(range(256)),
    "deep": b"[" * 100_000 + b"]" * 100_000,
}
"""What ``garbage=<name>`` answers with: a 200 that is not an OpenAI answer."""


class Fault(msgspec.Struct, kw_only=True):
    """A fault asked for by the ``x-mock-fault`` header."""

    status: int | None = None
    retry_after: float | None = None
    latency: float | None = None
    cut_after: int | None = None
    garbage: str | None = None


_DECIMAL = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?")
_COUNT = re.compile(r"[0-9]{1,6}")


def _seconds(value: str, high: float) -> float | None:
    """A plain decimal number of seconds in ``[0, high]`` (no sign, exponent, ``_``, ``nan``...)."""
    if not _DECIMAL.fullmatch(value):
        return None
    number = float(value)
    return number if number <= high else None


def _count(value: str) -> int | None:
    """A plain whole number below a million."""
    return int(value) if _COUNT.fullmatch(value) else None


def parse_fault(text: str | None) -> Fault:
    """Read ``key=value,key=value`` from the ``x-mock-fault`` header.

    The header comes from any client, so every value is checked and a value out of range is
    ignored (not clamped): ``status`` an HTTP error (400-599), ``retry_after`` 0-3600 s,
    ``latency`` 0-600 s (plain decimals), ``cut_after`` a count below a million, ``garbage`` a
    name of :data:`GARBAGE`.
    Unknown keys are ignored.
    """
    fault = Fault()
    if not text:
        return fault
    for part in text.split(",")[:16]:
        name, _, value = part.strip().partition("=")
        value = value.strip()
        if name == "status":
            status = _count(value)
            fault.status = status if status is not None and 400 <= status <= 599 else None
        elif name == "retry_after":
            fault.retry_after = _seconds(value, MAX_RETRY_AFTER)
        elif name == "latency":
            fault.latency = _seconds(value, MAX_LATENCY)
        elif name == "cut_after":
            fault.cut_after = _count(value)
        elif name == "garbage":
            fault.garbage = value if value in GARBAGE else None
    return fault


def _chance() -> float:
    """A uniform draw in [0, 1) from the OS (leaves the global ``random`` state alone)."""
    return int.from_bytes(os.urandom(4), "big") / 2**32


def _words(text: str) -> int:
    return len(text.split())


def _prompt_text(typed: Any) -> tuple[str, str]:
    """(all input text, the text to echo)."""
    if isinstance(typed, ChatCompletionRequest):
        texts = [text_of(getattr(m, "content", None)) for m in typed.messages]
        last_user = next(
            (text_of(m.content) for m in reversed(typed.messages) if isinstance(m, UserMessage)),
            "",
        )
        return " ".join(texts), last_user
    if isinstance(typed, CompletionRequest):
        prompt = typed.prompt
        text = prompt if isinstance(prompt, str) else " ".join(p for p in prompt if isinstance(p, str))
        return text, text
    return "", ""


def _reply(typed: Any, options: Options) -> tuple[str, Usage]:
    full, echo = _prompt_text(typed)
    words = echo.split()[: options.max_reply_words]
    reply = "mock: " + " ".join(words)
    max_tokens = getattr(typed, "max_completion_tokens", None) or getattr(typed, "max_tokens", None)
    finish_words = reply.split()
    if isinstance(max_tokens, int) and 0 < max_tokens < len(finish_words):
        reply = " ".join(finish_words[:max_tokens])
    prompt = _words(full) + 1
    completion = _words(reply)
    return reply, Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _embedding(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    rng = random.Random(digest)
    vec = [rng.uniform(-1, 1) for _ in range(dims)]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vec]


def _split(text: str, parts: int) -> list[str]:
    parts = max(1, parts)
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class _Local:
    """The in-process upstream of one attempt."""

    def __init__(self, request: ChatRequest, model: str, options: Options, fault: Fault) -> None:
        self.request = request
        self.model = model
        self.options = options
        self.fault = fault

    async def __call__(self) -> UpstreamResponse:
        latency = self.fault.latency if self.fault.latency is not None else self.options.latency
        if latency:
            await asyncio.sleep(latency)
        status = self.fault.status
        if status is None and self.options.error_rate and _chance() < self.options.error_rate:
            status = self.options.error_status
        if status is not None:
            headers = {"content-type": "application/json"}
            if self.fault.retry_after is not None:
                headers["retry-after"] = str(self.fault.retry_after)
            body = msgspec.json.encode(
                {
                    "error": {
                        "message": f"mock error {status}",
                        "type": "mock_error",
                        "param": None,
                        "code": None,
                    }
                }
            )
            return UpstreamResponse(status=status, headers=headers, body=body)
        if self.fault.garbage is not None:
            garbage = GARBAGE[self.fault.garbage]
            if self.request.stream:
                return UpstreamResponse(
                    status=200,
                    headers={"content-type": "text/event-stream"},
                    chunks=_once(b"data: " + garbage + b"\n\n"),
                )
            return UpstreamResponse(status=200, headers={"content-type": "application/json"}, body=garbage)
        typed = self.request.typed
        if self.request.endpoint == "count_tokens":
            return UpstreamResponse(
                status=200, headers={"content-type": "application/json"}, body=self._token_count(typed)
            )
        if isinstance(typed, EmbeddingRequest):
            return UpstreamResponse(
                status=200, headers={"content-type": "application/json"}, body=self._embeddings(typed)
            )
        reply, usage = _reply(typed, self.options)
        if self.request.stream:
            return UpstreamResponse(
                status=200, headers={"content-type": "text/event-stream"}, chunks=self._stream(reply, usage)
            )
        return UpstreamResponse(
            status=200, headers={"content-type": "application/json"}, body=self._whole(reply, usage)
        )

    def _whole(self, reply: str, usage: Usage) -> bytes:
        if self.request.endpoint == "completions":
            return msgspec.json.encode(
                {
                    "id": completion_id("cmpl-"),
                    "object": "text_completion",
                    "created": 0,
                    "model": self.model,
                    "choices": [{"text": reply, "index": 0, "logprobs": None, "finish_reason": "stop"}],
                    "usage": usage_object(usage),
                }
            )
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": reply, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
        return chat_completion(model=self.model, choices=[choice], usage=usage)

    async def _stream(self, reply: str, usage: Usage) -> AsyncIterator[bytes]:
        pieces = _split(reply, self.options.chunks)
        interval = self.options.chunk_interval
        if self.request.endpoint == "completions":
            rid = completion_id("cmpl-")
            for n, piece in enumerate(pieces):
                if n and interval:
                    await asyncio.sleep(interval)
                if self.fault.cut_after is not None and n >= self.fault.cut_after:
                    return
                finish = "stop" if n == len(pieces) - 1 else None
                yield (
                    b"data: "
                    + msgspec.json.encode(
                        {
                            "id": rid,
                            "object": "text_completion",
                            "created": 0,
                            "model": self.model,
                            "choices": [
                                {"text": piece, "index": 0, "logprobs": None, "finish_reason": finish}
                            ],
                        }
                    )
                    + b"\n\n"
                )
            if self.request.include_usage:
                yield (
                    b"data: "
                    + msgspec.json.encode(
                        {
                            "id": rid,
                            "object": "text_completion",
                            "created": 0,
                            "model": self.model,
                            "choices": [],
                            "usage": usage_object(usage),
                        }
                    )
                    + b"\n\n"
                )
            yield b"data: [DONE]\n\n"
            return
        chunks = ChunkBuilder(self.model, self.request.include_usage)
        yield chunks.delta({"role": "assistant", "content": ""})
        for n, piece in enumerate(pieces):
            if interval:
                await asyncio.sleep(interval)
            if self.fault.cut_after is not None and n >= self.fault.cut_after:
                return
            yield chunks.delta({"content": piece})
        yield chunks.delta({}, finish_reason="stop")
        yield chunks.usage(usage)
        yield chunks.done()

    def _token_count(self, typed: Any) -> bytes:
        """The prompt's tokens as the mock counts them for a chat (its words, plus one): the same
        figure its chat answer reports as ``prompt_tokens``."""
        tokens = _words(_prompt_text(typed)[0]) + 1
        return msgspec.json.encode({"object": "token_count", "model": self.model, "prompt_tokens": tokens})

    def _embeddings(self, typed: EmbeddingRequest) -> bytes:
        inputs: list[Any] = (
            [typed.input]
            if isinstance(typed.input, str) or (typed.input and isinstance(typed.input[0], int))
            else list(typed.input)
        )
        dims = typed.dimensions if isinstance(typed.dimensions, int) else self.options.dimensions
        data = []
        tokens = 0
        for i, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            tokens += len(item) if isinstance(item, list) else _words(text)
            vector = _embedding(text, dims)
            value: Any = vector
            if typed.encoding_format == "base64":
                value = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        return msgspec.json.encode(
            {
                "object": "list",
                "model": self.model,
                "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


async def _once(chunk: bytes) -> AsyncIterator[bytes]:
    yield chunk


@hookimpl
def transform_request(
    provider: Provider, model: str, request: ChatRequest, api_key: str
) -> UpstreamRequest | None:
    """Answer in-process: an :class:`UpstreamRequest` whose ``local`` makes the answer."""
    if provider.type != TYPE:
        return None
    options = provider.options if isinstance(provider.options, Options) else _DEFAULTS
    fault = parse_fault(request.headers.get("x-mock-fault")) if options.client_faults else Fault()
    return UpstreamRequest(
        url=f"mock://{provider.name}/{request.endpoint}",
        stream=request.stream,
        local=_Local(request, model, options, fault),
    )


class _Answer(msgspec.Struct):
    """The list every OpenAI answer has: ``choices`` (chat, completions) or ``data`` (embeddings)."""

    choices: list[dict[str, Any]] | None = None
    data: list[dict[str, Any]] | None = None


_ANSWER = msgspec.json.Decoder(_Answer)


class _Count(msgspec.Struct):
    """The mock's token count: ``{"object": "token_count", "prompt_tokens": N}``."""

    prompt_tokens: int


_COUNT_ANSWER = msgspec.json.Decoder(_Count)


def _counted(body: bytes) -> int | None:
    """The ``prompt_tokens`` of a token-count answer, or ``None`` when ``body`` is not one."""
    try:
        return _COUNT_ANSWER.decode(body).prompt_tokens
    except _UNREADABLE:
        return None


_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


def _bad_response(message: str) -> UpstreamError:
    return UpstreamError(status=502, kind="bad_response", type="server_error", message=message)


def _is_answer(endpoint: str, body: bytes) -> bool:
    """Whether ``body`` is a JSON object with the endpoint's list (a token count: its count)."""
    if endpoint == "count_tokens":
        return _counted(body) is not None
    try:
        answer = _ANSWER.decode(body)
    except _UNREADABLE:
        return False
    return (answer.data if endpoint == "embeddings" else answer.choices) is not None


@hookimpl
def transform_response(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> ProviderResult | None:
    """The mock's answers are already in OpenAI's form; one that is not (``garbage=``) fails."""
    if provider.type != TYPE:
        return None
    if response.status >= 400:
        return ProviderResult(
            error=upstream_error(
                response.status,
                f"mock error {response.status}",
                retry_after=parse_retry_after(response.headers),
            )
        )
    if not _is_answer(request.endpoint, response.body):
        return ProviderResult(
            error=_bad_response("mock answered 200 with a body that is not an OpenAI answer")
        )
    return ProviderResult(body=response.body)


@hookimpl
def parse_usage(provider: Provider, request: ChatRequest, body: bytes) -> Usage | None:
    """Usage from the mock's own answer (a token count is free: nothing was generated)."""
    if provider.type != TYPE:
        return None
    if request.endpoint == "count_tokens":
        return Usage()
    return parse_openai_usage(body)


_FRAME = msgspec.json.Decoder(dict[str, Any])


class MockStream:
    """The mock's frames pass through as they are; usage is known in advance."""

    dialect = "openai"

    def __init__(self, usage: Usage) -> None:
        self.usage: Usage | None = usage
        self._done = False

    def feed(self, chunk: bytes) -> bytes:
        """Forward the frame (the mock sends one whole frame per chunk), once it is checked to be
        ``data: <JSON object>`` or ``data: [DONE]``."""
        if chunk == DONE_FRAME:
            self._done = True
            return chunk
        if not (chunk.startswith(b"data: ") and chunk.endswith(b"\n\n")):
            raise UpstreamFailure(_bad_response("mock stream sent something that is not an SSE frame"))
        try:
            _FRAME.decode(chunk[6:-2])
        except _UNREADABLE:
            raise UpstreamFailure(
                _bad_response("mock stream sent a frame that is not a JSON object")
            ) from None
        return chunk

    def close(self) -> bytes:
        """A mock stream cut by ``cut_after`` ends in an error."""
        if not self._done:
            raise UpstreamFailure(UpstreamError(status=502, kind="stream", message="mock stream cut short"))
        return b""


@hookimpl
def transform_stream(
    provider: Provider, request: ChatRequest, response: UpstreamResponse
) -> MockStream | None:
    """A pass-through translator carrying the mock's usage."""
    if provider.type != TYPE:
        return None
    options = provider.options if isinstance(provider.options, Options) else _DEFAULTS
    _, usage = _reply(request.typed, options)
    return MockStream(usage)
