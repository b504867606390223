"""Moderations (``POST /v1/moderations``): the answer's check and its usage (one call).

The request passes through with ``model`` rewritten (see :mod:`.media`). An answer must be an
object with a ``results`` list of objects each saying ``flagged``; its usage is one request
(moderations report no tokens; OpenAI's are free: ``price.request: 0``).
"""

from __future__ import annotations

import msgspec

from truckllm.types import UpstreamError, Usage

from .errors import bad_response

__all__ = ["check_moderation", "moderation_usage"]

_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


class _Result(msgspec.Struct):
    flagged: bool


class _Answer(msgspec.Struct):
    results: list[_Result]


_ANSWER = msgspec.json.Decoder(_Answer)


def check_moderation(body: bytes) -> UpstreamError | None:
    """``None`` when ``body`` is a moderation answer, else the ``bad_response`` failure."""
    try:
        _ANSWER.decode(body)
        if not body.isascii():
            body.decode()
    except _UNREADABLE as exc:
        return bad_response(f"upstream moderation answer is not valid: {str(exc)[:200]}")
    return None


def moderation_usage(body: bytes) -> Usage:
    """One request (a moderation reports no tokens)."""
    return Usage(requests=1)
