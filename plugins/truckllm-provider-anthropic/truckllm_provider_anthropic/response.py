"""Anthropic Messages answer → OpenAI ``chat.completion`` / ``text_completion`` (§4.3, §4.4)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from msgspec import Raw, Struct

from truckllm.kit.openai_wire import chat_completion, completion_id, usage_object
from truckllm.types import Usage

from .numbers import token_count
from .request import JSON_TOOL

__all__ = [
    "FINISH_REASONS",
    "AnthropicUsage",
    "UnreadableAnswer",
    "check_answer",
    "compact_json",
    "convert_usage",
    "finish_reason",
    "parse_usage_body",
    "response_id",
    "translate_message",
]

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
}
"""Anthropic ``stop_reason`` → OpenAI ``finish_reason`` (PROVIDERS.md §4.3); anything else is ``stop``."""


class AnthropicUsage(Struct):
    """Anthropic's ``usage`` object (``input_tokens`` excludes cache reads and writes).

    The counts are read as any JSON value and made sane by :func:`convert_usage`: a hostile or
    broken count (``-1000000``, ``1e30``, ``"12"``) must not fail a good answer, nor refund a budget.
    """

    input_tokens: Any = None
    output_tokens: Any = None
    cache_creation_input_tokens: Any = None
    cache_read_input_tokens: Any = None
    output_tokens_details: Any = None


class _Block(Struct, kw_only=True):
    type: str  # a content block without a type is not an Anthropic block
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Raw = Raw()
    thinking: str | None = None


class _Message(Struct, kw_only=True):
    type: str
    content: list[Raw]
    id: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    usage: AnthropicUsage | None = None


class _TokenCount(Struct):
    input_tokens: int


class _WithUsage(Struct):
    usage: AnthropicUsage | None = None


_MESSAGE_DECODER = msgspec.json.Decoder(_Message)
_BLOCK_DECODER = msgspec.json.Decoder(_Block)
_USAGE_DECODER = msgspec.json.Decoder(_WithUsage)
_COUNT_DECODER = msgspec.json.Decoder(_TokenCount)
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)  # RecursionError: deep JSON


class UnreadableAnswer(Exception):
    """A 2xx body that is not an Anthropic message (or token count)."""


def convert_usage(usage: AnthropicUsage | None) -> Usage | None:
    """OpenAI-sense :class:`Usage` from Anthropic's (prompt = input + cache read + cache write)."""
    if usage is None:
        return None
    fresh = token_count(usage.input_tokens)
    read = token_count(usage.cache_read_input_tokens)
    write = token_count(usage.cache_creation_input_tokens)
    output = token_count(usage.output_tokens)
    details = usage.output_tokens_details
    prompt = fresh + read + write
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        total_tokens=prompt + output,
        cached_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=token_count(details.get("thinking_tokens")) if isinstance(details, dict) else 0,
    )


def parse_usage_body(body: bytes) -> Usage | None:
    """The usage of an Anthropic message body, ``None`` when absent or unreadable."""
    try:
        return convert_usage(_USAGE_DECODER.decode(body).usage)
    except _UNREADABLE:
        return None


