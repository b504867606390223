"""Streams: OpenAI ``chat.completion.chunk`` frames → the Responses API's event stream.

Every frame is ``event: <type>\\ndata: <json>\\n\\n``; every event carries ``sequence_number``
(0, 1, 2... in the order sent). The sequence::

    response.created, response.in_progress                      (with the first upstream frame)
    per output item, at output_index 0, 1, 2...:
      response.output_item.added
      reasoning:  response.reasoning_summary_part.added, response.reasoning_summary_text.delta*,
                  response.reasoning_summary_text.done, response.reasoning_summary_part.done
      message:    per content part (content_index 0, 1...): response.content_part.added,
                  response.output_text.delta* (or response.refusal.delta*),
                  response.output_text.done (or response.refusal.done), response.content_part.done
      function:   response.function_call_arguments.delta*, response.function_call_arguments.done
      response.output_item.done
    response.completed (or response.incomplete)

- Reasoning text (``reasoning_content`` / ``reasoning``) is a ``reasoning`` item's summary;
  ``thinking_blocks`` (a provider's signed thinking) are sealed in its ``encrypted_content``.
  Text and refusals are a ``message`` item. A new item starts whenever the kind changes.
- Each chat tool call (by its ``index``) is a ``function_call`` item, added when its name is
  known (``call_id`` = the tool call's id); its ``arguments`` fragments are sent as they arrive,
  to that item's ``output_index``, so interleaved parallel calls are fine. Function call items
  stay open until the end of the answer.
- The finish chunk is held until the usage chunk (``choices: []``), ``[DONE]`` or the end of the
  stream, whichever is first; then the open items are closed and ``response.completed`` carries
  the whole Response (:attr:`ChatToResponses.final`), with the usage.
- :meth:`ChatToResponses.error` ends a failed stream with an ``error`` event and
  ``response.failed``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from loguru import logger
from msgspec import Struct

from truckllm.errors import GatewayError, UpstreamFailure
from truckllm.kit.sse import SSEEvent, SSEParser, event_frame
from truckllm.types import UpstreamError

from .errors import error_event
from .response import (
    Shape,
    function_call_item,
    message_item,
    output_text,
    reasoning_item,
    response_object,
)
from .wire import call_id, finish_status, item_id, seal_thinking, usage

__all__ = ["ChatToResponses"]


class _Function(Struct):
    name: Any = None
    arguments: Any = None


class _ToolDelta(Struct):
    index: Any = None
    id: Any = None
    function: _Function | None = None


class _Delta(Struct):
    content: Any = None
    reasoning_content: Any = None
    reasoning: Any = None
    refusal: Any = None
    thinking_blocks: Any = None
    tool_calls: list[_ToolDelta] | None = None


class _Choice(Struct):
    index: Any = 0
    delta: _Delta | None = None
    finish_reason: Any = None


class _Chunk(Struct):
    choices: list[_Choice] | None = None
    usage: Any = None
    error: Any = None


_DECODER = msgspec.json.Decoder(_Chunk)
_ENCODE = msgspec.json.encode
_TEXT_DELTA_HEAD = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":'

# the error codes a failed Response may carry (openai.types.responses.ResponseError.code)
_FAILED_CODES = {429: "rate_limit_exceeded"}


class _Item:
    """One output item being streamed."""

    __slots__ = ("blocks", "call", "closed", "fragments", "id", "index", "kind", "name", "parts", "status")

    def __init__(self, kind: str, index: int, item: str) -> None:
        self.kind = kind  # "message", "reasoning" or "function_call"
        self.index = index
        self.id = item
        self.closed = False
        self.status = "in_progress"
        self.parts: list[dict[str, Any]] = []  # message: content parts; reasoning: summary parts
        self.blocks: list[Any] = []  # reasoning: provider thinking blocks
        self.call = ""  # function_call: call_id
        self.name = ""
        self.fragments: list[str] = []  # function_call: arguments so far

    def snapshot(self, status: str) -> dict[str, Any]:
        """The item as an output item with ``status``."""
        if self.kind == "message":
            return message_item(self.id, status, [dict(p) for p in self.parts])
        if self.kind == "reasoning":
            summary = [p["text"] for p in self.parts]
            return reasoning_item(self.id, summary, seal_thinking(self.blocks))
        return function_call_item(self.id, status, self.call, self.name, "".join(self.fragments))


class _Tool:
    """One chat tool call (by its ``index``) and its ``function_call`` item once started."""

    __slots__ = ("id", "item", "name", "pending")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.item: _Item | None = None
        self.pending: list[str] = []  # argument fragments that came before the name


class ChatToResponses:
    """Translates one chat chunk stream into Responses API events (a ``FrameTranslator``).

    :param shape: the response's id, creation time, alias and call.
    :ivar final: the Response of ``response.completed`` / ``response.incomplete`` once
        :meth:`close` (or ``[DONE]``) ended the stream; ``None`` before, and after a failure.
    """

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.final: dict[str, Any] | None = None
        self._parser = SSEParser()
        self._sequence = 0
        self._started = False
        self._stopped = False
        self._items: list[_Item] = []
        self._open: _Item | None = None  # the open message or reasoning item
        self._tools: dict[int, _Tool] = {}
        self._call_ids: set[str] = set()
        self._finish: object = None
        self._finished = False
        self._usage: dict[str, Any] | None = None

    # --- FrameTranslator ---------------------------------------------------------------------

    def feed(self, frames: bytes) -> bytes:
        """Responses events for these chat frames (split anywhere: partial frames wait)."""
        out: list[bytes] = []
        try:
            for event in self._parser.feed(frames):
                self._event(event, out)
        except UpstreamFailure as failure:
            failure.pending = b"".join(out) + failure.pending
            raise
        return b"".join(out)

    def close(self) -> bytes:
        """The upstream ended cleanly: close the open items, then ``response.completed``."""
        out: list[bytes] = []
        for event in self._parser.close():
            self._event(event, out)
        self._stop(out)
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        """The end of a stream that failed after it started: an ``error`` event, then
        ``response.failed`` (the items so far, ``incomplete``)."""
        out: list[bytes] = []
        if self._stopped:
            return b""
        self._start(out)
        self._stopped = True
        out.append(error_event(error, self._sequence))
        self._sequence += 1
        failed = response_object(
            self.shape,
            "failed",
            [item.snapshot("incomplete") for item in self._items],
            None,
            error={
                "code": _FAILED_CODES.get(error.status, "server_error"),
                "message": error.message,
            },
        )
        self._emit("response.failed", {"response": failed}, out)
        return b"".join(out)

    # --- upstream events ---------------------------------------------------------------------

    def _event(self, event: SSEEvent, out: list[bytes]) -> None:
        if self._stopped:
            return
        if event.raw:
            logger.debug("responses dialect: a non-SSE line in a chat stream was skipped")
            return
        data = event.data
        if data.strip() == b"[DONE]":
            self._stop(out)
            return
        try:
            chunk = _DECODER.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            logger.debug("responses dialect: an unreadable chat chunk was skipped")
            return
        if chunk.error is not None:
            self._fail(chunk.error)
        if not self._started:
            self._start(out)
        for choice in chunk.choices or ():
            if choice.index not in (0, None):
                continue
            if choice.delta is not None:
                self._delta(choice.delta, out)
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
                self._finished = True
                self._close_open(out, self._item_status())
        if isinstance(chunk.usage, dict):
            self._usage = chunk.usage
        if self._finished and self._usage is not None:
            self._stop(out)

    def _delta(self, delta: _Delta, out: list[bytes]) -> None:
        if (
            delta.reasoning_content is None
            and delta.reasoning is None
            and delta.thinking_blocks is None
            and delta.refusal is None
            and delta.tool_calls is None
        ):  # text only, the usual delta
            text = delta.content
            if isinstance(text, str) and text:
                item = self._open
                if item is not None and item.kind == "message" and item.parts:
                    part = item.parts[-1]
                    if part["type"] == "output_text":  # more of the open text part
                        part["text"] += text
                        out.append(self._text_delta(item, text))
                        return
                self._content_delta("output_text", text, out)
            return
        reasoning = delta.reasoning_content or delta.reasoning
        if isinstance(reasoning, str) and reasoning:
            self._summary_delta(reasoning, out)
        if isinstance(delta.thinking_blocks, list) and delta.thinking_blocks:
            item = self._ensure("reasoning", out)
            item.blocks.extend(delta.thinking_blocks)
        if isinstance(delta.content, str) and delta.content:
            self._content_delta("output_text", delta.content, out)
        if isinstance(delta.refusal, str) and delta.refusal:
            self._content_delta("refusal", delta.refusal, out)
        for call in delta.tool_calls or ():
            self._tool_delta(call, out)

    # --- message and reasoning items -------------------------------------------------------------

    def _ensure(self, kind: str, out: list[bytes]) -> _Item:
        if self._open is not None and self._open.kind == kind:
            return self._open
        self._close_open(out)
        item = self._add(kind, out)
        self._open = item
        return item

    def _summary_delta(self, text: str, out: list[bytes]) -> None:
        item = self._ensure("reasoning", out)
        where = {"item_id": item.id, "output_index": item.index, "summary_index": 0}
        if not item.parts:
            item.parts.append({"type": "summary_text", "text": ""})
            self._emit(
                "response.reasoning_summary_part.added",
                {**where, "part": {"type": "summary_text", "text": ""}},
                out,
            )
        item.parts[0]["text"] += text
        self._emit("response.reasoning_summary_text.delta", {**where, "delta": text}, out)

    def _content_delta(self, kind: str, text: str, out: list[bytes]) -> None:
        item = self._ensure("message", out)
        if not item.parts or item.parts[-1]["type"] != kind:
            self._close_part(item, out)
            part = output_text("") if kind == "output_text" else {"type": "refusal", "refusal": ""}
            item.parts.append(part)
            self._emit("response.content_part.added", {**self._where(item), "part": dict(part)}, out)
        part = item.parts[-1]
        if kind == "output_text":
            part["text"] += text
            self._emit(
                "response.output_text.delta", {**self._where(item), "delta": text, "logprobs": []}, out
            )
        else:
            part["refusal"] += text
            self._emit("response.refusal.delta", {**self._where(item), "delta": text}, out)

    def _text_delta(self, item: _Item, text: str) -> bytes:
        """The ``response.output_text.delta`` frame of ``text`` for the item's last content part
        (what :meth:`_emit` writes for it, built without the dictionaries)."""
        sequence = self._sequence
        self._sequence = sequence + 1
        return b"".join(
            (
                _TEXT_DELTA_HEAD,
                _ENCODE(item.id),
                b',"output_index":',
                str(item.index).encode(),
                b',"content_index":',
                str(len(item.parts) - 1).encode(),
                b',"delta":',
                _ENCODE(text),
                b',"logprobs":[],"sequence_number":',
                str(sequence).encode(),
                b"}\n\n",
            )
        )

    def _where(self, item: _Item) -> dict[str, Any]:
        return {"item_id": item.id, "output_index": item.index, "content_index": len(item.parts) - 1}

    def _close_part(self, item: _Item, out: list[bytes]) -> None:
        if not item.parts:
            return
        part = item.parts[-1]
        where = self._where(item)
        if part["type"] == "output_text":
            self._emit("response.output_text.done", {**where, "text": part["text"], "logprobs": []}, out)
        else:
            self._emit("response.refusal.done", {**where, "refusal": part["refusal"]}, out)
        self._emit("response.content_part.done", {**where, "part": dict(part)}, out)

    def _close_open(self, out: list[bytes], status: str = "completed") -> None:
        item, self._open = self._open, None
        if item is None:
            return
        if item.kind == "message":
            self._close_part(item, out)
        elif item.parts:
            where = {"item_id": item.id, "output_index": item.index, "summary_index": 0}
            text = item.parts[0]["text"]
            self._emit("response.reasoning_summary_text.done", {**where, "text": text}, out)
            self._emit(
                "response.reasoning_summary_part.done",
                {**where, "part": {"type": "summary_text", "text": text}},
                out,
            )
        self._done(item, status, out)

    # --- function call items ---------------------------------------------------------------------

    def _tool_delta(self, call: _ToolDelta, out: list[bytes]) -> None:
        index = self._tool_index(call)
        tool = self._tools.get(index)
        if tool is None:
            tool = self._tools[index] = _Tool()
        if isinstance(call.id, str) and call.id and tool.id is None:
            tool.id = call.id
        function = call.function
        fragment = function.arguments if function is not None else None
        if tool.item is None:
            if function is not None and isinstance(function.name, str):
                tool.name += function.name
            if isinstance(fragment, str) and fragment:
                tool.pending.append(fragment)
            if tool.name:
                self._start_tool(index, tool, out)
            return
        if isinstance(fragment, str) and fragment:
            self._arguments(tool.item, fragment, out)

    def _tool_index(self, call: _ToolDelta) -> int:
        if isinstance(call.index, int) and not isinstance(call.index, bool):
            return call.index
        # no index (some OpenAI-compatible servers): the call with this id, else a new one
        for index, tool in self._tools.items():
            if isinstance(call.id, str) and tool.id == call.id:
                return index
        if (isinstance(call.id, str) and call.id) or not self._tools:
            return max(self._tools, default=-1) + 1
        return max(self._tools)

    def _start_tool(self, index: int, tool: _Tool, out: list[bytes]) -> None:
        self._close_open(out)
        item = _Item("function_call", len(self._items), "")
        item.id = item_id(self.shape.id, "fc", item.index)
        item.call = call_id(tool.id, self.shape.id, index, self._call_ids)
        item.name = tool.name
        self._items.append(item)
        tool.item = item
        self._emit(
            "response.output_item.added",
            {"output_index": item.index, "item": item.snapshot("in_progress")},
            out,
        )
        if tool.pending:
            self._arguments(item, "".join(tool.pending), out)
            tool.pending = []

    def _arguments(self, item: _Item, fragment: str, out: list[bytes]) -> None:
        item.fragments.append(fragment)
        self._emit(
            "response.function_call_arguments.delta",
            {"item_id": item.id, "output_index": item.index, "delta": fragment},
            out,
        )

    # --- items ---------------------------------------------------------------------------------

    def _add(self, kind: str, out: list[bytes]) -> _Item:
        index = len(self._items)
        prefix = "msg" if kind == "message" else "rs"
        item = _Item(kind, index, item_id(self.shape.id, prefix, index))
        self._items.append(item)
        self._emit(
            "response.output_item.added", {"output_index": index, "item": item.snapshot("in_progress")}, out
        )
        return item

    def _done(self, item: _Item, status: str, out: list[bytes]) -> None:
        if item.closed:
            return
        item.closed = True
        item.status = status
        if item.kind == "function_call":
            if not item.fragments:  # a call without arguments: "{}", as a whole answer says
                self._arguments(item, "{}", out)
            self._emit(
                "response.function_call_arguments.done",
                {"item_id": item.id, "output_index": item.index, "arguments": "".join(item.fragments)},
                out,
            )
        self._emit(
            "response.output_item.done", {"output_index": item.index, "item": item.snapshot(status)}, out
        )

    # --- start and end -------------------------------------------------------------------------

    def _emit(self, kind: str, fields: dict[str, Any], out: list[bytes]) -> None:
        payload = {"type": kind, **fields, "sequence_number": self._sequence}
        self._sequence += 1
        out.append(event_frame(kind, _ENCODE(payload)))

    def _start(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        snapshot = response_object(self.shape, "in_progress", [], None)
        self._emit("response.created", {"response": snapshot}, out)
        self._emit("response.in_progress", {"response": snapshot}, out)

    def _item_status(self) -> str:
        """The status of the message or reasoning item the end of the answer closes."""
        return "incomplete" if finish_status(self._finish)[0] == "incomplete" else "completed"

    def _stop(self, out: list[bytes]) -> None:
        if self._stopped:
            return
        self._start(out)
        for index, tool in self._tools.items():  # a call whose name never came: give it one now
            if tool.item is None and (tool.id or any(tool.pending)):
                tool.name = tool.name or "unknown"
                self._start_tool(index, tool, out)
        if not self._items:  # an empty answer is an empty message, as a whole answer says
            self._content_delta("output_text", "", out)
        status, incomplete = finish_status(self._finish)
        self._close_open(out, self._item_status())
        for item in self._items:
            self._done(item, "completed", out)
        self._stopped = True
        output = [item.snapshot(item.status) for item in self._items]
        final = response_object(self.shape, status, output, usage(self._usage), incomplete)
        self._emit(
            "response.completed" if status == "completed" else "response.incomplete", {"response": final}, out
        )
        self.final = final

    def _fail(self, error: object) -> None:
        message = "the upstream failed mid-stream"
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
        elif isinstance(error, str):
            message = error
        raise UpstreamFailure(UpstreamError(status=502, kind="stream", message=message))
