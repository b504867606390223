"""Streams in Gemini's two forms, from OpenAI chunks or from Gemini's own events.

Gemini streams ``:streamGenerateContent`` two ways:

- ``?alt=sse``: server-sent events, ``data: <GenerateContentResponse>`` each followed by
  ``\\r\\n\\r\\n``; no ``[DONE]`` (the stream ends when the connection closes);
- without ``alt``: one JSON array written progressively, ``[{...}\\n,\\r\\n{...}\\n]``, each element
  pretty-printed.

:class:`OpenAIToGemini` turns OpenAI ``chat.completion.chunk`` frames into Gemini events: text
deltas become text parts at once; tool calls, whose arguments OpenAI streams in pieces, are held
until the choice finishes and then sent whole as ``functionCall`` parts (Gemini never streams
partial arguments) in the last event, with the ``finishReason`` and the final ``usageMetadata``.
:class:`GeminiToArray` re-frames Gemini's own SSE events as the JSON-array form.
"""

from __future__ import annotations

from typing import Any

import msgspec

from truckllm.errors import GatewayError
from truckllm.kit.sse import SSEParser

from .errors import stream_error
from .response import finish_reason, function_call, usage_metadata

__all__ = ["Framer", "GeminiToArray", "OpenAIToGemini", "SSEIdentity"]

_JSON = msgspec.json.Decoder()


class Framer:
    """Writes Gemini stream events in one of the two forms.

    :param sse: ``alt=sse`` (events) or the JSON array.
    """

    def __init__(self, sse: bool) -> None:
        self.sse = sse
        self.count = 0

    def event(self, data: bytes) -> bytes:
        """One event whose JSON is ``data``."""
        self.count += 1
        if self.sse:
            return b"data: " + data + b"\r\n\r\n"
        element = msgspec.json.format(data, indent=2)
        return (b"\n,\r\n" if self.count > 1 else b"[") + element

    def end(self) -> bytes:
        """The end of the stream: nothing for SSE, ``]`` for the array (``[]`` when it is empty)."""
        if self.sse:
            return b""
        return b"\n]" if self.count else b"[]"

    def error(self, error: GatewayError) -> bytes:
        """What ends the stream after a failure: Gemini's raw error object (see :mod:`.errors`)."""
        frame = stream_error(error, "sse" if self.sse else "array")
        if not self.sse and not self.count:  # nothing sent yet: the array's only element
            return b"[" + frame.removeprefix(b"\n,\r\n")
        return frame


class SSEIdentity:
    """Gemini's own SSE events for a client that asked for ``alt=sse``: unchanged."""

    def error(self, error: GatewayError) -> bytes:
        """Gemini's raw error object."""
        return stream_error(error, "sse")

    def feed(self, frames: bytes) -> bytes:
        """The frames, as they are."""
        return frames

    def close(self) -> bytes:
        """Nothing to add."""
        return b""


class GeminiToArray:
    """Gemini's own SSE events re-framed as the JSON-array form (a client without ``alt=sse``)."""

    def __init__(self) -> None:
        self.parser = SSEParser()
        self.framer = Framer(sse=False)

    def _events(self, events: list[Any]) -> bytes:
        out: list[bytes] = []
        for event in events:
            data = event.data.strip()
            if not data or data == b"[DONE]":
                continue
            try:
                _JSON.decode(data)
            except (msgspec.DecodeError, RecursionError):
                continue  # not JSON: nothing a client could read
            out.append(self.framer.event(data))
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        """The error as the array's last element, then ``]``."""
        return self.framer.error(error)

    def feed(self, frames: bytes) -> bytes:
        """Each complete event as one array element."""
        return self._events(self.parser.feed(frames))

    def close(self) -> bytes:
        """The last event, then ``]``."""
        return self._events(self.parser.close()) + self.framer.end()


class _Choice:
    """What one OpenAI choice has streamed so far.

    ``held`` is the last character of the text streamed so far (and whether it is thought text):
    it is sent with the next delta, or in the last event, so that the last event (the one with the
    ``finishReason``) carries content too. ``google-genai``'s chat sessions drop a streamed turn
    from their history when any chunk has no content, and a ``{"text": ""}`` part would be
    rejected ("empty text parameter") when the history comes back.
    """

    __slots__ = ("calls", "finish", "flushed", "held")

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None
        self.flushed = False
        self.held: tuple[str, bool] | None = None

    @staticmethod
    def _part(text: str, thought: bool) -> dict[str, Any]:
        return {"text": text, "thought": True} if thought else {"text": text}

    def text(self, text: str, thought: bool, parts: list[dict[str, Any]]) -> None:
        """Add a text delta: send all of it but its last character (held for the next event)."""
        if self.held is not None:
            held, held_thought = self.held
            if held_thought == thought:
                text = held + text
            else:
                parts.append(self._part(held, held_thought))
        if len(text) > 1:
            parts.append(self._part(text[:-1], thought))
        self.held = (text[-1], thought)

    def release(self) -> list[dict[str, Any]]:
        """The held character as a part (for the last event)."""
        if self.held is None:
            return []
        held, self.held = self.held, None
        return [self._part(*held)]


