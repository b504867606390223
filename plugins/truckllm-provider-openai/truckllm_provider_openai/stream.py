"""The OpenAI stream translator: frames pass through, each checked before it is forwarded."""

from __future__ import annotations

from typing import Any

import msgspec

from truckllm.errors import UpstreamFailure
from truckllm.kit.openai_wire import parse_openai_usage
from truckllm.kit.sse import SSEEvent, SSEParser
from truckllm.types import RateLimits, UpstreamError, Usage

from .errors import bad_response, read_error

__all__ = ["MAX_FRAME_BYTES", "OpenAIStream", "check_content_type"]

MAX_FRAME_BYTES = 16 * 1024 * 1024
"""The most bytes an upstream may send without completing an event (a frame that never ends
would otherwise be buffered without bound)."""

_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)


class _Frame(msgspec.Struct):
    """What a chunk's JSON object says that matters here (its other members are skipped)."""

    error: Any = None
    usage: Any = None


class _Choices(msgspec.Struct):
    choices: list[msgspec.Raw] | None = None


_FRAME_DECODER = msgspec.json.Decoder(_Frame)
_CHOICES_DECODER = msgspec.json.Decoder(_Choices)


def check_content_type(headers: Any) -> None:
    """Raise ``bad_response`` when a stream's answer says it is not ``text/event-stream``."""
    content_type = headers.get("content-type")
    if content_type is not None and not content_type.lower().lstrip().startswith("text/event-stream"):
        kind = content_type.split(";", 1)[0].strip()[:64]
        raise UpstreamFailure(bad_response(f"upstream answered a stream request with content-type {kind!r}"))


def _decode(data: bytes) -> _Frame | None:
    """The frame's error and usage; ``None`` when it is not a JSON object. Invalid UTF-8 is
    replaced so that an error object is still seen (and the frame still refused otherwise)."""
    try:
        frame = _FRAME_DECODER.decode(data)
        if not data.isascii():
            data.decode()  # the members skipped above were not checked to be UTF-8
        return frame
    except UnicodeDecodeError:
        try:
            frame = _FRAME_DECODER.decode(data.decode("utf-8", "replace").encode())
        except _UNREADABLE:
            return None
        return frame if frame.error is not None else None
    except _UNREADABLE:
        return None


class OpenAIStream:
    """Forwards an OpenAI stream frame by frame; reads usage; drops the usage chunk the client
    did not ask for; turns a mid-stream ``{"error":...}`` or a missing ``[DONE]`` into an error.

    Every ``data:`` frame is checked to be a JSON object (or ``[DONE]``) before it is forwarded;
    anything else (a line that is not SSE, text, an array...) is a ``bad_response`` failure raised
    before any byte of it is sent, the valid frames before it passed on as ``pending``.
    """

    dialect = "openai"
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, include_usage: bool, limits: RateLimits | None) -> None:
        self.include_usage = include_usage
        self.limits = limits
        self.usage: Usage | None = None
        self.done = False
        self.seen = False
        """Whether an event has arrived (a stream with none is not a stream)."""
        self._parser = SSEParser()
        self._unframed = 0

    def feed(self, chunk: bytes) -> bytes:
        """Frames to forward for this chunk of upstream bytes."""
        events = self._parser.feed(chunk)
        if events:
            self.seen = True
            self._unframed = len(chunk)  # at most this much of it is still buffered
        else:
            self._unframed += len(chunk)
            if self._unframed > self.max_frame_bytes:
                raise UpstreamFailure(
                    bad_response(f"upstream sent {self._unframed} bytes without ending an event")
                )
        return self._handle(events)

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
            data = event.data
            if event.raw:  # not SSE: an error object from a proxy, or garbage
                frame = _decode(data)
                why = "upstream stream sent a line that is not an SSE field"
                if frame is not None and frame.error is not None:
                    why = (
                        "upstream answered a stream request with an error: "
                        + self._error(frame.error).message
                    )
                raise UpstreamFailure(bad_response(why))
            if data == b"[DONE]":
                self.done = True
                out.append(b"data: [DONE]\n\n")
                continue
            frame = _decode(data)
            if frame is None:
                raise UpstreamFailure(
                    bad_response("upstream stream sent a data frame that is not a JSON object")
                )
            if frame.error is not None:
                self._raise(frame.error)
            if frame.usage is not None:
                usage = parse_openai_usage(data)
                if usage is not None:
                    self.usage = usage
                    if not self.include_usage and not _choices(data):
                        continue
            out.append(b"data: " + data + b"\n\n")

    @staticmethod
    def _error(payload: Any) -> UpstreamError:
        return read_error(500, {}, msgspec.json.encode({"error": payload}))

    def _raise(self, payload: Any) -> None:
        error = self._error(payload)
        raise UpstreamFailure(
            UpstreamError(
                status=502,
                kind="stream",
                message=error.message,
                type=error.type,
                code=error.code,
                param=error.param,
            )
        )

    def close(self) -> bytes:
        """The upstream ended: a stream without ``[DONE]`` was cut short (one without any event
        was not a stream at all)."""
        events = self._parser.close()
        if not (self.seen or events):
            raise UpstreamFailure(bad_response("upstream answered a stream request with no event"))
        tail = self._handle(events)
        if not self.done:
            raise UpstreamFailure(
                UpstreamError(status=502, kind="stream", message="upstream stream ended before [DONE]")
            )
        return tail


def _choices(data: bytes) -> bool:
    """Whether a (usage) chunk has choices: the client needs it even when it did not ask for usage."""
    try:
        return bool(_CHOICES_DECODER.decode(data).choices)
    except (*_UNREADABLE, UnicodeDecodeError):
        return False
