"""Token counts through Bedrock's ``CountTokens`` (``POST /model/{modelId}/count-tokens``).

A count asked in OpenAI's typed form (the Anthropic front door's ``count_tokens`` for a model
that is not Claude, the Responses API's ``input_tokens``, Gemini's ``countTokens``) is translated
exactly as a Converse call would be and sent as ``{"input": {"converse": {...}}}`` (only the
members CountTokens takes). An Anthropic client's count for a Claude model is sent as the
InvokeModel body it would make (``{"input": {"invokeModel": {"body": <base64>}}}``). Bedrock's
``{"inputTokens": N}`` comes back as OpenAI's count answer,
``{"object": "response.input_tokens", "input_tokens": N}``, which every inbound dialect reads.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from .response import UnreadableAnswer

__all__ = ["CONVERSE_FIELDS", "MAX_COUNT", "converse_count_body", "count_answer", "invoke_count_body"]

CONVERSE_FIELDS = ("messages", "system", "toolConfig", "additionalModelRequestFields")
"""The members of a Converse body that CountTokens' ``converse`` input takes."""
MAX_COUNT = 10**9
"""A count above this is not believed."""


class _Count(msgspec.Struct):
    inputTokens: int


_DECODER = msgspec.json.Decoder(_Count)


def converse_count_body(converse: dict[str, Any]) -> bytes:
    """The CountTokens body for a translated Converse body."""
    kept = {name: converse[name] for name in CONVERSE_FIELDS if name in converse}
    return msgspec.json.encode({"input": {"converse": kept}})


def invoke_count_body(invoke: bytes) -> bytes:
    """The CountTokens body for an InvokeModel body (Claude's Messages body; ``max_tokens``
    added when the count request has none, as InvokeModel requires it)."""
    fields = msgspec.json.decode(invoke)
    if isinstance(fields, dict) and "max_tokens" not in fields:
        fields["max_tokens"] = 1
        invoke = msgspec.json.encode(fields)
    return msgspec.json.encode({"input": {"invokeModel": {"body": base64.b64encode(invoke).decode()}}})


def count_answer(body: bytes) -> bytes:
    """OpenAI's count answer for Bedrock's ``{"inputTokens": N}``.

    :raises UnreadableAnswer: when ``body`` is not a count.
    """
    try:
        count = _DECODER.decode(body).inputTokens
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
        raise UnreadableAnswer(str(exc)) from None
    if not 0 <= count <= MAX_COUNT:
        raise UnreadableAnswer(f"inputTokens {count} is not a token count")
    return msgspec.json.encode({"object": "response.input_tokens", "input_tokens": count})
