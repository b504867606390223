"""Small pieces of the Responses API's wire format shared by the answer and stream translators.

- :func:`item_id`: the id of the n-th output item of a response (``msg_``, ``fc_``, ``rs_``),
  derived from the response id so that one answer always gets the same ids;
- :func:`call_id`: the ``call_id`` of a function call: the chat tool call's own id, kept as is
  (the client sends it back in ``function_call_output`` and it must reach the provider unchanged);
- :func:`seal_thinking` / :func:`open_thinking`: provider thinking blocks (Anthropic's signed
  ``thinking`` / ``redacted_thinking``, as the chat form carries them in ``thinking_blocks``)
  carried in a reasoning item's ``encrypted_content``, so that a client that sends the item back
  gives the provider its blocks back;
- :func:`usage`: the Responses ``usage`` object for a chat ``usage`` object;
- :func:`finish_status`: ``status`` and ``incomplete_details`` for a chat ``finish_reason``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import msgspec
from msgspec import Raw

__all__ = [
    "THINKING_PREFIX",
    "call_id",
    "finish_status",
    "item_id",
    "open_thinking",
    "seal_thinking",
    "usage",
]

THINKING_PREFIX = "truckllm.thinking.v1."
"""How a gateway-made ``encrypted_content`` starts (OpenAI's own never does)."""

_THINKING_TYPES = ("thinking", "redacted_thinking")


def item_id(response_id: str, prefix: str, index: int) -> str:
    """The id of output item ``index`` of response ``response_id``: ``<prefix>_<48 hex>``.

    A pure function of its arguments: a stream and its final response agree, and golden files
    are stable. Unique as long as response ids are.
    """
    digest = hashlib.sha256(f"{response_id}\x00{prefix}\x00{index}".encode()).hexdigest()
    return f"{prefix}_{digest[:48]}"


def call_id(upstream_id: object, response_id: str, index: int, taken: set[str] | None = None) -> str:
    """The ``call_id`` of a function call: the chat tool call's id unchanged, or (when the
    upstream sent none, or one already used in this response: ids must be unique for the
    client to answer each call) ``call_<hex>`` derived from the response id and the call's index.

    :param taken: the call ids given so far in this response; the result is added to it.
    """
    given = upstream_id if isinstance(upstream_id, str) and upstream_id else None
    if given is None or (taken is not None and given in taken):
        given = "call_" + item_id(response_id, "call", index)[5:29]
    if taken is not None:
        taken.add(given)
    return given


def seal_thinking(blocks: list[Any]) -> str | None:
    """``encrypted_content`` carrying provider thinking blocks (``None`` when there are none)."""
    kept = [b for b in blocks if isinstance(b, dict) and b.get("type") in _THINKING_TYPES]
    if not kept:
        return None
    return THINKING_PREFIX + base64.urlsafe_b64encode(msgspec.json.encode(kept)).decode()


def open_thinking(encrypted: object) -> list[Raw] | None:
    """The thinking blocks :func:`seal_thinking` put in ``encrypted``; ``None`` when it is not
    one of ours (OpenAI's own encrypted reasoning) or is damaged."""
    if not isinstance(encrypted, str) or not encrypted.startswith(THINKING_PREFIX):
        return None
    try:
        blocks = msgspec.json.decode(base64.urlsafe_b64decode(encrypted[len(THINKING_PREFIX) :]))
    except (binascii.Error, ValueError, msgspec.DecodeError, RecursionError):
        return None
    if not isinstance(blocks, list) or not blocks:
        return None
    if not all(isinstance(b, dict) and b.get("type") in _THINKING_TYPES for b in blocks):
        return None
    return [Raw(msgspec.json.encode(b)) for b in blocks]


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def usage(chat_usage: object) -> dict[str, Any]:
    """The Responses ``usage`` object for a chat ``usage`` object (zeros when there is none).

    ``input_tokens`` includes cached tokens, ``output_tokens`` reasoning tokens, as OpenAI counts.
    """
    source = chat_usage if isinstance(chat_usage, dict) else {}
    prompt_details = source.get("prompt_tokens_details")
    completion_details = source.get("completion_tokens_details")
    prompt_details = prompt_details if isinstance(prompt_details, dict) else {}
    completion_details = completion_details if isinstance(completion_details, dict) else {}
    prompt = _int(source.get("prompt_tokens"))
    completion = _int(source.get("completion_tokens"))
    total = _int(source.get("total_tokens")) or prompt + completion
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": _int(prompt_details.get("cached_tokens")),
            "cache_write_tokens": _int(prompt_details.get("cache_write_tokens")),
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": _int(completion_details.get("reasoning_tokens"))},
        "total_tokens": total,
    }


def finish_status(finish_reason: object) -> tuple[str, dict[str, str] | None]:
    """``(status, incomplete_details)`` for a chat ``finish_reason``: ``length`` and
    ``content_filter`` make an ``incomplete`` response, anything else a ``completed`` one."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None
