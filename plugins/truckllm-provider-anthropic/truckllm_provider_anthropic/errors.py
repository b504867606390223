"""Anthropic errors and rate-limit headers → the kernel's :class:`UpstreamError` and :class:`RateLimits`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from truckllm.kit.openai_wire import upstream_error
from truckllm.types import RateLimits, UpstreamError

from . import numbers

__all__ = [
    "ERROR_TYPE_KINDS",
    "classify_error",
    "error_from_body",
    "parse_ratelimits",
    "parse_reset",
    "stream_error",
]


class _ErrorObject(msgspec.Struct):
    type: str | None = None
    message: str | None = None
    details: dict[str, Any] | None = None


class _ErrorBody(msgspec.Struct):
    type: str | None = None
    error: _ErrorObject | None = None
    request_id: str | None = None


_ERROR_DECODER = msgspec.json.Decoder(_ErrorBody)

ERROR_TYPE_KINDS: dict[str, tuple[str, int]] = {
    "invalid_request_error": ("bad_request", 400),
    "authentication_error": ("auth", 401),
    "billing_error": ("quota", 402),
    "permission_error": ("permission", 403),
    "not_found_error": ("not_found", 404),
    "request_too_large": ("too_large", 413),
    "rate_limit_error": ("rate_limit", 429),
    "api_error": ("server", 500),
    "timeout_error": ("timeout", 504),
    "overloaded_error": ("overloaded", 529),
}
"""Anthropic ``error.type`` → (kernel kind, the HTTP status Anthropic uses for it)."""

_CONTEXT_MARKERS = (
    "prompt is too long",
    "exceed context limit",
    "exceeds the context window",
    "context window",
    "too many tokens",
)
_SPEND_MARKERS = ("spend limit", "credit balance", "billing")


def _decode(body: bytes) -> _ErrorBody | None:
    try:
        return _ERROR_DECODER.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # deep JSON: not an error body
        return None


def _plain(body: bytes, status: int) -> str:
    """The message for a body that is not Anthropic's error JSON: its text, whole.

    Never cut here: the kernel scrubs secrets from every field of the error first and truncates
    after (a key cut in two by a truncation here would escape the scrubber).
    """
    text = body.decode("utf-8", "replace").strip()
    if not text or text.startswith("<"):  # Cloudflare answers 413 (and some 5xx) with HTML
        return f"Anthropic answered HTTP {status}"
    return f"Anthropic answered HTTP {status}: {text}"


def _is_quota(status: int, etype: str | None, details: dict[str, Any], lower: str) -> bool:
    """Billing (402) or an enforced spend limit (a 429 that waiting will not cure)."""
    if status == 402 or etype == "billing_error":
        return True
    return status == 429 and (
        details.get("error_code") == "enforced_spend_limit_reached"
        or any(marker in lower for marker in _SPEND_MARKERS)
    )


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """Classify an Anthropic error answer (any status ≥ 400, or an error body in a 2xx).

    :param status: the HTTP status.
    :param headers: response headers, lower-case names.
    :param body: the response body: Anthropic's error JSON, or anything else (HTML from a proxy).
    """
    parsed = _decode(body)
    error = parsed.error if parsed is not None else None
    etype = error.type if error is not None else None
    message = (error.message if error is not None else None) or _plain(body, status)
    request_id = (parsed.request_id if parsed is not None else None) or headers.get("request-id")
    if request_id:
        message = f"{message} (request id: {request_id})"
    if status < 400:  # an error object where a message was expected
        status = ERROR_TYPE_KINDS.get(etype or "", ("server", 500))[1]
    lower = message.lower()
    kind: str | None = None
    code: str | None = None
    details = error.details if error is not None and error.details else {}
    if status == 400 and any(marker in lower for marker in _CONTEXT_MARKERS):
        kind = "context_length"
    elif _is_quota(status, etype, details, lower):
        kind = "quota"
    elif status == 404:
        code = "model_not_found"
    elif status not in (400, 401, 403, 404, 413, 429, 500, 502, 503, 504, 529) and etype in ERROR_TYPE_KINDS:
        kind = ERROR_TYPE_KINDS[etype][0]
    retry_after = numbers.retry_after(headers)
    if retry_after is None and status == 429 and kind is None:
        retry_after = _reset_wait(headers)
    return upstream_error(status, message, kind=kind, code=code, retry_after=retry_after)


def error_from_body(body: bytes) -> UpstreamError | None:
    """The error in a 2xx body that is ``{"type": "error", ...}``, else ``None``.

    An error of a type Anthropic defines is that error (an ``overloaded_error`` is still
    ``overloaded``); any other error object where an answer was expected is not an Anthropic
    answer: 502 ``bad_response``, its text kept whole in the message for the kernel's scrubber.
    """
    parsed = _decode(body)
    if parsed is None or parsed.type != "error":
        return None
    error = parsed.error
    if error is None or error.type not in ERROR_TYPE_KINDS:
        text = (error.message if error is not None else None) or "no message"
        message = f"Anthropic answered HTTP 200 with an error object of no Anthropic type: {text}"
        return upstream_error(502, message, kind="bad_response", type="server_error")
    return classify_error(200, {}, body)


def stream_error(payload: bytes) -> UpstreamError:
    """The failure an ``event: error`` reports after the stream began.

    ``overloaded_error`` stays ``overloaded`` (retryable, 503 to the client), a rate limit stays
    ``rate_limit``; everything else is a failed ``stream``.
    """
    parsed = _decode(payload)
    error = parsed.error if parsed is not None else None
    etype = (error.type if error is not None else None) or ""
    message = (error.message if error is not None else None) or "Anthropic reported an error mid-stream"
    if parsed is not None and parsed.request_id:
        message = f"{message} (request id: {parsed.request_id})"
    kind, status = ERROR_TYPE_KINDS.get(etype, ("stream", 502))
    if kind not in ("overloaded", "rate_limit", "timeout", "server"):
        kind, status = "stream", 502
    return upstream_error(status, f"{message} [{etype or 'error'}]", kind=kind)


def parse_reset(value: str | None) -> float | None:
    """Seconds from now until an RFC 3339 reset timestamp (``2025-01-01T00:00:30Z``), never negative;
    ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None:
            return None
        return numbers.seconds(max(0.0, moment.timestamp() - time.time()))
    except (ValueError, OverflowError):
        return None


