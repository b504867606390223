"""Numbers read from Anthropic answers and headers, in the range the gateway can use.

Token counts come from the upstream and are trusted by nothing downstream: a count that is not a
JSON integer (``1e30``, ``"12"``, ``null``, ``true``) is 0, a negative one is 0, and one above
:data:`MAX_TOKENS` is :data:`MAX_TOKENS` (the kernel also clamps every usage field to >= 0).
Waits (``retry-after``, ``retry-after-ms``, the rate-limit reset times) are finite seconds >= 0
or ``None``; a huge one is kept as given (the kernel caps waits at its ``max_retry_after``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from truckllm.kit.openai_wire import parse_retry_after

__all__ = ["MAX_TOKENS", "header_int", "retry_after", "seconds", "token_count"]

MAX_TOKENS = 2**31 - 1
"""The largest token count believed for one answer (no model comes near it)."""


def token_count(value: Any) -> int:
    """``value`` as a token count in ``[0, MAX_TOKENS]``; 0 for anything but an integer."""
    if type(value) is not int:
        return 0
    return min(max(value, 0), MAX_TOKENS)


def seconds(value: float | None) -> float | None:
    """``value`` if it is a finite number of seconds >= 0, else ``None``."""
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return value


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date), or ``None``
    when absent or unreadable (negative, ``nan``, ``inf``, ``1e999``)."""
    try:
        return seconds(parse_retry_after(headers))
    except (ValueError, OverflowError):
        return None


def header_int(value: str | None) -> int | None:
    """A count from a rate-limit header: an integer >= 0, else ``None`` (absent, garbage, negative)."""
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)
