"""ConverseStream (AWS event stream) → OpenAI ``chat.completion.chunk`` frames.

| Converse event | OpenAI chunk |
|---|---|
| ``messageStart`` | ``delta: {role: assistant, content: ""}`` |
| ``contentBlockDelta.delta.text`` | ``delta.content`` |
| ``contentBlockStart.start.toolUse`` | ``delta.tool_calls[{index, id, type, function: {name}}]`` |
| ``contentBlockDelta.delta.toolUse.input`` | ``delta.tool_calls[{index, function: {arguments}}]`` |
| ``contentBlockDelta.delta.reasoningContent.text`` | ``delta.reasoning_content`` |
| ``contentBlockStop`` of a reasoning block | ``delta.thinking_blocks: [{type, thinking, signature}]`` |
| ``messageStop`` + ``metadata`` | the last chunk's ``finish_reason``, the usage chunk, ``[DONE]`` |
| ``:message-type exception`` | :class:`~truckllm.errors.UpstreamFailure` (classified as an HTTP error) |

A stream that ends before ``metadata``, bytes that are not an event stream (a bad CRC, an
impossible length) or an event of the wrong shape raise ``UpstreamFailure`` at once; frames
decoded before it from the same bytes are its ``pending``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from truckllm.errors import UpstreamFailure
from truckllm.kit.openai_wire import ChunkBuilder, upstream_error
from truckllm.types import RateLimits, Usage

from .errors import classify_exception
from .eventstream import EventMessage
from .reader import EventStreamReader, bad_stream
from .response import TokenUsage, convert_usage, finish_reason, thinking_block

__all__ = ["ConverseStream"]


class _Start(msgspec.Struct):
    toolUseId: str
    name: str


class _StartBlock(msgspec.Struct):
    toolUse: _Start | None = None


class _ToolDelta(msgspec.Struct):
    input: str = ""


class _ReasoningDelta(msgspec.Struct):
    text: str | None = None
    signature: str | None = None
    redactedContent: str | None = None


class _Delta(msgspec.Struct):
    text: str | None = None
    toolUse: _ToolDelta | None = None
    reasoningContent: _ReasoningDelta | None = None


class _Event(msgspec.Struct):
    contentBlockIndex: int = 0
    start: _StartBlock | None = None
    delta: _Delta | None = None
    stopReason: str | None = None
    usage: TokenUsage | None = None


_EVENT = msgspec.json.Decoder(_Event)
_KNOWN = frozenset(
    {"messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"}
)


class _Block:
    """What a content block has streamed so far."""

    __slots__ = ("arguments", "reasoning", "redacted", "signature", "tool")

    def __init__(self) -> None:
        self.tool: int | None = None
        self.arguments = False
        self.reasoning: list[str] = []
        self.signature: str | None = None
        self.redacted: str | None = None


class ConverseStream(EventStreamReader):
    """Translates one ConverseStream answer into OpenAI chunks.

    :param model: the ``model`` the chunks report.
    :param include_usage: the client asked for the final usage chunk.
    :param limits: rate-limit state read from the response headers.
    """

    dialect = "openai"
    last_event = "its metadata event"

    def __init__(self, *, model: str, include_usage: bool, limits: RateLimits | None = None) -> None:
        self.usage: Usage | None = None
        self.limits = limits
        super().__init__()
        self._chunks = ChunkBuilder(model, include_usage)
        self._started = False
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._stop: str | None = None
        self._metadata = False

    # --- events ---------------------------------------------------------------------------------

    def _message(self, message: EventMessage, out: list[bytes]) -> None:
        headers = message.headers
        kind = headers.get(":message-type", "event")
        if kind == "exception":
            raise UpstreamFailure(classify_exception(headers.get(":exception-type", ""), message.payload))
        if kind == "error":
            code = headers.get(":error-code", "error")
            raise UpstreamFailure(
                upstream_error(502, f"{code}: {headers.get(':error-message', '')}", kind="server")
            )
        name = headers.get(":event-type", "")
        if name not in _KNOWN:
            return  # an event type added after this plugin was written
        self._seen = True
        try:
            event = _EVENT.decode(message.payload)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
            raise bad_stream(f"Bedrock sent an unreadable {name} event ({exc})") from None
        if name == "messageStart":
            self._start(out)
        elif name == "contentBlockStart":
            self._block_start(event, out)
        elif name == "contentBlockDelta":
            self._block_delta(event, out)
        elif name == "contentBlockStop":
            self._block_stop(event, out)
        elif name == "messageStop":
            self._stop = event.stopReason or "end_turn"
        else:
            self.usage = convert_usage(event.usage) or Usage()
            self._metadata = True
        if self._stop is not None and self._metadata:
            self._finish(out)

    def _start(self, out: list[bytes]) -> None:
        if not self._started:
            self._started = True
            out.append(self._chunks.delta({"role": "assistant", "content": ""}))

    def _emit(self, out: list[bytes], delta: dict[str, Any]) -> None:
        self._start(out)
        out.append(self._chunks.delta(delta))

    def _block(self, index: int) -> _Block:
        block = self._blocks.get(index)
        if block is None:
            block = self._blocks[index] = _Block()
        return block

    def _block_start(self, event: _Event, out: list[bytes]) -> None:
        start = event.start.toolUse if event.start is not None else None
        if start is None:
            return
        block = self._block(event.contentBlockIndex)
        block.tool = self._tools
        self._tools += 1
        call = {
            "index": block.tool,
            "id": start.toolUseId,
            "type": "function",
            "function": {"name": start.name, "arguments": ""},
        }
        self._emit(out, {"tool_calls": [call]})

    def _block_delta(self, event: _Event, out: list[bytes]) -> None:
        delta = event.delta
        if delta is None:
            return
        block = self._block(event.contentBlockIndex)
        if delta.text is not None:
            if delta.text:
                self._emit(out, {"content": delta.text})
        elif delta.toolUse is not None:
            if block.tool is None:
                raise bad_stream("Bedrock streamed tool input before its contentBlockStart")
            if delta.toolUse.input:
                block.arguments = True
                self._emit(
                    out,
                    {"tool_calls": [{"index": block.tool, "function": {"arguments": delta.toolUse.input}}]},
                )
        elif delta.reasoningContent is not None:
            reasoning = delta.reasoningContent
            if reasoning.text:
                block.reasoning.append(reasoning.text)
                self._emit(out, {"reasoning_content": reasoning.text})
            if reasoning.signature is not None:
                block.signature = (block.signature or "") + reasoning.signature
            if reasoning.redactedContent is not None:
                block.redacted = reasoning.redactedContent

    def _block_stop(self, event: _Event, out: list[bytes]) -> None:
        block = self._blocks.get(event.contentBlockIndex)
        if block is None:
            return
        if block.tool is not None and not block.arguments:
            block.arguments = True
            self._emit(out, {"tool_calls": [{"index": block.tool, "function": {"arguments": "{}"}}]})
        elif block.reasoning or block.signature:
            self._emit(out, {"thinking_blocks": [thinking_block("".join(block.reasoning), block.signature)]})
        elif block.redacted is not None:
            self._emit(out, {"thinking_blocks": [{"type": "redacted_thinking", "data": block.redacted}]})
        block.reasoning, block.signature, block.redacted = [], None, None

    def _finish(self, out: list[bytes]) -> None:
        self._start(out)
        finish = finish_reason(self._stop)
        if finish == "tool_calls" and not self._tools:
            finish = "stop"
        out.append(self._chunks.delta({}, finish_reason=finish))
        out.append(self._chunks.usage(self.usage or Usage()))
        out.append(self._chunks.done())
        self.done = True
