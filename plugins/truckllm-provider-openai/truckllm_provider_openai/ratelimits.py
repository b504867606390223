"""Rate-limit headers of OpenAI-compatible services, read into :class:`~truckllm.types.RateLimits`
so the ``usage`` strategy sees every service's headroom.

- :func:`openai_limits`: OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (Groq,
  Fireworks, xAI... send the same family).
- :func:`mistral_limits`: Mistral's ``x-ratelimit-{limit,remaining}-{req,tokens}-minute``.
- :func:`together_limits`: Together's ``x-ratelimit-{limit,remaining,reset}`` (requests) and
  ``x-tokenlimit-{limit,remaining}`` (tokens).
- :func:`openrouter_limits`: OpenRouter's ``X-RateLimit-{Limit,Remaining,Reset}`` (requests, the
  reset an epoch time in milliseconds).

A figure that is not a whole number in ``[0, 10^15]`` or a reset beyond a day is unknown, as for
OpenAI's headers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from truckllm.kit.openai_wire import parse_ratelimit_headers
from truckllm.types import RateLimits

__all__ = ["mistral_limits", "openai_limits", "openrouter_limits", "together_limits"]

_MAX_FIGURE = 10**15
_MAX_RESET = 86400.0


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if 0 <= number <= _MAX_FIGURE else None


def _seconds(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or value < 0 or value > _MAX_RESET:
        return None
    return value


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def _limits(**figures: Any) -> RateLimits | None:
    if figures.get("remaining_requests") is None and figures.get("remaining_tokens") is None:
        return None
    return RateLimits(**figures)


def openai_limits(headers: Any) -> RateLimits | None:
    """OpenAI's ``x-ratelimit-*`` family (see :func:`truckllm.kit.openai_wire.parse_ratelimit_headers`)."""
    return parse_ratelimit_headers(headers)


def mistral_limits(headers: Any) -> RateLimits | None:
    """Mistral's per-minute figures (no reset is sent: the window is a minute)."""
    return _limits(
        limit_requests=_count(headers.get("x-ratelimit-limit-req-minute")),
        remaining_requests=_count(headers.get("x-ratelimit-remaining-req-minute")),
        limit_tokens=_count(headers.get("x-ratelimit-limit-tokens-minute")),
        remaining_tokens=_count(headers.get("x-ratelimit-remaining-tokens-minute")),
    ) or parse_ratelimit_headers(headers)


def together_limits(headers: Any) -> RateLimits | None:
    """Together's request figures (reset in seconds) and token figures."""
    return _limits(
        limit_requests=_count(headers.get("x-ratelimit-limit")),
        remaining_requests=_count(headers.get("x-ratelimit-remaining")),
        reset_requests=_seconds(_float(headers.get("x-ratelimit-reset"))),
        limit_tokens=_count(headers.get("x-tokenlimit-limit")),
        remaining_tokens=_count(headers.get("x-tokenlimit-remaining")),
    ) or parse_ratelimit_headers(headers)


def openrouter_limits(headers: Any, clock: Callable[[], float] = time.time) -> RateLimits | None:
    """OpenRouter's request figures; the reset (epoch milliseconds) made seconds from ``clock()``
    (a reset already past is 0)."""
    reset_at = _float(headers.get("x-ratelimit-reset"))
    reset = None if reset_at is None or not math.isfinite(reset_at) else max(0.0, reset_at / 1000 - clock())
    return _limits(
        limit_requests=_count(headers.get("x-ratelimit-limit")),
        remaining_requests=_count(headers.get("x-ratelimit-remaining")),
        reset_requests=_seconds(reset),
    ) or parse_ratelimit_headers(headers)
