"""Numbers from upstream, clamped to sane, documented ranges before the kernel uses them.

A provider answer is not trusted to say how long to wait, how many tokens it used or how much
quota is left: ``Retry-After: 99999999999`` would cool a key for millennia, negative usage would
refund a budget. Every such number passes one of these functions first.
"""

from __future__ import annotations

import math

import msgspec

from truckllm.types import RateLimits, Usage

__all__ = [
    "MAX_AUDIO_SECONDS",
    "MAX_TOKENS",
    "clamp_seconds",
    "sane_count",
    "sane_limits",
    "sane_seconds",
    "sane_usage",
]

MAX_TOKENS = 10**9
"""The most tokens one answer may report in any usage field (a bigger figure is cut to it)."""
MAX_AUDIO_SECONDS = 10.0**7
"""The most seconds of audio one answer may report (about 116 days; a bigger figure is cut to it)."""


def clamp_seconds(value: float, limit: float) -> float:
    """``value`` seconds within ``[0, limit]`` (NaN is 0, infinity is ``limit``)."""
    if value != value:  # NaN
        return 0.0
    return min(max(float(value), 0.0), limit)


def sane_count(value: object, limit: int = MAX_TOKENS) -> int:
    """A count within ``[0, limit]``: negatives, NaN and non-numbers are 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float):
        if not math.isfinite(value):
            return limit if value > 0 else 0
        value = int(value)
    return min(max(value, 0), limit)


def sane_usage(usage: Usage | None) -> Usage | None:
    """``usage`` with every field a count in ``[0, MAX_TOKENS]`` and the total at least the sum."""
    if usage is None:
        return None
    p, c, t = usage.prompt_tokens, usage.completion_tokens, usage.total_tokens
    if (  # the common case, checked without building anything
        type(p) is int
        and type(c) is int
        and type(t) is int
        and 0 <= p <= MAX_TOKENS
        and 0 <= c <= MAX_TOKENS
        and p + c <= t <= 2 * MAX_TOKENS
        and _small(usage.cached_tokens)
        and _small(usage.cache_write_tokens)
        and _small(usage.reasoning_tokens)
        and _small(usage.images)
        and _small(usage.characters)
        and _small(usage.search_units)
        and _small(usage.requests)
        and _seconds_ok(usage.audio_seconds)
    ):
        return usage
    fields: dict[str, float] = {
        name: sane_count(getattr(usage, name)) for name in usage.__struct_fields__ if name != "audio_seconds"
    }
    fields["audio_seconds"] = sane_seconds(usage.audio_seconds)
    if all(fields[name] == getattr(usage, name) for name in fields) and usage.total_tokens >= (
        usage.prompt_tokens + usage.completion_tokens
    ):
        return usage
    fields["total_tokens"] = max(
        fields["total_tokens"], fields["prompt_tokens"] + fields["completion_tokens"]
    )
    return Usage(**fields)  # type: ignore[arg-type]


def sane_seconds(value: object) -> float:
    """A duration in seconds within ``[0, MAX_AUDIO_SECONDS]``: negatives, NaN and non-numbers are 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return 0.0
    return min(max(float(value), 0.0), MAX_AUDIO_SECONDS)


def _seconds_ok(value: object) -> bool:
    return type(value) is float and 0.0 <= value <= MAX_AUDIO_SECONDS


def _count_ok(value: object) -> bool:
    return value is None or (type(value) is int and 0 <= value <= _MAX_FIGURE)


def _reset_ok(value: object, max_reset: float) -> bool:
    return value is None or (isinstance(value, int | float) and 0 <= value <= max_reset)


_MAX_FIGURE = 2**62


def _small(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_TOKENS


def sane_limits(limits: RateLimits, max_reset: float) -> RateLimits:
    """A provider's rate-limit figures with counts >= 0 and resets within ``[0, max_reset]``."""
    if (  # the common case (every answer carries them), checked without building anything
        _count_ok(limits.limit_requests)
        and _count_ok(limits.limit_tokens)
        and _count_ok(limits.remaining_requests)
        and _count_ok(limits.remaining_tokens)
        and _reset_ok(limits.reset_requests, max_reset)
        and _reset_ok(limits.reset_tokens, max_reset)
    ):
        return limits
    changes: dict[str, object] = {}
    for name in ("limit_requests", "limit_tokens", "remaining_requests", "remaining_tokens"):
        value = getattr(limits, name)
        if value is not None and sane_count(value, _MAX_FIGURE) != value:
            changes[name] = sane_count(value, _MAX_FIGURE)
    for name in ("reset_requests", "reset_tokens"):
        value = getattr(limits, name)
        if value is not None and (not isinstance(value, int | float) or not 0 <= value <= max_reset):
            changes[name] = clamp_seconds(value, max_reset) if isinstance(value, int | float) else None
    return msgspec.structs.replace(limits, **changes) if changes else limits
