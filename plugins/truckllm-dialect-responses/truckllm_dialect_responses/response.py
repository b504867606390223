"""Whole answers: OpenAI ``chat.completion`` → a Responses API ``Response`` object (and token
counts).

A :class:`Shape` says what the gateway decided about the response (its id, when it was made, the
alias the client asked for, the call it answers); :func:`response_object` builds the Response
around a list of output items, echoing the call's parameters as OpenAI does (the stream
translator builds its lifecycle events with it too). :func:`response_from_chat` reads a chat
answer (leniently: a field of an unexpected type is treated as absent, the upstream already
answered 200 and its provider plugin checked it).
"""

from __future__ import annotations

from typing import Any

import msgspec

from truckllm.errors import GatewayError

from .request import ResponsesCall
from .wire import call_id, finish_status, item_id, seal_thinking, usage

__all__ = [
    "Shape",
    "count_from_chat",
    "function_call_item",
    "message_item",
    "output_text",
    "reasoning_item",
    "response_from_chat",
    "response_object",
]

_SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast", "ultrafast")


class Shape(msgspec.Struct, frozen=True, kw_only=True):
    """What the gateway decided about one response.

    :ivar id: the response id (``resp_...``); item ids derive from it.
    :ivar created_at: Unix seconds when the request came in.
    :ivar alias: the ``model`` to report: the alias the client asked for.
    :ivar call: the request being answered (its parameters are echoed).
    :ivar completed_at: Unix seconds when the answer was complete (default ``created_at``).
    """

    id: str
    created_at: int
    alias: str
    call: ResponsesCall
    completed_at: int | None = None


def _echo_text(text: object) -> dict[str, Any]:
    given = text if isinstance(text, dict) else {}
    fmt = given.get("format")
    return {
        "format": fmt if isinstance(fmt, dict) else {"type": "text"},
        "verbosity": given.get("verbosity") or "medium",
    }


def _echo_reasoning(reasoning: object) -> dict[str, Any]:
    given = reasoning if isinstance(reasoning, dict) else {}
    return {"effort": given.get("effort"), "summary": given.get("summary")}


def _or(value: object, default: object) -> object:
    return default if value is None else value


def response_object(
    shape: Shape,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete_details: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Response object: ``output`` and ``usage`` around the echo of the call's parameters.

    :param status: ``in_progress``, ``completed``, ``incomplete`` or ``failed``.
    :param output: the output items.
    :param usage: the Responses ``usage`` object (``None`` while in progress).
    :param incomplete_details: ``{"reason": ...}`` for an ``incomplete`` response.
    :param error: ``{"code", "message"}`` for a ``failed`` one.
    """
    fields = shape.call.fields
    tier = fields.get("service_tier")
    done = status in ("completed", "incomplete", "failed")
    completed_at = shape.completed_at if shape.completed_at is not None else shape.created_at
    return {
        "id": shape.id,
        "object": "response",
        "created_at": shape.created_at,
        "status": status,
        "background": shape.call.background,
        "completed_at": completed_at if status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": shape.call.instructions,
        "max_output_tokens": fields.get("max_output_tokens"),
        "max_tool_calls": fields.get("max_tool_calls"),
        "model": shape.alias,
        "output": output,
        "parallel_tool_calls": _or(fields.get("parallel_tool_calls"), True),
        "previous_response_id": shape.call.previous_response_id,
        "prompt_cache_key": fields.get("prompt_cache_key"),
        "reasoning": _echo_reasoning(fields.get("reasoning")),
        "safety_identifier": fields.get("safety_identifier"),
        "service_tier": tier if tier in _SERVICE_TIERS and tier != "auto" else "default",
        "store": shape.call.store,
        "temperature": _or(fields.get("temperature"), 1.0),
        "text": _echo_text(fields.get("text")),
        "tool_choice": _or(fields.get("tool_choice"), "auto"),
        "tools": _or(fields.get("tools"), []),
        "top_logprobs": _or(fields.get("top_logprobs"), 0),
        "top_p": _or(fields.get("top_p"), 1.0),
        "truncation": _or(fields.get("truncation"), "disabled"),
        "usage": usage if done else None,
        "user": fields.get("user"),
        "metadata": _or(fields.get("metadata"), {}),
    }


# --- output items -----------------------------------------------------------------------------


def output_text(text: str) -> dict[str, Any]:
    """An ``output_text`` content part."""
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def message_item(item: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    """An assistant ``message`` output item."""
    return {"id": item, "type": "message", "status": status, "content": content, "role": "assistant"}


def function_call_item(item: str, status: str, call: str, name: str, arguments: str) -> dict[str, Any]:
    """A ``function_call`` output item (``item`` is its ``fc_`` id, ``call`` the ``call_id``)."""
    return {
        "id": item,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call,
        "name": name,
    }


def reasoning_item(item: str, summary: list[str], encrypted: str | None) -> dict[str, Any]:
    """A ``reasoning`` output item; ``encrypted`` is :func:`~.wire.seal_thinking`'s content."""
    body: dict[str, Any] = {
        "id": item,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text} for text in summary],
    }
    if encrypted is not None:
        body["encrypted_content"] = encrypted
    return body


