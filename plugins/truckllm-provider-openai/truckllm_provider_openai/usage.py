"""Token counts of the Responses API (``input_tokens``...) in the kernel's sense, and the usage of
any answer this plugin reads: a chat completion, a Response, or a token count."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from truckllm.kit.openai_wire import parse_openai_usage
from truckllm.types import Usage

__all__ = ["ResponsesUsage", "answer_usage", "convert_responses_usage", "parse_responses_usage"]


class _InputDetails(Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _OutputDetails(Struct):
    reasoning_tokens: int | None = None


class ResponsesUsage(Struct):
    """The ``usage`` object of a Response (every member optional, read defensively)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


class _Answer(Struct):
    object: Any = None
    usage: msgspec.Raw = msgspec.Raw()


_ANSWER = msgspec.json.Decoder(_Answer)
_USAGE = msgspec.json.Decoder(ResponsesUsage | None)
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


def _count(value: int | None) -> int:
    return value if value is not None and value > 0 else 0


def convert_responses_usage(raw: ResponsesUsage) -> Usage:
    """:class:`Usage` from a Response's usage: input includes cached, output includes reasoning."""
    prompt = _count(raw.input_tokens)
    completion = _count(raw.output_tokens)
    details = raw.input_tokens_details
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_count(raw.total_tokens) or prompt + completion,
        cached_tokens=_count(details.cached_tokens) if details else 0,
        cache_write_tokens=_count(details.cache_write_tokens) if details else 0,
        reasoning_tokens=_count(raw.output_tokens_details.reasoning_tokens)
        if raw.output_tokens_details
        else 0,
    )


def parse_responses_usage(raw: msgspec.Raw) -> Usage | None:
    """The usage in a Response's raw ``usage`` member; ``None`` when absent, null or unreadable."""
    if not raw:
        return None
    try:
        usage = _USAGE.decode(raw)
    except _UNREADABLE:
        return None
    return convert_responses_usage(usage) if usage is not None else None


def answer_usage(body: bytes, responses: bool, count: bool = False) -> Usage | None:
    """The usage an upstream answer reports.

    :param body: the answer as received.
    :param responses: the request was a Responses API one (the answer is a Response).
    :param count: the request counted tokens (free: nothing was generated).

    A chat answer is read with one decode (the hot path); only one that reports no tokens is
    looked at again, as it may be a Response (a chat request translated for ``/responses``).
    """
    if count:
        return Usage()
    if responses:
        return _response_usage(body)
    usage = parse_openai_usage(body)
    if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
        return usage  # (a Response has a total_tokens too: only these two say it is a chat answer)
    other = _response_usage(body)
    return other if other is not None else usage


def _response_usage(body: bytes) -> Usage | None:
    try:
        answer = _ANSWER.decode(body)
    except _UNREADABLE:
        return None
    return parse_responses_usage(answer.usage) if answer.object == "response" else None
