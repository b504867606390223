"""Bedrock Converse answers → OpenAI ``chat.completion`` bodies (pure).

Text blocks join into ``content``; ``toolUse`` blocks are ``tool_calls`` (arguments as JSON
text); ``reasoningContent`` is ``reasoning_content`` and, to be sent back in a later turn,
``thinking_blocks`` (``{"type": "thinking", "thinking", "signature"}`` or
``{"type": "redacted_thinking", "data"}``, the Anthropic provider's shape).
"""

from __future__ import annotations

from typing import Any

import msgspec

from truckllm.kit.openai_wire import chat_completion
from truckllm.types import Usage

__all__ = [
    "FINISH_REASONS",
    "UnreadableAnswer",
    "convert_usage",
    "finish_reason",
    "parse_usage_body",
    "translate_answer",
]

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
"""Converse ``stopReason`` → OpenAI ``finish_reason`` (anything else: ``stop``)."""


class UnreadableAnswer(ValueError):
    """A 2xx body that is not a Converse answer."""


class TokenUsage(msgspec.Struct):
    """Converse ``usage`` (``inputTokens`` excludes the cached tokens read and written)."""

    inputTokens: int = 0
    outputTokens: int = 0
    totalTokens: int = 0
    cacheReadInputTokens: int = 0
    cacheWriteInputTokens: int = 0


class _ReasoningText(msgspec.Struct):
    text: str = ""
    signature: str | None = None


class _Reasoning(msgspec.Struct):
    reasoningText: _ReasoningText | None = None
    redactedContent: str | None = None


class _ToolUse(msgspec.Struct):
    toolUseId: str
    name: str
    input: msgspec.Raw = msgspec.Raw(b"{}")


class _Block(msgspec.Struct):
    text: str | None = None
    toolUse: _ToolUse | None = None
    reasoningContent: _Reasoning | None = None


class _Message(msgspec.Struct):
    content: list[_Block]
    role: str = "assistant"


class _Output(msgspec.Struct):
    message: _Message


class _Answer(msgspec.Struct):
    output: _Output
    stopReason: str = "end_turn"
    usage: TokenUsage | None = None


_ANSWER = msgspec.json.Decoder(_Answer)
_USAGE_ONLY = msgspec.json.Decoder(dict[str, Any])


def finish_reason(stop_reason: str | None) -> str:
    """OpenAI's ``finish_reason`` for a Converse ``stopReason``."""
    return FINISH_REASONS.get(stop_reason or "", "stop")


def convert_usage(usage: TokenUsage | None) -> Usage | None:
    """:class:`Usage` in OpenAI's sense: the prompt counts the cached tokens read and written
    (a negative count, which no upstream should send, is read as 0)."""
    if usage is None:
        return None
    fresh, output = max(0, usage.inputTokens), max(0, usage.outputTokens)
    read, written = max(0, usage.cacheReadInputTokens), max(0, usage.cacheWriteInputTokens)
    prompt = fresh + read + written
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        total_tokens=prompt + output,
        cached_tokens=read,
        cache_write_tokens=written,
    )


def _read(body: bytes) -> _Answer:
    try:
        return _ANSWER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
        raise UnreadableAnswer(str(exc)) from None


def parse_usage_body(body: bytes) -> Usage | None:
    """The usage of a Converse answer; ``None`` when the body is not one."""
    try:
        return convert_usage(_read(body).usage)
    except UnreadableAnswer:
        return None


def thinking_block(text: str, signature: str | None) -> dict[str, Any]:
    """A reasoning block as clients send it back (``thinking_blocks``)."""
    return {"type": "thinking", "thinking": text, "signature": signature or ""}


def translate_answer(body: bytes, *, model: str) -> bytes:
    """The OpenAI ``chat.completion`` for a Converse answer to ``model``.

    :raises UnreadableAnswer: when ``body`` is not a Converse answer.
    """
    answer = _read(body)
    texts: list[str] = []
    reasoning: list[str] = []
    blocks: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in answer.output.message.content:
        if block.text is not None:
            texts.append(block.text)
        elif block.toolUse is not None:
            use = block.toolUse
            arguments = msgspec.json.encode(msgspec.json.decode(use.input)).decode()  # compact JSON
            calls.append(
                {
                    "id": use.toolUseId,
                    "type": "function",
                    "function": {"name": use.name, "arguments": arguments},
                }
            )
        elif block.reasoningContent is not None:
            content = block.reasoningContent
            if content.reasoningText is not None:
                reasoning.append(content.reasoningText.text)
                blocks.append(thinking_block(content.reasoningText.text, content.reasoningText.signature))
            elif content.redactedContent is not None:
                blocks.append({"type": "redacted_thinking", "data": content.redactedContent})
    finish = finish_reason(answer.stopReason)
    if finish == "tool_calls" and not calls:
        finish = "stop"
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        reply["tool_calls"] = calls
    if reasoning:
        reply["reasoning_content"] = "".join(reasoning)
    if blocks:
        reply["thinking_blocks"] = blocks
    choice = {"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}
    return chat_completion(model=model, choices=[choice], usage=convert_usage(answer.usage))