# --- chat answers -----------------------------------------------------------------------------


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


def response_from_chat(chat_body: bytes, shape: Shape) -> dict[str, Any]:
    """The Response object for a ``chat.completion`` answer.

    Output items, in order: one ``reasoning`` item (the answer's ``reasoning_content`` as its
    summary, its ``thinking_blocks`` sealed in ``encrypted_content``), one ``message`` (its text
    and refusal; also when the answer is empty and has no tool call), one ``function_call`` per
    tool call (``call_id`` = the tool call's id, ``arguments`` as sent, ``"{}"`` when empty).
    ``finish_reason`` ``length`` and ``content_filter`` make it ``incomplete``.

    :raises GatewayError: 502 when the body is not a JSON object.
    """
    answer = _decode(chat_body, "answer")
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    status, incomplete = finish_status(choice.get("finish_reason"))
    item_status = "incomplete" if status == "incomplete" else "completed"
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    blocks = message.get("thinking_blocks")
    sealed = seal_thinking(blocks) if isinstance(blocks, list) else None
    if (isinstance(reasoning, str) and reasoning) or sealed is not None:
        summary = [reasoning] if isinstance(reasoning, str) and reasoning else []
        output.append(reasoning_item(item_id(shape.id, "rs", len(output)), summary, sealed))
    text = _text(message.get("content"))
    refusal = message.get("refusal")
    calls = message.get("tool_calls")
    calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    content: list[dict[str, Any]] = []
    if text:
        content.append(output_text(text))
    if isinstance(refusal, str) and refusal:
        content.append({"type": "refusal", "refusal": refusal})
    if content or not calls:
        if not content:
            content.append(output_text(""))
        output.append(message_item(item_id(shape.id, "msg", len(output)), item_status, content))
    taken: set[str] = set()
    for n, call in enumerate(calls):
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        name = function.get("name")
        arguments = function.get("arguments")
        arguments = arguments if isinstance(arguments, str) and arguments else "{}"
        output.append(
            function_call_item(
                item_id(shape.id, "fc", len(output)),
                "completed",
                call_id(call.get("id"), shape.id, n, taken),
                name if isinstance(name, str) else "",
                arguments,
            )
        )
    return response_object(shape, status, output, usage(answer.get("usage")), incomplete)


def count_from_chat(body: bytes) -> bytes:
    """A token count in any provider's words as ``{"object": "response.input_tokens",
    "input_tokens": N}``.

    Accepts ``input_tokens`` (Anthropic, OpenAI's own count), ``prompt_tokens`` or
    ``usage.prompt_tokens`` (OpenAI style) and ``totalTokens`` (Gemini's ``countTokens``).

    :raises GatewayError: 502 when no count can be read.
    """
    answer = _decode(body, "token count")
    counted = answer.get("usage")
    for value in (
        answer.get("input_tokens"),
        answer.get("prompt_tokens"),
        counted.get("prompt_tokens") if isinstance(counted, dict) else None,
        answer.get("totalTokens"),
    ):
        if isinstance(value, int) and not isinstance(value, bool):
            return msgspec.json.encode({"object": "response.input_tokens", "input_tokens": value})
    raise GatewayError(502, "the upstream's token count could not be read", type="server_error")
