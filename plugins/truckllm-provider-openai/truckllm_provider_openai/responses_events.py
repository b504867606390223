"""Reading a Responses API stream (``POST /responses`` with ``stream: true``): what every reader
of one shares, whether it relays the events or translates them.

Each event is checked before anything of it is sent: a ``data:`` frame must be a UTF-8 JSON
object with a string ``type``; text outside SSE framing, a frame that is not JSON, an object
without a ``type`` are a ``bad_response`` failure (the frames of the events before it go in the
failure's ``pending``). An ``error`` event or ``response.failed`` is a failure classified from
its error object; ``response.completed`` and ``response.incomplete`` end the stream and carry
its usage; a stream that ends before one of them was cut short (``stream``), one without any
event was no stream at all (``bad_response``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Raw, Struct

from truckllm.errors import UpstreamFailure
from truckllm.kit.sse import SSEEvent, SSEParser
from truckllm.types import RateLimits, UpstreamError, Usage

from .errors import bad_response, read_error, responses_failure
from .usage import parse_responses_usage

__all__ = ["MAX_FRAME_BYTES", "TERMINAL_EVENTS", "ResponseSummary", "ResponsesEvent", "ResponsesReader"]

MAX_FRAME_BYTES = 16 * 1024 * 1024
"""The most bytes an upstream may send without completing an event."""

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})
"""The events that end a successful stream (``response.failed`` and ``error`` end a failed one)."""


class ResponseSummary(Struct):
    """The members of an event's ``response`` object this plugin reads (the rest is skipped;
    raw members are empty when absent)."""

    id: Any = None
    model: Any = None
    created_at: Any = None
    status: Any = None
    error: Any = None
    incomplete_details: Any = None
    usage: Raw = Raw()


class ResponsesEvent(Struct):
    """One stream event: its ``type`` and the members any reader looks at (``item`` is empty
    when absent)."""

    type: str
    response: ResponseSummary | None = None
    item: Raw = Raw()
    item_id: Any = None
    output_index: Any = None
    content_index: Any = None
    delta: Any = None
    text: Any = None
    refusal: Any = None
    arguments: Any = None
    code: Any = None
    message: Any = None
    param: Any = None
    error: Any = None


class _MaybeError(Struct):
    error: Any = None


_EVENT = msgspec.json.Decoder(ResponsesEvent)
_MAYBE_ERROR = msgspec.json.Decoder(_MaybeError)
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


def _decode(data: bytes) -> ResponsesEvent:
    """The event in one ``data:`` frame; raises ``bad_response`` for anything else."""
    try:
        event = _EVENT.decode(data)
        if not data.isascii():
            data.decode()  # the members skipped above were not checked to be UTF-8
    except _UNREADABLE:
        raise UpstreamFailure(
            bad_response("upstream stream sent a data frame that is not a Responses API event")
        ) from None
    if not event.type or "\n" in event.type or "\r" in event.type:
        # the type is written as the frame's ``event:`` name: a line break would forge a field
        raise UpstreamFailure(bad_response("upstream stream sent an event whose type is not a name"))
    return event


def _raw_line_failure(text: bytes) -> UpstreamFailure:
    """Text that is not SSE: a proxy's JSON error object, or garbage."""
    try:
        error = _MAYBE_ERROR.decode(text.strip()).error
    except _UNREADABLE:
        error = None
    if error is not None:
        message = read_error(502, {}, msgspec.json.encode({"error": error})).message
        return UpstreamFailure(bad_response("upstream answered a stream request with an error: " + message))
    return UpstreamFailure(bad_response("upstream stream sent a line that is not an SSE field"))


class ResponsesReader:
    """The shared part of a Responses stream reader: SSE parsing, checks, failures, usage.

    Subclasses write :meth:`on_event`, called for every checked event that is neither an
    ``error`` nor ``response.failed`` (``usage`` is already set for a terminal one; ``done`` is
    set right after it). No event is read after the terminal one.
    """

    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, limits: RateLimits | None) -> None:
        self.limits = limits
        self.usage: Usage | None = None
        self.done = False
        self.seen = False
        """Whether an event has arrived (a stream with none is not a stream)."""
        self._parser = SSEParser()
        self._unframed = 0

    def feed(self, chunk: bytes) -> bytes:
        """Frames to send for this chunk of upstream bytes (possibly none)."""
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

    def close(self) -> bytes:
        """The upstream ended: the last frames, or a failure when it ended before its last event."""
        events = self._parser.close()
        if not (self.seen or events):
            raise UpstreamFailure(bad_response("upstream answered a stream request with no event"))
        tail = self._handle(events)
        if not self.done:
            raise UpstreamFailure(
                UpstreamError(
                    status=502,
                    kind="stream",
                    message="upstream stream ended before response.completed",
                ),
                pending=tail,
            )
        return tail

    def _handle(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        try:
            self._events(events, out)
        except UpstreamFailure as failure:
            failure.pending = b"".join(out)  # the frames before the failure still reach the client
            raise
        return b"".join(out)

    def _events(self, events: list[SSEEvent], out: list[bytes]) -> None:
        for event in events:
            if self.done:
                break
            if event.raw:
                raise _raw_line_failure(event.data)
            if event.data.strip() == b"[DONE]":
                continue  # not a Responses API event (some compatible servers send it): dropped
            data = _decode(event.data)
            kind = data.type
            if kind == "error":
                raise UpstreamFailure(
                    responses_failure(_error_payload(data), "stream", "upstream stream failed")
                )
            if kind == "response.failed":
                error = data.response.error if data.response is not None else None
                raise UpstreamFailure(responses_failure(error, "stream", "upstream response failed"))
            if kind in TERMINAL_EVENTS and data.response is not None:
                self.usage = parse_responses_usage(data.response.usage) or self.usage
            self.on_event(event, data, out)
            if kind in TERMINAL_EVENTS:
                self.done = True

    def on_event(self, event: SSEEvent, data: ResponsesEvent, out: list[bytes]) -> None:
        """Handle one checked event, appending the frames to send to ``out``."""
        raise NotImplementedError


def _error_payload(data: ResponsesEvent) -> Any:
    """An ``error`` event's error object: its own members, or the object nested under ``error``."""
    if isinstance(data.error, dict):
        return data.error
    return {"code": data.code, "message": data.message, "param": data.param}
