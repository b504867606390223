"""Streams: OpenAI ``chat.completion.chunk`` frames → Anthropic's named SSE events.

The event sequence is Anthropic's (PROVIDERS.md §2.4)::

    message_start
    (content_block_start, content_block_delta+, content_block_stop)*   one block at a time
    message_delta        stop_reason and the usage
    message_stop

- ``message_start`` goes out with the first upstream frame; OpenAI reports no usage before the
  end, so its usage is all zeros and ``message_delta`` carries the real counts (cumulative, as
  Anthropic's do: ``input_tokens``, cache counts and ``output_tokens``).
- Reasoning text (``reasoning_content`` / ``reasoning``) is a ``thinking`` block, text a ``text``
  block, each tool call a ``tool_use`` block; a new block index each time the kind changes. A
  text block never is empty or whitespace-only: whitespace waits for some text to go with it.
- A tool call's block starts when its name is known (OpenAI's first fragment carries the id and
  the name); every ``arguments`` fragment is an ``input_json_delta`` as it arrives, never
  dropped or re-encoded (fragments that came before the name go out just after the start).
- The finish chunk closes the open block but is held: the usage chunk (``choices: []``) comes
  after it. ``message_delta`` and ``message_stop`` go out once both are in, or at ``[DONE]``, or
  when the stream closes, whichever is first. A stream that fails mid-way ends with the
  kernel's ``event: error`` and no ``message_stop``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from loguru import logger
from msgspec import Struct

from truckllm.errors import UpstreamFailure
from truckllm.kit.sse import SSEEvent, SSEParser, event_frame
from truckllm.types import UpstreamError

from .wire import message_id, read_usage, stop_reason, tool_use_id, usage_object

__all__ = ["OpenAIToAnthropic"]


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
    tool_calls: list[_ToolDelta] | None = None


class _Choice(Struct):
    index: Any = 0
    delta: _Delta | None = None
    finish_reason: Any = None


class _Chunk(Struct):
    id: Any = None
    choices: list[_Choice] | None = None
    usage: Any = None
    error: Any = None


_DECODER = msgspec.json.Decoder(_Chunk)
_ENCODE = msgspec.json.encode


class _Tool:
    """One OpenAI tool call (by its ``index``) and its Anthropic block."""

    __slots__ = ("block", "id", "name", "pending")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.block: int | None = None  # the Anthropic block index once started
        self.pending: list[str] = []  # argument fragments that came before the name


class OpenAIToAnthropic:
    """Translates one OpenAI chunk stream into Anthropic events (a ``FrameTranslator``).

    :param model: the ``model`` reported in ``message_start``: the alias the client asked for.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self._parser = SSEParser()
        self._started = False
        self._stopped = False
        self._blocks = 0  # blocks started so far (the next block's index)
        self._open: str | None = None  # "text", "thinking" or "tool"
        self._open_index = -1
        self._tools: dict[int, _Tool] = {}
        self._tool_use = False
        self._finish: object = None
        self._finished = False
        self._usage: dict[str, Any] | None = None
        self._spaces = ""  # whitespace-only text waiting for a text block

    # --- FrameTranslator ---------------------------------------------------------------------

    def feed(self, frames: bytes) -> bytes:
        """Anthropic events for these OpenAI frames (split anywhere: partial frames wait)."""
        out: list[bytes] = []
        try:
            for event in self._parser.feed(frames):
                self._event(event, out)
        except UpstreamFailure as failure:
            failure.pending = b"".join(out) + failure.pending
            raise
        return b"".join(out)

    def close(self) -> bytes:
        """The upstream ended cleanly: close the open block, then ``message_delta`` and ``message_stop``."""
        out: list[bytes] = []
        for event in self._parser.close():
            self._event(event, out)
        self._stop(out)
        return b"".join(out)

    # --- events ------------------------------------------------------------------------------

    def _event(self, event: SSEEvent, out: list[bytes]) -> None:
        if self._stopped:
            return
        if event.raw:
            logger.debug("anthropic dialect: a non-SSE line in an OpenAI stream was skipped")
            return
        data = event.data
        if data.strip() == b"[DONE]":
            self._stop(out)
            return
        try:
            chunk = _DECODER.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            logger.debug("anthropic dialect: an unreadable OpenAI chunk was skipped")
            return
        if chunk.error is not None:
            self._fail(chunk.error)
        self._start(chunk.id, out)
        for choice in chunk.choices or ():
            if choice.index not in (0, None):
                continue
            delta = choice.delta
            if delta is not None:
                self._delta(delta, out)
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
                self._finished = True
                self._close_block(out)
        if isinstance(chunk.usage, dict):
            self._usage = read_usage(chunk.usage)
        if self._finished and self._usage is not None:
            self._stop(out)

    def _delta(self, delta: _Delta, out: list[bytes]) -> None:
        reasoning = delta.reasoning_content or delta.reasoning
        if isinstance(reasoning, str) and reasoning:
            self._ensure("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            self._block_delta({"type": "thinking_delta", "thinking": reasoning}, out)
        text = delta.content if isinstance(delta.content, str) else ""
        if not text and isinstance(delta.refusal, str):
            text = delta.refusal
        if text and self._open != "text":
            # a text block opens only with some non-whitespace: whitespace alone (often sent around
            # tool calls) waits, and is dropped if nothing follows it (Anthropic refuses
            # whitespace-only text blocks when a client sends them back)
            text, self._spaces = self._spaces + text, ""
            if not text.strip():
                self._spaces = text
                text = ""
            else:
                self._ensure("text", {"type": "text", "text": ""}, out)
        if text:
            self._block_delta({"type": "text_delta", "text": text}, out)
        for call in delta.tool_calls or ():
            self._tool_delta(call, out)

    def _tool_delta(self, call: _ToolDelta, out: list[bytes]) -> None:
        index = self._tool_index(call)
        tool = self._tools.get(index)
        if tool is None:
            tool = self._tools[index] = _Tool()
        if isinstance(call.id, str) and call.id and tool.id is None:
            tool.id = call.id
        function = call.function
        fragment = function.arguments if function is not None else None
        if tool.block is None:
            if function is not None and isinstance(function.name, str):
                tool.name += function.name
            if isinstance(fragment, str):
                tool.pending.append(fragment)
            if tool.name:
                self._start_tool(tool, out)
            return
        if isinstance(fragment, str) and fragment:
            self._json_delta(tool.block, fragment, out)

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

    def _start_tool(self, tool: _Tool, out: list[bytes]) -> None:
        self._close_block(out)
        tool.block = self._new_block(
            "tool",
            {"type": "tool_use", "id": tool_use_id(tool.id), "name": tool.name, "input": {}},
            out,
        )
        self._tool_use = True
        if tool.pending:
            self._json_delta(tool.block, "".join(tool.pending), out)
            tool.pending = []

    # --- frames ------------------------------------------------------------------------------

    def _start(self, upstream_id: object, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(upstream_id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_object(0, 0),
        }
        out.append(event_frame("message_start", _ENCODE({"type": "message_start", "message": message})))

    def _ensure(self, kind: str, start: dict[str, Any], out: list[bytes]) -> None:
        if self._open != kind:
            self._close_block(out)
            self._new_block(kind, start, out)

    def _new_block(self, kind: str, start: dict[str, Any], out: list[bytes]) -> int:
        index = self._blocks
        self._blocks += 1
        self._open, self._open_index = kind, index
        out.append(
            event_frame(
                "content_block_start",
                _ENCODE({"type": "content_block_start", "index": index, "content_block": start}),
            )
        )
        return index

    def _block_delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        out.append(
            event_frame(
                "content_block_delta",
                _ENCODE({"type": "content_block_delta", "index": self._open_index, "delta": delta}),
            )
        )

    def _json_delta(self, index: int, fragment: str, out: list[bytes]) -> None:
        delta = {"type": "input_json_delta", "partial_json": fragment}
        out.append(
            event_frame(
                "content_block_delta",
                _ENCODE({"type": "content_block_delta", "index": index, "delta": delta}),
            )
        )

    def _close_block(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        out.append(
            event_frame(
                "content_block_stop", _ENCODE({"type": "content_block_stop", "index": self._open_index})
            )
        )
        self._open = None

    def _stop(self, out: list[bytes]) -> None:
        if self._stopped:
            return
        self._start(None, out)
        for tool in self._tools.values():  # a call whose name never came: give it one now
            if tool.block is None and (tool.id or any(tool.pending)):
                tool.name = tool.name or "unknown"
                self._start_tool(tool, out)
        self._close_block(out)
        self._stopped = True
        usage = self._usage or {"output_tokens": 0}
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self._finish, self._tool_use), "stop_sequence": None},
            "usage": usage,
        }
        out.append(event_frame("message_delta", _ENCODE(delta)))
        out.append(event_frame("message_stop", b'{"type":"message_stop"}'))

    def _fail(self, error: object) -> None:
        message = "the upstream failed mid-stream"
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
        elif isinstance(error, str):
            message = error
        raise UpstreamFailure(UpstreamError(status=502, kind="stream", message=message))
