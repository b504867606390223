"""Token counting for clients of other dialects (``models/{model}:countTokens``).

A Gemini client's count is passed through. A count asked in another dialect (the Responses API's
``POST /v1/responses/input_tokens``, Anthropic's ``POST /v1/messages/count_tokens``...) reaches
this plugin in OpenAI's chat form (``request.typed``): it is translated exactly as a
``generateContent`` call would be, and sent whole as ``generateContentRequest`` (with the
``model`` that form requires), so that the system instruction, tools and configuration are counted
too: ``contents`` alone would count the messages only. Gemini's ``{"totalTokens": N}`` comes back
as OpenAI's own count answer, ``{"object": "response.input_tokens", "input_tokens": N}``, which
every inbound dialect reads.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from truckllm.types import ProviderResult

from .errors import bad_response, status_error
from .numbers import MAX_TOKENS
from .urls import model_resource

__all__ = ["count_answer", "count_body"]


class _Count(Struct, rename="camel"):
    total_tokens: Any = 0  # proto3 JSON leaves a zero count out
    error: Any = None


_DECODER = msgspec.json.Decoder(_Count)
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)  # RecursionError: deep JSON


def count_body(generate: dict[str, Any], model: str) -> dict[str, Any]:
    """The ``CountTokensRequest`` for a translated ``GenerateContentRequest``.

    :raises UnsupportedRequest: when ``model`` cannot be a Gemini model name.
    """
    return {"generateContentRequest": {"model": model_resource(model), **generate}}


def count_answer(body: bytes) -> ProviderResult:
    """OpenAI's count answer for a ``CountTokensResponse``; the error a 2xx body carries, or
    ``bad_response`` when it is not a count (not a JSON object, ``totalTokens`` not an integer in
    ``[0, MAX_TOKENS]``)."""
    try:
        answer = _DECODER.decode(body)
    except _UNREADABLE:
        return ProviderResult(error=bad_response("a body that is not a CountTokensResponse"))
    if answer.error is not None:
        error = answer.error if isinstance(answer.error, dict) else {"message": str(answer.error)}
        return ProviderResult(error=status_error(200, error, "Gemini reported an error"))
    total = answer.total_tokens
    if type(total) is not int or not 0 <= total <= MAX_TOKENS:
        return ProviderResult(error=bad_response("a totalTokens that is not a token count"))
    counted = {"object": "response.input_tokens", "input_tokens": total}
    return ProviderResult(body=msgspec.json.encode(counted))
