"""Gemini ``streamGenerateContent?alt=sse`` → OpenAI chunk frames (PROVIDERS.md §4.5).

Gemini separates events with CRLF, sends no ``[DONE]`` (the stream ends when the connection
closes), repeats ``usageMetadata`` as running totals, sends each ``functionCall`` whole and reports
a failure after the 200 as a raw, non-SSE ``{"error": ...}`` object. The translators here:

- start with a ``role`` chunk, then one chunk per text, thought or function-call part;
- send exactly one finish chunk per choice (``tool_calls`` when the choice called a function);
- at the end send the usage chunk (when the client asked for it) and ``[DONE]``;
- raise :class:`~truckllm.errors.UpstreamFailure` for an upstream error and for a stream that ends
  before its finish reason: a cut stream is never a clean answer;
- raise ``bad_response`` (502, counted against the key) for anything that is not a Gemini event:
  text outside SSE framing that is not an error object, an event that is not JSON or not a
  ``GenerateContentResponse``. No byte of such an event reaches the client; the frames of the
  events before it do (returned first, the failure raised at the next call).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from truckllm.errors import UpstreamFailure
from truckllm.kit.openai_wire import ChunkBuilder, completion_id, usage_object
from truckllm.kit.sse import SSEEvent, SSEParser
from truckllm.types import ChatRequest, RateLimits, UpstreamError, Usage

from .errors import status_error
from .response import GENERATE, GenerateContentResponse, bad_response, finish_reason, tool_call, usage_from

__all__ = ["GeminiPassthroughStream", "GeminiStream"]

_JSON = msgspec.json.Decoder()
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)  # RecursionError: deep JSON


def _cut(message: str) -> UpstreamFailure:
    return UpstreamFailure(UpstreamError(status=502, kind="stream", message=message))


def _error_failure(error: Any) -> UpstreamFailure:
    obj = error if isinstance(error, dict) else {"message": str(error)}
    return UpstreamFailure(status_error(200, obj, "Gemini reported an error mid-stream"))


def _json(data: bytes) -> Any:
    try:
        return _JSON.decode(data)
    except _UNREADABLE:
        return None


def _not_an_event(data: bytes, what: str) -> UpstreamFailure:
    """The failure for text that is not a stream event: Gemini's raw ``{"error": ...}`` object
    (alone, first in an array, or after a stray ``[`` or ``,``) is the error it reports; anything
    else is a ``bad_response``: never forwarded, never skipped."""
    parsed = _json(data)
    if parsed is None and b'"error"' in data:
        start = data.find(b"{")
        parsed = _json(data[start:]) if start >= 0 else None
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    if isinstance(parsed, dict) and parsed.get("error") is not None:
        return _error_failure(parsed["error"])
    return UpstreamFailure(bad_response(what))


def _decode(data: bytes) -> GenerateContentResponse | None:
    """One event's response (``None`` for an empty event); raises for errors and garbage."""
    data = data.strip()
    if not data or data == b"[DONE]":
        return None
    try:
        event = GENERATE.decode(data)
    except _UNREADABLE:
        raise _not_an_event(data, "a stream event that is not a GenerateContentResponse") from None
    if event.error is not None:
        raise _error_failure(event.error)
    return event


class _ChatFrames:
    """``chat.completion.chunk`` frames (through the kernel's :class:`ChunkBuilder`)."""

    def __init__(self, model: str, include_usage: bool, response_id: str | None) -> None:
        self.builder = ChunkBuilder(model, include_usage, "chatcmpl-" + response_id if response_id else None)

    def role(self, index: int) -> bytes:
        return self.builder.delta({"role": "assistant", "content": ""}, index)

    def text(self, index: int, text: str) -> bytes:
        return self.builder.delta({"content": text}, index)

    def reasoning(self, index: int, text: str) -> bytes:
        return self.builder.delta({"reasoning_content": text}, index)

    def tool_call(self, index: int, call: dict[str, Any]) -> bytes:
        return self.builder.delta({"tool_calls": [call]}, index)

    def finish(self, index: int, reason: str) -> bytes:
        return self.builder.delta({}, index, reason)

    def usage(self, usage: Usage) -> bytes:
        return self.builder.usage(usage)


class _TextFrames:
    """``text_completion`` frames for the legacy completions endpoint (same shape as the answer)."""

    def __init__(self, model: str, include_usage: bool, response_id: str | None) -> None:
        self.include_usage = include_usage
        self.head: dict[str, Any] = {
            "id": "cmpl-" + response_id if response_id else completion_id("cmpl-"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
        }

    def _frame(self, choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        chunk = {**self.head, "choices": choices}
        if self.include_usage:
            chunk["usage"] = usage
        return b"data: " + msgspec.json.encode(chunk) + b"\n\n"

    def role(self, index: int) -> bytes:
        return b""

    def text(self, index: int, text: str) -> bytes:
        return self._frame([{"text": text, "index": index, "logprobs": None, "finish_reason": None}])

    def reasoning(self, index: int, text: str) -> bytes:
        return b""

    def tool_call(self, index: int, call: dict[str, Any]) -> bytes:
        return b""

    def finish(self, index: int, reason: str) -> bytes:
        return self._frame([{"text": "", "index": index, "logprobs": None, "finish_reason": reason}])

    def usage(self, usage: Usage) -> bytes:
        if not self.include_usage:
            return b""
        return self._frame([], usage_object(usage))


class _Choice:
    __slots__ = ("finished", "saw_tool_call", "tools")

    def __init__(self) -> None:
        self.finished = False
        self.saw_tool_call = False
        self.tools = 0


class _Translator:
    """What both translators share: the SSE parser, usage, and errors held back one call.

    When an event fails after other events of the same chunk made frames, those frames are returned
    and the error is raised at the next :meth:`feed` or at :meth:`close`: the client gets the same
    bytes however the upstream's stream was split into chunks.
    """

    dialect = "openai"

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.limits: RateLimits | None = None
        self._parser = SSEParser()
        self._failure: UpstreamFailure | None = None
        self._failed = False
        self._seen = False  # any event at all: a stream with none is not an answer

    def feed(self, chunk: bytes) -> bytes:
        """Frames for one chunk of upstream bytes (events may be split anywhere).

        :raises UpstreamFailure: the upstream reported an error.
        """
        self._raise_pending()
        return self._handle(self._parser.feed(chunk))

    def _drain(self) -> bytes:
        self._raise_pending()
        out = self._handle(self._parser.close())
        self._raise_pending()
        return out

    def _raise_pending(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            self._failed = True
            raise failure
        if self._failed:
            raise _cut("Gemini's stream already failed")

    def _handle(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        self._seen = self._seen or bool(events)
        try:
            for event in events:
                self._event(event, out)
        except UpstreamFailure as failure:
            if not out:
                self._failed = True
                raise
            self._failure = failure
        return b"".join(out)

    def _event(self, event: SSEEvent, out: list[bytes]) -> None:
        raise NotImplementedError


class GeminiStream(_Translator):
    """Translates one Gemini SSE stream into OpenAI chunks (chat, or legacy completions).

    :param request: the client's request (endpoint, ``include_usage``, the alias as a fallback
        model name when Gemini sends no ``modelVersion``).
    """

    def __init__(self, request: ChatRequest) -> None:
        super().__init__()
        self._endpoint = request.endpoint
        self._include_usage = request.include_usage
        self._model = request.model
        self._frames: _ChatFrames | _TextFrames | None = None
        self._choices: dict[int, _Choice] = {}

    def close(self) -> bytes:
        """The upstream ended: the usage chunk and ``[DONE]``.

        :raises UpstreamFailure: the stream carried an error, or ended before its finish reason.
        """
        out = self._drain()
        if not self._seen:
            raise UpstreamFailure(bad_response("a stream with no event"))
        if self._frames is None:
            raise _cut("Gemini's stream ended before any event")
        if any(not choice.finished for choice in self._choices.values()):
            raise _cut("Gemini's stream ended before its finish reason (the connection was cut)")
        return out + self._frames.usage(self.usage or Usage()) + b"data: [DONE]\n\n"

    def _choice(self, index: int, out: list[bytes]) -> _Choice:
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice()
            assert self._frames is not None
            out.append(self._frames.role(index))
        return choice

    def _event(self, event: SSEEvent, out: list[bytes]) -> None:
        if event.raw:
            raise _not_an_event(event.data, "text that is not a server-sent event")
        decoded = _decode(event.data)
        if decoded is not None:
            self._translate(decoded, out)

    def _translate(self, event: GenerateContentResponse, out: list[bytes]) -> None:
        if self._frames is None:
            kind = _TextFrames if self._endpoint == "completions" else _ChatFrames
            self._frames = kind(event.model_version or self._model, self._include_usage, event.response_id)
            self._choice(0, out)
        frames = self._frames
        if event.usage_metadata is not None:
            self.usage = usage_from(event.usage_metadata)
        candidates = event.candidates or []
        feedback = event.prompt_feedback
        if not candidates and feedback is not None and feedback.block_reason:
            choice = self._choice(0, out)
            if not choice.finished:
                choice.finished = True
                out.append(frames.finish(0, "content_filter"))
        for candidate in candidates:
            index = candidate.index or 0
            choice = self._choice(index, out)
            if choice.finished:
                continue
            parts = candidate.content.parts if candidate.content is not None else None
            for part in parts or []:
                if part.function_call is not None:
                    call = {"index": choice.tools, **tool_call(part)}
                    choice.tools += 1
                    choice.saw_tool_call = True
                    out.append(frames.tool_call(index, call))
                elif part.text:
                    if part.thought:
                        out.append(frames.reasoning(index, part.text))
                    else:
                        out.append(frames.text(index, part.text))
            if candidate.finish_reason:
                choice.finished = True
                out.append(frames.finish(index, finish_reason(candidate.finish_reason, choice.saw_tool_call)))


def _frame(data: bytes) -> bytes:
    """One checked event as Gemini writes it: ``data: <json>\\r\\n\\r\\n``, rebuilt rather than
    copied (no stray ``event:``, ``id:`` or ``retry:`` field reaches the client). A ``data`` split
    over several lines is JSON whose line breaks are whitespace: they become spaces."""
    data = data.strip()
    if b"\n" in data or b"\r" in data:
        data = data.replace(b"\r", b" ").replace(b"\n", b" ")
    return b"data: " + data + b"\r\n\r\n"


class GeminiPassthroughStream(_Translator):
    """Forwards a Gemini stream to a Gemini-dialect client frame by frame.

    Usage is still read, errors are still raised and a stream cut before its finish reason still
    fails, exactly as in :class:`GeminiStream`.
    """

    dialect = "gemini"

    def __init__(self) -> None:
        super().__init__()
        self._unfinished: set[int] = set()
        self._finished = False

    def close(self) -> bytes:
        """The last event, if it lacked its blank line; raises for a cut stream."""
        out = self._drain()
        if not self._seen:
            raise UpstreamFailure(bad_response("a stream with no event"))
        if self._unfinished or not self._finished:
            raise _cut("Gemini's stream ended before its finish reason (the connection was cut)")
        return out

    def _event(self, event: SSEEvent, out: list[bytes]) -> None:
        if event.raw:
            raise _not_an_event(event.data, "text that is not a server-sent event")
        decoded = _decode(event.data)
        if decoded is None:
            return
        self._read(decoded)
        out.append(_frame(event.data))

    def _read(self, decoded: GenerateContentResponse) -> None:
        if decoded.usage_metadata is not None:
            self.usage = usage_from(decoded.usage_metadata)
        feedback = decoded.prompt_feedback
        if not decoded.candidates and feedback is not None and feedback.block_reason:
            self._finished = True
        for candidate in decoded.candidates or []:
            index = candidate.index or 0
            if candidate.finish_reason:
                self._unfinished.discard(index)
                self._finished = True
            else:
                self._unfinished.add(index)
