"""The wire format of the cooldown pushes the redis store publishes, and its validation.

A push is one MessagePack array ``[provider, key, until, reason]`` (``until`` in unix seconds;
0 is a clear: an operator's ``enable``). Anyone who can publish on the channel can send anything,
so :func:`decode_push` accepts only what :func:`encode_mark` could have produced: at most
:data:`MAX_PUSH` bytes, non-empty names of at most :data:`MAX_NAME` characters, a reason of at
most :data:`MAX_REASON`, none with a control character (C0, DEL, C1, U+2028, U+2029: nothing
that could break a log line), and an ``until`` that is a finite number >= 0. Items after the
fourth are ignored (a later version may append some).
"""

from __future__ import annotations

import math
import re
from typing import Annotated

import msgspec

from truckllm.kit.store import CooldownMark

__all__ = ["MAX_NAME", "MAX_PUSH", "MAX_REASON", "decode_push", "encode_clear", "encode_mark"]

MAX_NAME = 256
"""Longest provider or key name a push may carry (config names are at most 128 characters)."""

MAX_REASON = 256
"""Longest reason a push may carry."""

MAX_PUSH = 4096
"""Longest push in bytes (the longest valid one is about 3 KiB); a longer message is skipped
before it is decoded."""

_CONTROLS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"  # C0, DEL, C1 and the Unicode line breaks
_PRINTABLE = rf"^[^{_CONTROLS}]*\Z"  # \Z: "$" would let a trailing newline through
_CONTROL = re.compile(rf"[{_CONTROLS}]")


class _Push(msgspec.Struct, array_like=True, frozen=True):
    provider: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME, pattern=_PRINTABLE)]
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME, pattern=_PRINTABLE)]
    until: float
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON, pattern=_PRINTABLE)] = ""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Push)


def encode_mark(mark: CooldownMark) -> bytes:
    """The push of a cooldown mark (its reason cut to :data:`MAX_REASON`, control characters
    replaced by spaces, so that it always decodes)."""
    reason = _CONTROL.sub(" ", mark.reason[:MAX_REASON])
    return _encoder.encode(_Push(provider=mark.provider, key=mark.key, until=mark.until, reason=reason))


def encode_clear(provider: str, key: str) -> bytes:
    """The push of a clear (``until`` 0)."""
    return _encoder.encode(_Push(provider=provider, key=key, until=0.0))


def decode_push(data: object) -> CooldownMark | None:
    """The mark a push carries, or ``None`` for anything :func:`encode_mark` and
    :func:`encode_clear` could not have produced (never raises)."""
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_PUSH:
        return None
    try:
        push = _decoder.decode(data)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None
    if not math.isfinite(push.until) or push.until < 0:
        return None
    return CooldownMark(provider=push.provider, key=push.key, until=push.until, reason=push.reason)
