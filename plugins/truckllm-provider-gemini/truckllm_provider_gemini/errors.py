"""Gemini's ``google.rpc.Status`` errors → classified :class:`~truckllm.types.UpstreamError`.

| Gemini | kind | client sees |
|---|---|---|
| 400 ``INVALID_ARGUMENT``, ``ErrorInfo.reason`` ``API_KEY_INVALID`` | ``auth`` | 502 ``invalid_api_key`` |
| 400 ``INVALID_ARGUMENT`` saying the input is too long | ``context_length`` | 400 |
| 400 ``INVALID_ARGUMENT`` / ``FAILED_PRECONDITION`` | ``bad_request`` | 400 |
| 402 ``RESOURCE_EXHAUSTED`` (prepaid credits) | ``quota`` | 429 ``insufficient_quota`` |
| 429 ``RESOURCE_EXHAUSTED``, a ``quotaId`` with ``PerDay`` | ``quota`` | 429 ``insufficient_quota`` |
| 429 ``RESOURCE_EXHAUSTED`` | ``rate_limit`` | 429, ``Retry-After`` from ``RetryInfo`` |
| 403 / 404 / 500 / 503 / 504 | ``permission`` / ``not_found`` / ``server`` / ``overloaded`` / ``timeout`` | |
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from truckllm.kit.openai_wire import upstream_error
from truckllm.types import UpstreamError

__all__ = ["bad_response", "parse_duration", "read_error", "status_error"]

_DECODER = msgspec.json.Decoder()
_CONTEXT = re.compile(
    r"(input token count.*exceeds|exceeds the maximum number of tokens|context (?:length|window)|"
    r"too many (?:input )?tokens|prompt is too long|request payload size exceeds)",
    re.IGNORECASE | re.DOTALL,
)
_RETRY_IN = re.compile(r"retry in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
_STATUS_HTTP = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
"""The HTTP status of each ``google.rpc.Code`` name (for an error object that gives no ``code``)."""
_STATUS_KIND = {
    "UNAUTHENTICATED": "auth",
    "PERMISSION_DENIED": "permission",
    "NOT_FOUND": "not_found",
    "UNAVAILABLE": "overloaded",
    "DEADLINE_EXCEEDED": "timeout",
    "INTERNAL": "server",
    "CANCELLED": "server",
}


def parse_duration(text: Any) -> float | None:
    """Seconds from a protobuf ``Duration`` in JSON (``"47s"``, ``"0.5s"``), ``None`` if unreadable."""
    if not isinstance(text, str) or not text.endswith("s"):
        return None
    try:
        value = float(text[:-1])
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def bad_response(what: str) -> UpstreamError:
    """The failure for a 2xx answer that is not a Gemini answer: 502 ``bad_response`` (the
    kernel counts it against the key and may try another candidate)."""
    message = f"Gemini answered with {what}"
    return UpstreamError(status=502, kind="bad_response", type="server_error", message=message)


def _retry_in(message: str) -> float | None:
    """Seconds from ``Please retry in 47.5s`` in a message; ``None`` when absent or not finite."""
    match = _RETRY_IN.search(message)
    if not match:
        return None
    value = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
    return value if math.isfinite(value) else None  # 400 digits parse as inf


def _error_object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = _DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError):  # deep JSON: not an error body
        return None
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        parsed = parsed[0]  # the JSON-array stream form
    if not isinstance(parsed, dict):
        return None
    error = parsed.get("error")
    return error if isinstance(error, dict) else None


def status_error(http_status: int, error: dict[str, Any] | None, fallback: str) -> UpstreamError:
    """Classify one ``google.rpc.Status`` object (``None`` when the body had none)."""
    error = error or {}
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = fallback
    status_value = error.get("status")
    status = status_value if isinstance(status_value, str) else ""
    code = error.get("code")
    if http_status < 400:  # an error object inside a 200 (a whole answer, or mid-stream)
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
            http_status = code
        elif status in _STATUS_HTTP:
            http_status = _STATUS_HTTP[status]
        else:  # it says no error Gemini defines: not a Gemini answer
            return bad_response(f"an error object of no Gemini status: {message}")
    reasons: list[str] = []
    quota_ids: list[str] = []
    retry_after: float | None = None
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        detail_type = str(detail.get("@type", ""))
        if detail_type.endswith("google.rpc.ErrorInfo") and isinstance(detail.get("reason"), str):
            reasons.append(detail["reason"])
        elif detail_type.endswith("google.rpc.QuotaFailure"):
            violations = detail.get("violations")
            for violation in violations if isinstance(violations, list) else []:
                if isinstance(violation, dict) and isinstance(violation.get("quotaId"), str):
                    quota_ids.append(violation["quotaId"])
        elif detail_type.endswith("google.rpc.RetryInfo"):
            retry_after = parse_duration(detail.get("retryDelay"))
    if retry_after is None and http_status in (429, 503):
        retry_after = _retry_in(message)

    if "API_KEY_INVALID" in reasons or status == "UNAUTHENTICATED" or http_status == 401:
        return upstream_error(401, message, kind="auth", code="invalid_api_key")
    if http_status == 402:
        return upstream_error(402, message, kind="quota")
    if http_status == 429 or status == "RESOURCE_EXHAUSTED":
        if any("PerDay" in q for q in quota_ids):  # GenerateRequestsPerDayPerProjectPerModel-FreeTier
            return upstream_error(429, message, kind="quota", retry_after=retry_after)
        return upstream_error(429, message, kind="rate_limit", retry_after=retry_after)
    if http_status in (400, 413, 500) and _CONTEXT.search(message):
        return upstream_error(400, message, kind="context_length")
    if http_status == 400:
        return upstream_error(400, message, kind="bad_request")
    if http_status == 499:  # CANCELLED: Google gave up on the call, not the client
        return upstream_error(502, message, kind="server")
    by_status = _STATUS_KIND.get(status)
    if by_status is None:
        return upstream_error(http_status, message, retry_after=retry_after)
    return upstream_error(http_status, message, kind=by_status, retry_after=retry_after)


def read_error(http_status: int, body: bytes) -> UpstreamError:
    """Classify a Gemini error answer (any body: JSON ``Status``, a JSON array of one, or text).

    The upstream's text is passed whole, never cut here: the kernel scrubs secrets from every
    field of the error first and truncates after (a key cut in two would escape the scrubber).
    """
    error = _error_object(body)
    fallback = body.decode("utf-8", "replace").strip() or f"Gemini answered HTTP {http_status}"
    return status_error(http_status, error, fallback)
