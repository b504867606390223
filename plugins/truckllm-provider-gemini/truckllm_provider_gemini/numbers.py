"""Numbers read from Gemini answers, in the range the gateway can use.

Token counts come from the upstream and are trusted by nothing downstream: a count that is not a
JSON integer (``1e30``, ``"12"``, ``null``, ``true``) is 0, a negative one is 0, and one above
:data:`MAX_TOKENS` is :data:`MAX_TOKENS` (the kernel also clamps every usage field to >= 0).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_TOKENS", "token_count"]

MAX_TOKENS = 2**31 - 1
"""The largest token count believed for one answer (no model comes near it)."""


def token_count(value: Any) -> int:
    """``value`` as a token count in ``[0, MAX_TOKENS]``; 0 for anything but an integer."""
    if type(value) is not int:
        return 0
    return min(max(value, 0), MAX_TOKENS)
