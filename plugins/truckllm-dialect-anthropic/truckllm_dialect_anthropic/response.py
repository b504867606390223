"""Whole answers: OpenAI ``chat.completion`` → Anthropic ``Message`` (and token counts).

The answer is read leniently (a field of an unexpected type is treated as absent): the upstream
already answered 200 and its provider plugin already checked it.
"""

from __future__ import annotations

from typing import Any

import msgspec
from loguru import logger

from truckllm.errors import GatewayError

from .wire import message_id, parse_arguments, read_usage, stop_reason, tool_use_id, usage_object

__all__ = ["count_tokens_body", "message_body"]


def _decode(body: bytes, what: str) -> dict[str, Any]:
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # RecursionError: deep JSON
        decoded = None
    if not isinstance(decoded, dict):
        raise GatewayError(502, f"the upstream's {what} could not be read", type="server_error")
    return decoded


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts (some OpenAI-compatible servers)
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def message_body(body: bytes, model: str) -> bytes:
    """An OpenAI ``chat.completion`` body as an Anthropic ``Message`` body.

    :param body: the OpenAI answer.
    :param model: the ``model`` to report: the alias the client asked for.
    """
    answer = _decode(body, "answer")
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _text(message.get("content"))
    refusal = message.get("refusal")
    refused = not text and isinstance(refusal, str) and bool(refusal)
    if refused:  # the refusal's explanation is the answer's text
        text = str(refusal)
    if text.strip():  # never an empty (or whitespace-only) text block
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        name = function.get("name")
        arguments, valid = parse_arguments(function.get("arguments"))
        if not valid:
            # the name is upstream text: it is not written to the log (only scrubbed errors are)
            logger.warning("a tool call's arguments from the upstream are not a JSON object; sent as {}")
        content.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call.get("id")),
                "name": name if isinstance(name, str) else "",
                "input": arguments,
            }
        )
    has_tool_use = any(block["type"] == "tool_use" for block in content)
    finish = choice.get("finish_reason")
    if refused and finish != "length":
        finish = "content_filter"
    usage = read_usage(answer.get("usage")) or usage_object(0, 0)
    return msgspec.json.encode(
        {
            "id": message_id(answer.get("id")),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason(finish, has_tool_use),
            "stop_sequence": None,
            "usage": usage,
        }
    )


def count_tokens_body(body: bytes) -> bytes:
    """A token count in any provider's words as Anthropic's ``{"input_tokens": N}``.

    Accepts ``input_tokens`` (Anthropic), ``prompt_tokens`` or ``usage.prompt_tokens`` (OpenAI
    style) and ``totalTokens`` (Gemini's ``countTokens``).
    """
    answer = _decode(body, "token count")
    usage = answer.get("usage")
    for value in (
        answer.get("input_tokens"),
        answer.get("prompt_tokens"),
        usage.get("prompt_tokens") if isinstance(usage, dict) else None,
        answer.get("totalTokens"),
    ):
        if isinstance(value, int) and not isinstance(value, bool):
            return msgspec.json.encode({"input_tokens": value})
    raise GatewayError(502, "the upstream's token count could not be read", type="server_error")
