"""Jinja filters: times, durations, numbers and money as the pages print them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

__all__ = ["FILTERS", "ago", "body", "duration", "money", "number", "pretty_json", "segment", "when"]


def when(value: Any) -> str:
    """A unix time as ``2026-12-07 15:04:05 UTC`` ("" for none)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(value: Any) -> str:
    """Seconds as ``45 s``, ``3 min 20 s``, ``2 h 5 min`` ("" for none or zero)."""
    if not isinstance(value, int | float) or value <= 0:
        return ""
    seconds = round(float(value))
    if seconds < 60:
        return f"{max(1, seconds)} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def ago(value: Any, now: float) -> str:
    """How long before ``now`` a unix time was."""
    if not isinstance(value, int | float):
        return ""
    return duration(now - float(value)) or "now"


def number(value: Any, digits: int = 0) -> str:
    """A number with thousands separators (``–`` for none)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    return f"{value:,.{digits}f}"


def money(value: Any) -> str:
    """Dollars: ``$1.23``, ``$0.0042`` for small amounts (``–`` for none)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    if 0 < abs(value) < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def percent(value: Any) -> str:
    """A ratio as a percentage (``–`` for none)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    return f"{value * 100:.1f} %"


def ms(value: Any) -> str:
    """Milliseconds (``–`` for none)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def pretty_json(value: Any) -> str:
    """A JSON value indented for a ``<pre>`` (the template escapes it)."""
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False)


def body(value: Any) -> str:
    """A recorded body: indented when it is JSON, else as it is (the template escapes it)."""
    text = str(value or "")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def segment(value: Any) -> str:
    """A value quoted as one URL path segment (``/`` included)."""
    return quote(str(value), safe="")


FILTERS: dict[str, Callable[..., str]] = {
    "when": when,
    "duration": duration,
    "ago": ago,
    "number": number,
    "money": money,
    "percent": percent,
    "ms": ms,
    "pretty_json": pretty_json,
    "segment": segment,
    "body": body,
}
"""Every filter, by its name in the templates."""
