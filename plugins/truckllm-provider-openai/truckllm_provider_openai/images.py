"""Image generation (``POST /v1/images/generations``): the answer's check, its usage, its stream.

The request passes through with ``model`` rewritten (see :mod:`.media`). A whole answer must be
an object with a ``data`` list of objects (each with ``b64_json`` or ``url``); its usage is the
answer's ``usage`` tokens when it has them (gpt-image-1: ``input_tokens``, ``output_tokens``),
and always ``images`` = the number of images. A stream (``stream: true``, gpt-image-1) is relayed
event by event: ``image_generation.partial_image`` events, then ``image_generation.completed``
with the usage; a stream that ends before it was cut short.
"""

from __future__ import annotations

from typing import Any

import msgspec

from truckllm.errors import UpstreamFailure
from truckllm.kit.sse import SSEEvent, SSEParser
from truckllm.types import RateLimits, UpstreamError, Usage

from .errors import bad_response, read_error

__all__ = ["COMPLETED", "ImageStream", "check_images", "image_usage"]

COMPLETED = "image_generation.completed"
"""The event that ends an image stream (it carries the usage)."""
_MAX_FRAME_BYTES = 64 * 1024 * 1024  # one event holds a whole base64 image
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


class _Image(msgspec.Struct):
    b64_json: str | None = None
    url: str | None = None


class _Details(msgspec.Struct):
    text_tokens: Any = None
    image_tokens: Any = None


class _Usage(msgspec.Struct):
    input_tokens: Any = None
    output_tokens: Any = None
    total_tokens: Any = None
    input_tokens_details: _Details | None = None


class _Answer(msgspec.Struct):
    data: list[_Image]
    usage: _Usage | None = None


class _Event(msgspec.Struct):
    type: str | None = None
    usage: _Usage | None = None
    error: Any = None


_ANSWER = msgspec.json.Decoder(_Answer)
_EVENT = msgspec.json.Decoder(_Event)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(raw: _Usage | None, images: int) -> Usage:
    if raw is None:
        return Usage(images=images, requests=1)
    prompt, completion = _count(raw.input_tokens), _count(raw.output_tokens)
    total = max(_count(raw.total_tokens), prompt + completion)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=total, images=images, requests=1
    )


def check_images(body: bytes) -> UpstreamError | None:
    """``None`` when ``body`` is an images answer (a ``data`` list of images), else the
    ``bad_response`` failure."""
    try:
        answer = _ANSWER.decode(body)
        if not body.isascii():
            body.decode()
    except _UNREADABLE as exc:
        return bad_response(f"upstream images answer is not valid: {str(exc)[:200]}")
    if any(image.b64_json is None and image.url is None for image in answer.data):
        return bad_response("upstream images answer has an image with neither b64_json nor url")
    return None


def image_usage(body: bytes) -> Usage | None:
    """The usage of an images answer: its tokens when it reports them, and its images."""
    try:
        answer = _ANSWER.decode(body)
    except _UNREADABLE:
        return None
    return _usage(answer.usage, len(answer.data))


class ImageStream:
    """Relays an image stream's events as they come (each checked to be a JSON object), reads
    the usage of ``image_generation.completed``, turns an ``error`` event or a stream without the
    completed event into a failure."""

    dialect = "openai"

    def __init__(self, limits: RateLimits | None) -> None:
        self.limits = limits
        self.usage: Usage | None = None
        self.completed = False
        self._parser = SSEParser()
        self._unframed = 0

    def feed(self, chunk: bytes) -> bytes:
        """The events this chunk completed, as they came."""
        events = self._parser.feed(chunk)
        if events:
            self._unframed = len(chunk)
        else:
            self._unframed += len(chunk)
            if self._unframed > _MAX_FRAME_BYTES:
                raise UpstreamFailure(
                    bad_response(f"upstream sent {self._unframed} bytes without ending an event")
                )
        return self._relay(events)

    def _relay(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        try:
            for event in events:
                out.append(self._one(event))
        except UpstreamFailure as failure:
            failure.pending = b"".join(out)
            raise
        return b"".join(out)

    def _one(self, event: SSEEvent) -> bytes:
        try:
            if event.raw:
                raise msgspec.DecodeError("not SSE")
            parsed = _EVENT.decode(event.data)
        except _UNREADABLE:
            raise UpstreamFailure(
                bad_response("upstream image stream sent an event that is not JSON")
            ) from None
        if parsed.error is not None or parsed.type == "error":
            error = read_error(500, {}, msgspec.json.encode({"error": parsed.error or "stream error"}))
            raise UpstreamFailure(
                UpstreamError(
                    status=502, kind="stream", message=error.message, type=error.type, code=error.code
                )
            )
        if parsed.type == COMPLETED:
            self.completed = True
            self.usage = _usage(parsed.usage, 1)
        name = f"event: {event.event}\n".encode() if event.event else b""
        return name + b"data: " + event.data + b"\n\n"

    def close(self) -> bytes:
        """The upstream ended: without ``image_generation.completed`` it was cut short."""
        tail = self._relay(self._parser.close())
        if not self.completed:
            raise UpstreamFailure(
                UpstreamError(
                    status=502, kind="stream", message=f"upstream image stream ended before {COMPLETED}"
                )
            )
        return tail