def finish_reason(stop_reason: str | None) -> str:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason``."""
    return FINISH_REASONS.get(stop_reason or "", "stop")


def response_id(message_id: str | None, prefix: str = "chatcmpl-") -> str:
    """``chatcmpl-<suffix of msg_...>``: the upstream id stays traceable; a fresh one without it."""
    if not message_id:
        return completion_id(prefix)
    return prefix + message_id.removeprefix("msg_")


def tool_call_id(block_id: str | None, message_id: str | None, index: int) -> str:
    """The tool call's id: Anthropic's, or for a block without one, ``toolu_<message>_<index>``
    (the same whether the answer was streamed or not, however its bytes were cut; a fresh id
    only when the message has no id either)."""
    if block_id:
        return block_id
    if message_id:
        return f"toolu_{message_id.removeprefix('msg_')}_{index}"
    return completion_id("toolu_")


def compact_json(raw: Raw) -> str:
    """A tool input as OpenAI ``arguments``: compact JSON text (``{}`` when absent or null).

    :raises msgspec.DecodeError: for invalid UTF-8 inside ``raw`` (skipped, not checked, by the
        first decode).
    """
    if not raw:
        return "{}"
    value = msgspec.json.decode(raw)
    return "{}" if value is None else msgspec.json.encode(value).decode()


def _checked(raw: Raw) -> Raw:
    """``raw`` after checking that all of it is valid JSON text (it is passed on byte for byte)."""
    msgspec.json.decode(raw)
    return raw


_Parts = tuple[list[str], list[str], list[Raw], list[dict[str, Any]], str | None]


def _read_blocks(content: list[Raw], json_tool: bool, message_id: str | None) -> _Parts:
    """(texts, thinking texts, raw thinking blocks, tool calls, the JSON tool's answer)."""
    texts: list[str] = []
    thinking: list[str] = []
    thinking_blocks: list[Raw] = []
    tool_calls: list[dict[str, Any]] = []
    json_answer: str | None = None
    for index, raw in enumerate(content):
        block = _BLOCK_DECODER.decode(raw)
        if block.type == "text":
            texts.append(block.text or "")
        elif block.type == "tool_use":
            if json_tool and block.name == JSON_TOOL:
                json_answer = compact_json(block.input)
                continue
            tool_calls.append(
                {
                    "id": tool_call_id(block.id, message_id, index),
                    "type": "function",
                    "function": {"name": block.name or "", "arguments": compact_json(block.input)},
                }
            )
        elif block.type == "thinking":
            thinking.append(block.thinking or "")
            thinking_blocks.append(_checked(raw))
        elif block.type == "redacted_thinking":
            thinking_blocks.append(_checked(raw))
    return texts, thinking, thinking_blocks, tool_calls, json_answer


def _read_message(body: bytes, json_tool: bool) -> tuple[_Message, _Parts]:
    """The message and what its blocks say; :class:`UnreadableAnswer` when it is not a message."""
    try:
        message = _MESSAGE_DECODER.decode(body)
        if message.type != "message":
            raise UnreadableAnswer("the answer's type is not 'message'")
        return message, _read_blocks(message.content, json_tool, message.id)
    except _UNREADABLE as exc:
        raise UnreadableAnswer(str(exc)) from None


def check_answer(body: bytes, endpoint: str) -> None:
    """Check that a 2xx body passed through to an Anthropic client is what it claims to be: a
    message (every block readable), or ``{"input_tokens": n}`` for ``count_tokens``.

    :raises UnreadableAnswer: when it is not.
    """
    if endpoint == "count_tokens":
        try:
            _COUNT_DECODER.decode(body)
        except _UNREADABLE as exc:
            raise UnreadableAnswer(str(exc)) from None
        return
    _read_message(body, json_tool=False)


def translate_message(body: bytes, *, endpoint: str, json_tool: bool, fallback_model: str) -> bytes:
    """The OpenAI response body for a successful Anthropic message.

    :param body: the upstream body.
    :param endpoint: ``chat`` or ``completions``.
    :param json_tool: the request used the synthetic JSON tool; its input becomes the content.
    :param fallback_model: the ``model`` to report when the answer names none.
    :raises UnreadableAnswer: when ``body`` is not an Anthropic message (not JSON, not
        ``type: message``, no ``content`` list, a block of the wrong shape).
    """
    message, parts = _read_message(body, json_tool)
    texts, thinking, thinking_blocks, tool_calls, json_answer = parts
    finish = finish_reason(message.stop_reason)
    if finish == "tool_calls" and not tool_calls:
        finish = "stop"  # the JSON tool answered: a plain answer for the client
    usage = convert_usage(message.usage)
    model = message.model or fallback_model
    if endpoint == "completions":
        return _text_completion(message.id, model, "".join(texts), finish, usage)
    content: str | None
    if json_answer is not None:
        content = json_answer
    elif texts or not tool_calls:
        content = "".join(texts)
    else:
        content = None
    reply: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    if thinking:
        reply["reasoning_content"] = "".join(thinking)
    if thinking_blocks:
        reply["thinking_blocks"] = thinking_blocks
    choice = {"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}
    return chat_completion(model=model, choices=[choice], usage=usage, response_id=response_id(message.id))


def _text_completion(
    message_id: str | None, model: str, text: str, finish: str, usage: Usage | None
) -> bytes:
    body: dict[str, Any] = {
        "id": response_id(message_id, "cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "text": text,
                "index": 0,
                "logprobs": None,
                "finish_reason": "stop" if finish == "tool_calls" else finish,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage_object(usage)
    return msgspec.json.encode(body)