class OpenAIToGemini:
    """OpenAI ``chat.completion.chunk`` frames → Gemini stream events.

    :param model: reported as ``modelVersion`` until the upstream names its model.
    :param sse: the client asked for ``alt=sse`` (else the JSON-array form).
    :param include_thoughts: send ``reasoning_content`` deltas as ``thought`` parts.
    """

    def __init__(self, model: str, sse: bool, include_thoughts: bool = False) -> None:
        self.model = model
        self.include_thoughts = include_thoughts
        self.framer = Framer(sse)
        self.parser = SSEParser()
        self.response_id: str | None = None
        self.choices: dict[int, _Choice] = {}
        self.usage_metadata: dict[str, int] | None = None
        self.done = False

    # --- events ----------------------------------------------------------------------------------

    def _event(self, candidates: list[dict[str, Any]], usage: dict[str, int] | None) -> bytes:
        event: dict[str, Any] = {}
        if candidates:
            event["candidates"] = candidates
        if usage:
            event["usageMetadata"] = usage
        event["modelVersion"] = self.model
        if self.response_id:
            event["responseId"] = self.response_id
        return self.framer.event(msgspec.json.encode(event))

    @staticmethod
    def _candidate(index: int, parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if parts:
            out["content"] = {"parts": parts, "role": "model"}
        if finish is not None:
            out["finishReason"] = finish
        if index:
            out["index"] = index
        return out

    def _final(self) -> bytes:
        """The last event: every choice's held function calls and finish reason, the final usage."""
        candidates = []
        for index in sorted(self.choices):
            choice = self.choices[index]
            if choice.flushed:
                continue
            choice.flushed = True
            parts = choice.release()
            parts.extend(
                p for p in (function_call(c) for _, c in sorted(choice.calls.items())) if p is not None
            )
            candidates.append(self._candidate(index, parts, finish_reason(choice.finish)))
        if not candidates and not self.usage_metadata and self.framer.count:
            return b""
        if not candidates:
            candidates.append(self._candidate(0, [], "STOP"))
        return self._event(candidates, self.usage_metadata)

    # --- chunks ----------------------------------------------------------------------------------

    def _tool_calls(self, choice: _Choice, deltas: Any) -> None:
        for position, delta in enumerate(deltas if isinstance(deltas, list) else ()):
            if not isinstance(delta, dict):
                continue
            index = delta.get("index")
            index = index if isinstance(index, int) and not isinstance(index, bool) else position
            call = choice.calls.setdefault(index, {"id": None, "function": {"name": "", "arguments": ""}})
            if isinstance(delta.get("id"), str):
                call["id"] = delta["id"]
            function = delta.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    call["function"]["name"] += function["name"]
                if isinstance(function.get("arguments"), str):
                    call["function"]["arguments"] += function["arguments"]

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        if self.response_id is None and isinstance(chunk.get("id"), str):
            self.response_id = chunk["id"]
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        usage = usage_metadata(chunk.get("usage"))
        if usage is not None:
            self.usage_metadata = usage
        candidates: list[dict[str, Any]] = []
        choices = chunk.get("choices")
        for choice_data in choices if isinstance(choices, list) else ():
            if not isinstance(choice_data, dict):
                continue
            index = choice_data.get("index")
            index = index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else 0
            choice = self.choices.setdefault(index, _Choice())
            delta = choice_data.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            parts: list[dict[str, Any]] = []
            if not choice.flushed:
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if self.include_thoughts and isinstance(reasoning, str) and reasoning:
                    choice.text(reasoning, True, parts)
                for key in ("content", "refusal"):
                    text = delta.get(key)
                    if isinstance(text, str) and text:
                        choice.text(text, False, parts)
            self._tool_calls(choice, delta.get("tool_calls"))
            if parts and not choice.flushed:
                candidates.append(self._candidate(index, parts))
            reason = choice_data.get("finish_reason")
            if isinstance(reason, str) and reason:
                choice.finish = reason
        if not candidates:
            return b""
        return self._event(candidates, usage)

    def _frames(self, events: list[Any]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if self.done:
                break
            data = event.data.strip()
            if data == b"[DONE]":
                out.append(self._final())
                self.done = True
                continue
            try:
                chunk = _JSON.decode(data)
            except (msgspec.DecodeError, RecursionError):
                continue
            if isinstance(chunk, dict):
                out.append(self._chunk(chunk))
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        """What ends this stream after a failure, in the client's form."""
        return self.framer.error(error)

    def feed(self, frames: bytes) -> bytes:
        """Translate OpenAI frames (split anywhere) into Gemini events."""
        return self._frames(self.parser.feed(frames))

    def close(self) -> bytes:
        """The upstream ended: the last event (if ``[DONE]`` did not send it) and the array's end."""
        out = self._frames(self.parser.close())
        if not self.done:
            out += self._final()
            self.done = True
        return out + self.framer.end()
