"""A Response (``object: response``) as a chat completion, for a chat client served through
``/responses`` (``api: responses``).

The answer's ``message`` items give the assistant's ``content`` (their ``output_text`` parts) and
``refusal``; its ``function_call`` items the ``tool_calls`` (``call_id`` is the tool call's id);
its ``reasoning`` items' summaries the non-standard ``reasoning_content`` (the convention the
gateway's other providers use). ``finish_reason``: ``tool_calls`` when the model called a tool,
``length`` for an answer cut by ``max_output_tokens``, ``content_filter``, else ``stop``. The id
is the Response's with ``chatcmpl-`` for ``resp_``; ``created`` its ``created_at``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from truckllm.kit.openai_wire import chat_completion, completion_id
from truckllm.types import UpstreamError

from .errors import bad_response, responses_failure
from .usage import ResponsesUsage, convert_responses_usage

__all__ = ["OutputItem", "chat_id", "created_of", "finish_reason", "translate_response"]


class _Part(Struct):
    type: Any = None
    text: Any = None
    refusal: Any = None


class OutputItem(Struct):
    """One item of a Response's ``output`` (the members read here; the rest is skipped)."""

    type: Any = None
    id: Any = None
    call_id: Any = None
    name: Any = None
    arguments: Any = None
    content: list[_Part] | None = None
    summary: list[_Part] | None = None


class _Response(Struct):
    id: Any = None
    object: Any = None
    created_at: Any = None
    model: Any = None
    status: Any = None
    error: Any = None
    incomplete_details: Any = None
    output: list[OutputItem] | None = None
    usage: ResponsesUsage | None = None


_RESPONSE = msgspec.json.Decoder(_Response)


def chat_id(response_id: Any) -> str:
    """The chat completion id for a Response id (``resp_abc`` → ``chatcmpl-abc``)."""
    if not isinstance(response_id, str) or not response_id:
        return completion_id()
    return "chatcmpl-" + response_id.removeprefix("resp_")


def created_of(value: Any) -> int | None:
    """A Response's ``created_at`` as the chat ``created`` (``None`` when it is not a sane time)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if 0 < value < 2**40 else None


def finish_reason(status: Any, incomplete_details: Any, tool_calls: bool) -> str:
    """The chat ``finish_reason`` of a Response that ended with ``status``."""
    if status == "incomplete":
        reason = incomplete_details.get("reason") if isinstance(incomplete_details, dict) else None
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if tool_calls else "stop"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _message(output: list[OutputItem]) -> tuple[dict[str, Any], bool]:
    """The assistant message of a Response's output, and whether it calls tools."""
    texts: list[str] = []
    refusals: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    has_text = False
    for item in output:
        if item.type == "message":
            for part in item.content or ():
                if part.type == "output_text":
                    has_text = True
                    texts.append(_text(part.text))
                elif part.type == "refusal":
                    refusals.append(_text(part.refusal))
        elif item.type == "function_call":
            calls.append(
                {
                    "id": _text(item.call_id) or _text(item.id),
                    "type": "function",
                    "function": {"name": _text(item.name), "arguments": _text(item.arguments)},
                }
            )
        elif item.type == "reasoning":
            reasoning.extend(_text(part.text) for part in item.summary or ())
            reasoning.extend(_text(part.text) for part in item.content or ())
    content = "".join(texts) if has_text else (None if calls or refusals else "")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": "".join(refusals) if refusals else None,
    }
    if calls:
        message["tool_calls"] = calls
    text = "".join(reasoning)
    if text:
        message["reasoning_content"] = text
    return message, bool(calls)


def translate_response(body: bytes, fallback_model: str) -> bytes | UpstreamError:
    """The ``chat.completion`` body for a Response, or the failure the answer is."""
    try:
        answer = _RESPONSE.decode(body)
        if not body.isascii():
            body.decode()
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        if not body.strip():
            return bad_response("upstream answered 2xx with an empty body")
        return bad_response("upstream answered 2xx with JSON that is not a Responses API Response")
    if answer.object != "response":
        return bad_response("upstream answered 2xx with JSON that is not a Responses API Response")
    if answer.status == "failed":
        return responses_failure(answer.error, "server", "upstream response failed")
    message, tool_calls = _message(answer.output or [])
    return chat_completion(
        model=_text(answer.model) or fallback_model,
        choices=[
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(answer.status, answer.incomplete_details, tool_calls),
            }
        ],
        usage=convert_responses_usage(answer.usage) if answer.usage is not None else None,
        response_id=chat_id(answer.id),
        created=created_of(answer.created_at),
    )
