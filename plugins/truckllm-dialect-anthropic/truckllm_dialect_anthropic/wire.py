"""Small pieces of Anthropic's wire format shared by the answer and stream translators."""

from __future__ import annotations

import re
import secrets
from typing import Any

import msgspec

__all__ = [
    "message_id",
    "parse_arguments",
    "read_usage",
    "stop_reason",
    "tool_use_id",
    "usage_object",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_PREFIXES = ("chatcmpl-", "chatcmpl_", "cmpl-")


def message_id(upstream_id: object) -> str:
    """``msg_<...>`` from an upstream response id (``chatcmpl-abc`` → ``msg_abc``), else random."""
    text = upstream_id if isinstance(upstream_id, str) else ""
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    text = _UNSAFE.sub("_", text)[:64]
    return "msg_" + (text or secrets.token_hex(12))


def tool_use_id(call_id: object) -> str:
    """A tool call id Anthropic accepts back (``[A-Za-z0-9_-]+``): unsafe characters become ``_``;
    a missing id becomes a fresh ``toolu_<hex>``."""
    text = _UNSAFE.sub("_", call_id) if isinstance(call_id, str) else ""
    return text or "toolu_" + secrets.token_hex(12)


def stop_reason(finish_reason: object, has_tool_use: bool) -> str:
    """Anthropic's ``stop_reason`` for an OpenAI ``finish_reason``.

    ``length`` → ``max_tokens``; ``content_filter`` → ``refusal``; otherwise ``tool_use`` when the
    answer has a tool call (never ``end_turn`` on a tool call, whatever the upstream said), else
    ``end_turn`` (OpenAI does not say whether a stop sequence matched).
    """
    if finish_reason == "length":
        return "max_tokens"
    if finish_reason == "content_filter":
        return "refusal"
    return "tool_use" if has_tool_use else "end_turn"


def usage_object(
    prompt: int, completion: int, cached: int = 0, cache_write: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    """Anthropic's ``usage`` for OpenAI's counts (prompt includes cached; completion reasoning).

    Anthropic's input counts are disjoint: ``input_tokens`` excludes cache reads and writes.
    """
    usage: dict[str, Any] = {
        "input_tokens": max(0, prompt - cached - cache_write),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cached,
        "output_tokens": completion,
    }
    if reasoning:
        usage["output_tokens_details"] = {"thinking_tokens": reasoning}
    return usage


def parse_arguments(arguments: object) -> tuple[dict[str, Any], bool]:
    """A tool call's ``input`` from OpenAI's JSON-string ``arguments``, and whether it was valid.

    Empty arguments are ``{}`` (a tool without parameters). Invalid JSON, or JSON that is not an
    object, is also ``{}``, with ``False``: the tool call is kept (the client can answer it with an
    error and the model can retry) rather than the whole answer failing.
    """
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}, True
    if isinstance(arguments, dict):
        return arguments, True
    if not isinstance(arguments, str):
        return {}, False
    try:
        value = msgspec.json.decode(arguments)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: deep JSON from the upstream
        return {}, False
    return (value, True) if isinstance(value, dict) else ({}, False)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def read_usage(usage: object) -> dict[str, Any] | None:
    """Anthropic's ``usage`` for an OpenAI ``usage`` object, ``None`` when there is none."""
    if not isinstance(usage, dict):
        return None
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    prompt_details = prompt_details if isinstance(prompt_details, dict) else {}
    completion_details = completion_details if isinstance(completion_details, dict) else {}
    return usage_object(
        prompt=_int(usage.get("prompt_tokens")),
        completion=_int(usage.get("completion_tokens")),
        cached=_int(prompt_details.get("cached_tokens")),
        cache_write=_int(prompt_details.get("cache_write_tokens")),
        reasoning=_int(completion_details.get("reasoning_tokens")),
    )
