"""Anthropic-dialect requests to Claude on Bedrock, passed through ``InvokeModel``.

An Anthropic client's body (the gateway's Anthropic front door: Claude Code, the ``anthropic``
SDK) goes to ``POST /model/{id}/invoke`` (``/invoke-with-response-stream`` for a stream) as it
came, with what Bedrock wants instead of Anthropic's API: no ``model`` or ``stream`` member,
``anthropic_version: bedrock-2023-05-31``, and the ``anthropic-beta`` header's features as
``anthropic_beta``. Thinking blocks and their signatures, cache control, documents and server
tools therefore reach Claude untouched. The answer is Anthropic's message, passed back; a stream's
``chunk`` events carry Anthropic's stream events (base64 JSON), re-framed as Anthropic's SSE.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from truckllm.errors import UpstreamFailure
from truckllm.kit.openai_wire import upstream_error
from truckllm.types import ChatRequest, Usage

from .errors import classify_exception
from .eventstream import EventMessage
from .reader import EventStreamReader, bad_stream

__all__ = ["BEDROCK_ANTHROPIC_VERSION", "InvokeStream", "invoke_body", "is_message", "message_usage"]

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
"""The ``anthropic_version`` Bedrock's Claude models take."""
_DROPPED = ("model", "stream")
_DECODE = msgspec.json.Decoder()


def invoke_body(request: ChatRequest) -> bytes:
    """The InvokeModel body for an Anthropic client's request."""
    fields: dict[str, Any] = {k: v for k, v in request.fields().items() if k not in _DROPPED}
    fields.setdefault("anthropic_version", BEDROCK_ANTHROPIC_VERSION)
    beta = request.headers.get("anthropic-beta")
    if beta and "anthropic_beta" not in fields:
        features = [f.strip() for f in beta.split(",") if f.strip()]
        if features:
            fields["anthropic_beta"] = features
    return msgspec.json.encode(fields)


def _decode(body: bytes) -> Any:
    try:
        return _DECODE.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None


def is_message(body: bytes) -> bool:
    """The body is an Anthropic message (``type: message`` with a ``content`` list)."""
    message = _decode(body)
    return (
        isinstance(message, dict)
        and message.get("type") == "message"
        and isinstance(message.get("content"), list)
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(raw: Any, previous: Usage | None = None) -> Usage:
    """Anthropic usage in OpenAI's sense (the prompt counts cached tokens); a later event's
    figures replace earlier ones, field by field."""
    raw = raw if isinstance(raw, dict) else {}
    before = previous or Usage()
    fresh = (
        _count(raw["input_tokens"])
        if "input_tokens" in raw
        else before.prompt_tokens - before.cached_tokens - before.cache_write_tokens
    )
    read = (
        _count(raw["cache_read_input_tokens"]) if "cache_read_input_tokens" in raw else before.cached_tokens
    )
    written = (
        _count(raw["cache_creation_input_tokens"])
        if "cache_creation_input_tokens" in raw
        else before.cache_write_tokens
    )
    output = _count(raw["output_tokens"]) if "output_tokens" in raw else before.completion_tokens
    prompt = max(0, fresh) + read + written
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        total_tokens=prompt + output,
        cached_tokens=read,
        cache_write_tokens=written,
    )


def message_usage(body: bytes) -> Usage | None:
    """The usage of an Anthropic message, ``None`` when the body is not one."""
    message = _decode(body)
    if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
        return None
    return _usage(message["usage"])


class InvokeStream(EventStreamReader):
    """Re-frames an InvokeModelWithResponseStream answer as Anthropic's SSE, for an Anthropic client.

    Reads the usage, fails on an exception message, an Anthropic ``error`` event, bytes that are
    not an event stream and a stream that ends before ``message_stop``.
    """

    dialect = "anthropic"
    last_event = "message_stop"

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.limits = None
        super().__init__()

    def _message(self, message: EventMessage, out: list[bytes]) -> None:
        headers = message.headers
        kind = headers.get(":message-type", "event")
        if kind == "exception":
            raise UpstreamFailure(classify_exception(headers.get(":exception-type", ""), message.payload))
        if kind != "event" or headers.get(":event-type") != "chunk":
            if kind == "error":
                raise UpstreamFailure(
                    upstream_error(502, headers.get(":error-message", "error"), kind="server")
                )
            return
        self._seen = True
        wrapper = _decode(message.payload)
        try:
            data = (
                base64.b64decode(wrapper.get("bytes", ""), validate=True)
                if isinstance(wrapper, dict)
                else b""
            )
        except (binascii.Error, ValueError, TypeError):  # no "bytes", or not base64 text
            data = b""
        event = _decode(data) if data else None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise bad_stream("Bedrock sent a chunk that is not an Anthropic stream event")
        name = event["type"]
        if name == "error":
            error: Any = event.get("error")
            text = error.get("message") if isinstance(error, dict) else None
            raise UpstreamFailure(upstream_error(502, str(text or "error event"), kind="server"))
        if name == "message_start":
            start = event.get("message")
            self.usage = _usage(start.get("usage") if isinstance(start, dict) else None)
        elif name == "message_delta":
            self.usage = _usage(event.get("usage"), self.usage)
        event.pop("amazon-bedrock-invocationMetrics", None)
        out.append(b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(event) + b"\n\n")
        if name == "message_stop":
            self.usage = self.usage or Usage()
            self.done = True
