"""A Responses API stream as chat-completion chunks, for a chat client served through
``/responses`` (``api: responses``).

``response.created`` gives the role chunk (id ``chatcmpl-`` + the Response's, its
``created_at`` and model); ``response.output_text.delta`` content deltas;
``response.refusal.delta`` refusal deltas; a ``function_call`` item a tool call (its index in
order of appearance, ``call_id`` as id, name) whose arguments follow as
``response.function_call_arguments.delta``; reasoning summary (or reasoning text) deltas the
non-standard ``reasoning_content``. ``response.completed``/``response.incomplete`` end it: the
finish chunk, the usage chunk when the client asked for it, ``data: [DONE]``. Failures are those
of :class:`~truckllm_provider_openai.responses_events.ResponsesReader`.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from truckllm.errors import UpstreamFailure
from truckllm.kit.openai_wire import DONE_FRAME, completion_id, usage_object
from truckllm.kit.sse import SSEEvent
from truckllm.types import RateLimits, Usage

from .errors import bad_response
from .responses_answer import OutputItem, chat_id, created_of, finish_reason
from .responses_events import TERMINAL_EVENTS, ResponsesEvent, ResponsesReader

__all__ = ["ChatChunks", "ResponsesToChat"]

_ITEM = msgspec.json.Decoder(OutputItem)
_START_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
_REASONING_DELTAS = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})


class ChatChunks:
    """One answer's ``chat.completion.chunk`` frames, sharing an id, ``created`` and model."""

    def __init__(self, response_id: str, created: int, model: str, include_usage: bool) -> None:
        self.include_usage = include_usage
        self._head: dict[str, Any] = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }

    def _frame(self, choices: list[dict[str, Any]], usage: Usage | None = None) -> bytes:
        body = dict(self._head)
        body["choices"] = choices
        if usage is not None:
            body["usage"] = usage_object(usage)
        elif self.include_usage:
            body["usage"] = None
        return b"data: " + msgspec.json.encode(body) + b"\n\n"

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        """One chunk with ``delta`` for choice 0."""
        return self._frame([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])

    def usage(self, usage: Usage) -> bytes:
        """The final ``choices: []`` chunk with ``usage`` (nothing unless the client asked)."""
        return self._frame([], usage) if self.include_usage else b""


def _index(value: Any) -> int | None:
    """An index member as sent (``None`` when it is not a whole number)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _key(index: Any, item_id: Any) -> int | str | None:
    """What names an output item in an event: its ``output_index``, else its id."""
    number = _index(index)
    if number is not None:
        return number
    return item_id if isinstance(item_id, str) else None


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


class ResponsesToChat(ResponsesReader):
    """Translates one Responses stream into chat-completion chunks.

    :param include_usage: the client asked for the final usage chunk.
    :param fallback_model: the ``model`` reported if the stream names none.
    :param limits: rate-limit state read from the response headers.
    """

    dialect = "openai"

    def __init__(self, include_usage: bool, fallback_model: str, limits: RateLimits | None = None) -> None:
        super().__init__(limits)
        self.include_usage = include_usage
        self.fallback_model = fallback_model
        self._chunks: ChatChunks | None = None
        self._tools: dict[int | str | None, int] = {}
        self._next_tool = 0
        self._arguments_sent: set[int] = set()
        self._texts_sent: set[tuple[str, int | str | None, int | None]] = set()

    def on_event(self, event: SSEEvent, data: ResponsesEvent, out: list[bytes]) -> None:
        """Translate one event."""
        kind = data.type
        if kind in _START_EVENTS:
            self._start(out, data)
        elif kind == "response.output_text.delta":
            self._content(out, "content", data)
        elif kind == "response.refusal.delta":
            self._content(out, "refusal", data)
        elif kind == "response.output_text.done":
            self._content_done(out, "content", data.text, data)
        elif kind == "response.refusal.done":
            self._content_done(out, "refusal", data.refusal, data)
        elif kind in _REASONING_DELTAS:
            delta = _string(data.delta)
            if delta:
                self._emit(out, {"reasoning_content": delta})
        elif kind in ("response.output_item.added", "response.output_item.done"):
            self._item(out, data)
        elif kind == "response.function_call_arguments.delta":
            self._arguments(out, _key(data.output_index, data.item_id), _string(data.delta))
        elif kind == "response.function_call_arguments.done":
            index = self._tools.get(_key(data.output_index, data.item_id))
            if index is not None and index not in self._arguments_sent:
                self._arguments(out, _key(data.output_index, data.item_id), _string(data.arguments))
        elif kind in TERMINAL_EVENTS:
            self._finish(out, data)

    # --- pieces -------------------------------------------------------------------------------

    def _start(self, out: list[bytes], data: ResponsesEvent | None = None) -> ChatChunks:
        if self._chunks is None:
            response = data.response if data is not None else None
            self._chunks = ChatChunks(
                chat_id(response.id) if response is not None else completion_id(),
                (created_of(response.created_at) if response is not None else None) or int(time.time()),
                (_string(response.model) if response is not None else "") or self.fallback_model,
                self.include_usage,
            )
            out.append(self._chunks.delta({"role": "assistant", "content": ""}))
        return self._chunks

    def _emit(self, out: list[bytes], delta: dict[str, Any]) -> None:
        out.append(self._start(out).delta(delta))

    def _content(self, out: list[bytes], name: str, data: ResponsesEvent) -> None:
        delta = _string(data.delta)
        self._texts_sent.add((name, _key(data.output_index, data.item_id), _index(data.content_index)))
        if delta:
            self._emit(out, {name: delta})

    def _content_done(self, out: list[bytes], name: str, text: Any, data: ResponsesEvent) -> None:
        """A text part that ends without having streamed a delta is sent whole."""
        key = (name, _key(data.output_index, data.item_id), _index(data.content_index))
        if key not in self._texts_sent and _string(text):
            self._texts_sent.add(key)
            self._emit(out, {name: text})

    def _item(self, out: list[bytes], data: ResponsesEvent) -> None:
        if not data.item:
            return
        try:
            item = _ITEM.decode(data.item)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            raise UpstreamFailure(
                bad_response("upstream stream sent an output item that is not one")
            ) from None
        if item.type != "function_call":
            return
        key = _key(data.output_index, item.id)
        index = self._tools.get(key)
        if index is None:
            index = self._next_tool
            self._next_tool += 1
            self._tools[key] = index
            if isinstance(item.id, str):
                self._tools[item.id] = index
            self._emit(
                out,
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": _string(item.call_id) or _string(item.id),
                            "type": "function",
                            "function": {"name": _string(item.name), "arguments": ""},
                        }
                    ]
                },
            )
        if data.type == "response.output_item.done" and index not in self._arguments_sent:
            self._arguments(out, key, _string(item.arguments))  # arguments that never streamed

    def _arguments(self, out: list[bytes], key: int | str | None, arguments: str) -> None:
        index = self._tools.get(key)
        if index is None or not arguments:
            return
        self._arguments_sent.add(index)
        self._emit(out, {"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})

    def _finish(self, out: list[bytes], data: ResponsesEvent) -> None:
        chunks = self._start(out, data)
        response = data.response
        status = response.status if response is not None else None
        details = response.incomplete_details if response is not None else None
        if data.type == "response.incomplete" and status != "incomplete":
            status = "incomplete"
        out.append(chunks.delta({}, finish_reason=finish_reason(status, details, bool(self._tools))))
        out.append(chunks.usage(self.usage or Usage()))
        out.append(DONE_FRAME)