_int = numbers.header_int


_TOKEN_FAMILIES = ("tokens", "input-tokens", "output-tokens")


def parse_ratelimits(headers: Mapping[str, str]) -> RateLimits | None:
    """The ``anthropic-ratelimit-*`` headers, ``None`` when there are none.

    Requests come from ``requests-*``. Tokens come from ``tokens-*`` (the most restrictive limit),
    else the most restrictive of ``input-tokens-*`` and ``output-tokens-*``.
    """
    prefix = "anthropic-ratelimit-"
    remaining_requests = _int(headers.get(prefix + "requests-remaining"))
    token_family: str | None = None
    remaining_tokens: int | None = None
    for family in _TOKEN_FAMILIES:
        value = _int(headers.get(f"{prefix}{family}-remaining"))
        if value is None:
            continue
        if family == "tokens":
            token_family, remaining_tokens = family, value
            break
        if remaining_tokens is None or value < remaining_tokens:
            token_family, remaining_tokens = family, value
    limit_requests = _int(headers.get(prefix + "requests-limit"))
    if remaining_requests is None and remaining_tokens is None and limit_requests is None:
        return None
    return RateLimits(
        limit_requests=limit_requests,
        remaining_requests=remaining_requests,
        reset_requests=parse_reset(headers.get(prefix + "requests-reset")),
        limit_tokens=_int(headers.get(f"{prefix}{token_family}-limit")) if token_family else None,
        remaining_tokens=remaining_tokens,
        reset_tokens=parse_reset(headers.get(f"{prefix}{token_family}-reset")) if token_family else None,
    )


def _reset_wait(headers: Mapping[str, str]) -> float | None:
    """For a 429 without ``retry-after``: until every exhausted limit has reset (§5 item 20)."""
    waits = []
    for family in ("requests", *_TOKEN_FAMILIES):
        if _int(headers.get(f"anthropic-ratelimit-{family}-remaining")) == 0:
            wait = parse_reset(headers.get(f"anthropic-ratelimit-{family}-reset"))
            if wait is not None:
                waits.append(wait)
    return max(waits) if waits else None
