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
    counts = (
        usage.cached_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
        usage.images,
        usage.characters,
        usage.search_units,
        usage.requests,
    )
    seconds = usage.audio_seconds
    if (  # the common case, checked without building anything nor calling a function of ours
        type(p) is int
        and type(c) is int
        and type(t) is int
        and 0 <= p <= MAX_TOKENS
        and 0 <= c <= MAX_TOKENS
        and p + c <= t <= 2 * MAX_TOKENS
        # zeros (whatever their type, they are kept as below), or ints in [0, MAX_TOKENS]
        and (
            counts == _ZEROS
            or (set(map(type, counts)) == _INT and min(counts) >= 0 and max(counts) <= MAX_TOKENS)
        )
        and (seconds == 0.0 or (type(seconds) is float and 0.0 <= seconds <= MAX_AUDIO_SECONDS))
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


_ZEROS = (0,) * 7
_INT = {int}
_MAX_FIGURE = 2**62
_NUMBER = (int, float)


def sane_limits(limits: RateLimits, max_reset: float) -> RateLimits:
    """A provider's rate-limit figures with counts >= 0 and resets within ``[0, max_reset]``."""
    lr, lt, rr, rt = (
        limits.limit_requests,
        limits.limit_tokens,
        limits.remaining_requests,
        limits.remaining_tokens,
    )
    reset_r, reset_t = limits.reset_requests, limits.reset_tokens
    if (  # the common case (every answer carries them), checked without building anything
        (lr is None or (type(lr) is int and 0 <= lr <= _MAX_FIGURE))
        and (lt is None or (type(lt) is int and 0 <= lt <= _MAX_FIGURE))
        and (rr is None or (type(rr) is int and 0 <= rr <= _MAX_FIGURE))
        and (rt is None or (type(rt) is int and 0 <= rt <= _MAX_FIGURE))
        and (reset_r is None or (isinstance(reset_r, _NUMBER) and 0 <= reset_r <= max_reset))
        and (reset_t is None or (isinstance(reset_t, _NUMBER) and 0 <= reset_t <= max_reset))
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
