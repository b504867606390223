"""Anthropic SSE stream → OpenAI chunks (PROVIDERS.md §4.5 "From Anthropic"), and pass-through.

One translator object per attempt. ``feed`` takes upstream bytes split anywhere and returns the
client frames they complete; ``close`` is called at the upstream's end. Both raise
:class:`~truckllm.errors.UpstreamFailure` for an ``event: error`` (its text only ever travels in
that failure's :class:`~truckllm.types.UpstreamError`, which the kernel scrubs before it writes
the client's error event), or a stream that ended without ``message_stop`` (never a
clean-looking truncated answer); and ``bad_response`` (502, counted against the key) for anything
that is not an Anthropic event: text outside SSE framing, data that is not JSON, an event without
a ``type`` or whose ``event:`` name says another, an event of the wrong shape. No byte of such an
event reaches the client; the frames of the events before it go in the failure's ``pending``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from msgspec import Raw, Struct

from truckllm.errors import UpstreamFailure
from truckllm.kit.openai_wire import ChunkBuilder, completion_id, upstream_error, usage_object
from truckllm.kit.sse import SSEEvent, SSEParser, event_frame
from truckllm.types import RateLimits, Usage

from .errors import error_from_body, stream_error
from .request import JSON_TOOL
from .response import (
    AnthropicUsage,
    compact_json,
    convert_usage,
    finish_reason,
    response_id,
    tool_call_id,
)

__all__ = ["AnthropicPassthrough", "AnthropicStream", "TextCompletionChunks"]


class _Delta(Struct):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None


class _StartBlock(Struct):
    type: str = ""
    id: str | None = None
    name: str | None = None
    input: Raw = Raw()
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class _StartMessage(Struct):
    id: str | None = None
    model: str | None = None
    usage: AnthropicUsage | None = None


class _Event(Struct):
    type: str | None = None  # required by _decode_event (an event without one is garbage)
    message: _StartMessage | None = None
    index: int | None = None
    content_block: _StartBlock | None = None
    delta: _Delta | None = None
    usage: AnthropicUsage | None = None


_EVENT_DECODER = msgspec.json.Decoder(_Event)
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens_details",
)


def _failure(message: str) -> UpstreamFailure:
    """The stream was cut short (it may succeed on another attempt)."""
    return UpstreamFailure(upstream_error(502, message, kind="stream"))


def _bad(message: str) -> UpstreamFailure:
    """The stream is not an Anthropic stream."""
    return UpstreamFailure(upstream_error(502, message, kind="bad_response", type="server_error"))


class _UsageTracker:
    """Input and cache counts from ``message_start``, overwritten by each ``message_delta``
    (cumulative: the last value wins, never summed)."""

    def __init__(self) -> None:
        self.raw = AnthropicUsage()
        self.seen = False

    def merge(self, usage: AnthropicUsage | None) -> Usage | None:
        if usage is not None:
            self.seen = True
            for name in _USAGE_FIELDS:
                value = getattr(usage, name)
                if value is not None:
                    setattr(self.raw, name, value)
        return convert_usage(self.raw) if self.seen else None


_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def _decode_event(event: SSEEvent) -> tuple[str, _Event]:
    """``(type, event)`` of one SSE event; raises for an ``error`` event and for garbage."""
    if event.raw:
        error = error_from_body(event.data.strip())  # a JSON error object from a proxy
        if error is not None:
            raise UpstreamFailure(error)
        raise _bad("Anthropic sent text that is not a server-sent event")
    try:
        data = _EVENT_DECODER.decode(event.data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise _bad("Anthropic sent a stream event that is not an event of its API") from None
    if data.type is None or (event.event is not None and event.event != data.type):
        raise _bad("Anthropic sent a stream event whose type is missing or not its event name")
    if data.type == "error":
        raise UpstreamFailure(stream_error(event.data))
    return data.type, data


class TextCompletionChunks:
    """Builds one legacy ``text_completion`` stream's chunks (same id, created and model throughout)."""

    def __init__(self, model: str, include_usage: bool, response_id: str | None = None) -> None:
        self.id = response_id or completion_id("cmpl-")
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def _frame(self, choices: list[dict[str, Any]], usage: Usage | None = None) -> bytes:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage_object(usage)
        elif self.include_usage:
            body["usage"] = None
        return b"data: " + msgspec.json.encode(body) + b"\n\n"

    def text(self, text: str, finish_reason: str | None = None) -> bytes:
        """One chunk carrying ``text`` (and the finish reason on the last one)."""
        return self._frame([{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}])

    def usage(self, usage: Usage) -> bytes:
        """The final ``choices: []`` chunk with ``usage`` (empty unless the client asked)."""
        return self._frame([], usage) if self.include_usage else b""


