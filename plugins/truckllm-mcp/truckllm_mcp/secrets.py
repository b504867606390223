"""Keeping the credentials the gateway holds for upstream servers out of what it says.

An upstream may echo the header or environment value it was given (in an error, a tool's
result); the gateway removes every such value, and any run of :data:`MIN_FRAGMENT` or more of
its characters, before a client, a log line or a record sees the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from truckllm.kit.options import REDACTED, Secret

__all__ = ["MIN_FRAGMENT", "SecretText"]

MIN_FRAGMENT = 8
"""A run of this many characters of a held secret is treated as the secret."""


class SecretText:
    """Removes a fixed set of secret values (whole, then any fragment) from text."""

    __slots__ = ("_fragments", "_whole")

    def __init__(self, secrets: Iterable[Secret]) -> None:
        values = sorted({s.reveal() for s in secrets if len(s.reveal()) >= 4}, key=len, reverse=True)
        self._whole = re.compile("|".join(re.escape(v) for v in values)) if values else None
        grams = {v[i : i + MIN_FRAGMENT] for v in values if len(v) >= MIN_FRAGMENT for i in range(len(v) - 7)}
        self._fragments = re.compile("|".join(re.escape(g) for g in sorted(grams))) if grams else None

    def __call__(self, text: str) -> str:
        """``text`` with every held secret and fragment of one replaced by ``<secret>``."""
        if self._whole is None or not text:
            return text
        text = self._whole.sub(REDACTED, text)
        if self._fragments is not None:
            text = self._fragments.sub(REDACTED, text)
        return text
