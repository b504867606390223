"""Durations in config: ``100ms``, ``5s``, ``1m30s``, ``2h``, or a bare number of seconds."""

from __future__ import annotations

import re

__all__ = ["Duration", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")


class Duration(float):
    """Seconds, as a float; decoded from a duration string or a number."""

    __slots__ = ()


def parse_duration(value: object) -> Duration:
    """Parse ``value`` into seconds; raise ``ValueError`` naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 100ms, 5s, 1m30s or 2h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return Duration(value)
    if isinstance(value, str):
        text = value.strip()
        if _WHOLE.fullmatch(text):
            return Duration(sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if number >= 0:
                return Duration(number)
    raise ValueError(f"invalid duration {value!r}: expected e.g. 100ms, 5s, 1m30s or 2h")