def _arguments_delta(index: int, arguments: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}


@dataclass
class _Block:
    kind: str  # text, tool, json, thinking, redacted, other
    tool_index: int = -1
    arguments_seen: bool = False
    initial: str | None = None
    thinking: list[str] = field(default_factory=list)
    signature: str = ""
    data: str = ""
    closed: bool = False


class _SSETranslator:
    """What both Anthropic stream readers share: SSE parsing, usage tracking, and a stream
    cut short before ``message_stop`` raising :class:`UpstreamFailure` with the frames decoded
    so far as its ``pending``. Subclasses write ``_events``."""

    def __init__(self, limits: RateLimits | None) -> None:
        self.usage: Usage | None = None
        self.limits = limits
        self.done = False
        self._parser = SSEParser()
        self._tracker = _UsageTracker()
        self._seen = False  # any event at all: a stream with none is not an answer

    def feed(self, chunk: bytes) -> bytes:
        """Frames to send for this chunk of upstream bytes (possibly none)."""
        return self._handle(self._parser.feed(chunk))

    def close(self) -> bytes:
        """The upstream ended: the last frames, or :class:`UpstreamFailure` if it was cut short."""
        tail = self._handle(self._parser.close())
        if not self.done:
            if self._seen:
                failure = _failure("Anthropic stream ended before message_stop")
            else:
                failure = _bad("Anthropic answered a stream with no event")
            failure.pending = tail
            raise failure
        return tail

    def _handle(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        self._seen = self._seen or bool(events)
        try:
            self._events(events, out)
        except UpstreamFailure as failure:
            failure.pending = b"".join(out)  # frames decoded before the error still reach the client
            raise
        return b"".join(out)

    def _events(self, events: list[SSEEvent], out: list[bytes]) -> None:
        raise NotImplementedError


class AnthropicStream(_SSETranslator):
    """Translates one Anthropic stream into OpenAI ``chat.completion.chunk`` frames (or legacy
    ``text_completion`` chunks for ``/v1/completions``).

    :param endpoint: ``chat`` or ``completions``.
    :param include_usage: the client asked for the final usage chunk.
    :param json_tool: the request used the synthetic JSON tool: its arguments stream as content.
    :param fallback_model: the ``model`` reported if ``message_start`` names none.
    :param limits: rate-limit state read from the response headers.

    Reasoning: ``thinking_delta`` becomes the non-standard ``delta.reasoning_content`` (LiteLLM's
    and DeepSeek's convention); at the end of each thinking block one delta carries
    ``thinking_blocks: [{type, thinking, signature}]`` so a client can send it back.

    When it raises :class:`UpstreamFailure`, the failure's ``pending`` holds the frames decoded
    from the same chunk before the error (the kernel sends them before its error event).
    """

    dialect = "openai"

    def __init__(
        self,
        *,
        endpoint: str,
        include_usage: bool,
        json_tool: bool,
        fallback_model: str,
        limits: RateLimits | None = None,
    ) -> None:
        super().__init__(limits)
        self.endpoint = endpoint
        self.include_usage = include_usage
        self.json_tool = json_tool
        self.fallback_model = fallback_model
        self._chat: ChunkBuilder | None = None
        self._text: TextCompletionChunks | None = None
        self._message_id: str | None = None
        self._blocks: dict[int, _Block] = {}
        self._next_tool = 0
        self._stop_reason: str | None = None
        self._user_tools = False
        self._json_used = False
        self._held: list[str] = []

    # --- events -------------------------------------------------------------------------------

    def _events(self, events: list[SSEEvent], out: list[bytes]) -> None:
        decode = _EVENT_DECODER.decode
        for event in events:
            if self.done:
                break
            try:  # what _decode_event does for a good event, inline
                data = decode(event.data) if not event.raw else None
            except _UNREADABLE:
                data = None
            kind = data.type if data is not None else None
            if data is None or kind is None or kind == "error" or event.event not in (None, kind):
                kind, data = _decode_event(event)  # raises this event's failure
            if kind == "content_block_delta" and self._chat is not None and not self.json_tool:
                # the usual event, a text delta to an open text block: what _block_delta does, inline
                delta = data.delta
                if delta is not None and delta.type == "text_delta":
                    state = self._blocks.get(data.index if data.index is not None else 0)
                    if state is not None and state.kind == "text":
                        if delta.text:
                            out.append(self._chat.content(delta.text))
                        continue
            handler = _HANDLERS.get(kind)
            if handler is not None:
                handler(self, data, out)

    def _start(self, out: list[bytes], message_id: str | None = None, model: str | None = None) -> None:
        if self._chat is not None or self._text is not None:
            return
        self._message_id = message_id
        model = model or self.fallback_model
        if self.endpoint == "completions":
            self._text = TextCompletionChunks(model, self.include_usage, response_id(message_id, "cmpl-"))
            return
        self._chat = ChunkBuilder(model, self.include_usage, response_id(message_id))
        out.append(self._chat.delta({"role": "assistant", "content": ""}))

    def _emit(self, out: list[bytes], delta: dict[str, Any]) -> None:
        self._start(out)
        if self._chat is not None:
            out.append(self._chat.delta(delta))
        elif self._text is not None and "content" in delta:
            out.append(self._text.text(delta["content"]))

    def _message_start(self, data: _Event, out: list[bytes]) -> None:
        message = data.message or _StartMessage()
        self._start(out, message.id, message.model)
        self.usage = self._tracker.merge(message.usage)

    def _block_start(self, data: _Event, out: list[bytes]) -> None:
        self._start(out)
        index = data.index if data.index is not None else 0
        block = data.content_block or _StartBlock()
        if block.type == "text":
            self._blocks[index] = _Block("text")
            if block.text:
                self._content(block.text, out)
        elif block.type == "tool_use":
            try:
                initial = compact_json(block.input) if block.input else None
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                raise _bad("Anthropic sent an unreadable tool input in its stream") from None
            if self.json_tool and block.name == JSON_TOOL:
                self._json_used = True
                self._held.clear()
                self._blocks[index] = _Block("json", initial=initial)
                return
            state = _Block("tool", tool_index=self._next_tool, initial=initial)
            self._blocks[index] = state
            self._next_tool += 1
            self._user_tools = True
            if self.endpoint == "chat":
                self._emit(
                    out,
                    {
                        "tool_calls": [
                            {
                                "index": state.tool_index,
                                "id": tool_call_id(block.id, self._message_id, index),
                                "type": "function",
                                "function": {"name": block.name or "", "arguments": ""},
                            }
                        ]
                    },
                )
        elif block.type == "thinking":
            state = _Block("thinking", signature=block.signature or "")
            self._blocks[index] = state
            if block.thinking:
                self._thinking(state, block.thinking, out)
        elif block.type == "redacted_thinking":
            self._blocks[index] = _Block("redacted", data=block.data or "")
        else:
            self._blocks[index] = _Block("other")

    def _content(self, text: str, out: list[bytes]) -> None:
        if not text:
            return
        if self.json_tool:
            if not self._json_used:  # held until it is known whether the JSON tool answers
                self._held.append(text)
            return
        self._emit(out, {"content": text})

    def _thinking(self, state: _Block, text: str, out: list[bytes]) -> None:
        if not text:
            return
        state.thinking.append(text)
        if self.endpoint == "chat":
            self._emit(out, {"reasoning_content": text})

    def _block_delta(self, data: _Event, out: list[bytes]) -> None:
        self._start(out)
        index = data.index if data.index is not None else 0
        delta = data.delta or _Delta()
        state = self._blocks.get(index)
        if delta.type == "text_delta":
            if state is None:
                state = self._blocks[index] = _Block("text")
            if state.kind == "text":
                self._content(delta.text or "", out)
        elif delta.type == "input_json_delta":
            fragment = delta.partial_json or ""
            if state is None or not fragment:  # an empty fragment carries nothing (§5 item 1)
                return
            if state.kind == "json":
                state.arguments_seen = True
                self._emit(out, {"content": fragment})
            elif state.kind == "tool" and self.endpoint == "chat":
                state.arguments_seen = True
                self._emit(out, _arguments_delta(state.tool_index, fragment))
        elif delta.type == "thinking_delta":
            if state is None:
                state = self._blocks[index] = _Block("thinking")
            if state.kind == "thinking":
                self._thinking(state, delta.thinking or "", out)
        elif delta.type == "signature_delta" and state is not None and state.kind == "thinking":
            state.signature += delta.signature or ""

    def _block_stop(self, data: _Event, out: list[bytes]) -> None:
        state = self._blocks.get(data.index if data.index is not None else 0)
        if state is not None:
            self._close_block(state, out)

    def _close_block(self, state: _Block, out: list[bytes]) -> None:
        if state.closed:
            return
        state.closed = True
        if state.kind == "json" and not state.arguments_seen:
            self._emit(out, {"content": state.initial or "{}"})
        elif state.kind == "tool" and not state.arguments_seen and self.endpoint == "chat":
            # a tool whose arguments never streamed ends with "{}" (§5 item 2)
            self._emit(out, _arguments_delta(state.tool_index, state.initial or "{}"))
        elif state.kind == "thinking" and self.endpoint == "chat":
            block = {"type": "thinking", "thinking": "".join(state.thinking), "signature": state.signature}
            self._emit(out, {"thinking_blocks": [block]})
        elif state.kind == "redacted" and self.endpoint == "chat":
            self._emit(out, {"thinking_blocks": [{"type": "redacted_thinking", "data": state.data}]})

    def _message_delta(self, data: _Event, out: list[bytes]) -> None:
        if data.delta is not None and data.delta.stop_reason is not None:
            self._stop_reason = data.delta.stop_reason
        self.usage = self._tracker.merge(data.usage)

    def _message_stop(self, data: _Event, out: list[bytes]) -> None:
        self._start(out)
        for state in self._blocks.values():
            self._close_block(state, out)
        if self._held and not self._json_used:
            self._emit(out, {"content": "".join(self._held)})
        self._held.clear()
        finish = finish_reason(self._stop_reason)
        if finish == "tool_calls" and not self._user_tools:
            finish = "stop"  # only the JSON tool answered
        usage = self.usage or Usage()
        if self._chat is not None:
            out.append(self._chat.delta({}, finish_reason=finish))
            out.append(self._chat.usage(usage))
            out.append(self._chat.done())
        elif self._text is not None:
            out.append(self._text.text("", "stop" if finish == "tool_calls" else finish))
            out.append(self._text.usage(usage))
            out.append(b"data: [DONE]\n\n")
        self.done = True


_HANDLERS = {
    "message_start": AnthropicStream._message_start,
    "content_block_start": AnthropicStream._block_start,
    "content_block_delta": AnthropicStream._block_delta,
    "content_block_stop": AnthropicStream._block_stop,
    "message_delta": AnthropicStream._message_delta,
    "message_stop": AnthropicStream._message_stop,
}


def _frame(kind: str, data: bytes) -> bytes:
    """One checked event as Anthropic writes it, rebuilt rather than copied: ``event: <type>``
    and ``data: <json>`` (no stray ``id:`` or ``retry:`` field reaches the client). A ``data``
    split over several lines is JSON whose line breaks are whitespace: they become spaces."""
    data = data.strip()
    if b"\n" in data or b"\r" in data:
        data = data.replace(b"\r", b" ").replace(b"\n", b" ")
    return event_frame(kind, data)


class AnthropicPassthrough(_SSETranslator):
    """Forwards an Anthropic stream to an Anthropic client frame by frame, unchanged.

    Still reads usage, fails on ``event: error``, on a stream without ``message_stop`` and on
    anything that is not an Anthropic event; each event is rebuilt from its checked ``type`` and
    ``data``.
    """

    dialect = "anthropic"

    def __init__(self, limits: RateLimits | None = None) -> None:
        super().__init__(limits)

    def _events(self, events: list[SSEEvent], out: list[bytes]) -> None:
        for event in events:
            if self.done:
                break
            kind, data = _decode_event(event)
            if kind == "message_start" and data.message is not None:
                self.usage = self._tracker.merge(data.message.usage)
            elif kind == "message_delta":
                self.usage = self._tracker.merge(data.usage)
            elif kind == "message_stop":
                self.done = True
            out.append(_frame(kind, event.data))
