"""Token counting for clients of other dialects (``POST /v1/messages/count_tokens``).

An Anthropic client's count is passed through (only ``model`` rewritten). A count asked in another
dialect (the Responses API's ``POST /v1/responses/input_tokens``, Gemini's ``:countTokens``...)
reaches this plugin in OpenAI's chat form (``request.typed``): it is translated exactly as a
message would be (:func:`.request.translate`, so the count covers what a chat call would send,
the synthetic JSON tool included), then only the members the count endpoint accepts are kept
(:data:`COUNT_FIELDS`). Anthropic's ``{"input_tokens": N}`` comes back as OpenAI's own count
answer, ``{"object": "response.input_tokens", "input_tokens": N}``, which every inbound dialect
reads.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from .numbers import MAX_TOKENS
from .response import UnreadableAnswer

__all__ = ["COUNT_FIELDS", "count_answer", "count_body"]

COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "output_config")
"""The members of a translated message body that ``count_tokens`` accepts (its
``MessageCountTokensParams``); ``max_tokens``, sampling, ``stop_sequences``, ``metadata`` and
``stream`` are Messages-only and dropped (none of them is part of the prompt)."""


class _Count(Struct):
    input_tokens: int


_DECODER = msgspec.json.Decoder(_Count)
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)  # RecursionError: deep JSON


def count_body(message: dict[str, Any]) -> dict[str, Any]:
    """The ``count_tokens`` body for a translated ``POST /v1/messages`` body (same order)."""
    return {name: message[name] for name in COUNT_FIELDS if name in message}


def count_answer(body: bytes) -> bytes:
    """OpenAI's count answer for Anthropic's ``{"input_tokens": N}``.

    :raises UnreadableAnswer: when ``body`` is not a count (not JSON, no integer
        ``input_tokens``, a count below 0 or above :data:`~.numbers.MAX_TOKENS`).
    """
    try:
        count = _DECODER.decode(body).input_tokens
    except _UNREADABLE as exc:
        raise UnreadableAnswer(str(exc)) from None
    if not 0 <= count <= MAX_TOKENS:
        raise UnreadableAnswer(f"input_tokens {count} is not a token count")
    return msgspec.json.encode({"object": "response.input_tokens", "input_tokens": count})
