"""Errors in Gemini's shape: ``google.rpc.Status``.

``{"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED", "details": [...]}}``.
The kernel raises :class:`~truckllm.errors.GatewayError` with an HTTP status and OpenAI's error
vocabulary; a Gemini client needs the canonical status string for the HTTP status (the SDKs pick
their exception from the code and show the status). ``details`` carry what a Google client reads:
``RetryInfo.retryDelay`` when the kernel sent ``retry-after``, ``ErrorInfo.reason`` for the
kernel's error code (``API_KEY_INVALID`` for a bad gateway key), and ``BadRequest`` naming the
field at fault.

After a stream has started, Gemini reports a failure as a raw JSON error object: not SSE-framed
(no ``data:``) on an ``alt=sse`` stream, the array's last element on a JSON-array stream.
"""

from __future__ import annotations

import contextvars
from typing import Any

import msgspec

from truckllm.errors import GatewayError

__all__ = ["STATUS", "STREAM_FORM", "error_body", "error_object", "rpc_status", "stream_error"]

STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "RESOURCE_EXHAUSTED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    416: "OUT_OF_RANGE",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""The ``google.rpc.Code`` name for an HTTP status (other 4xx: ``INVALID_ARGUMENT``; 5xx: ``INTERNAL``)."""

STREAM_FORM: contextvars.ContextVar[str] = contextvars.ContextVar(
    "truckllm_gemini_stream_form", default="sse"
)
"""The stream form (``sse`` or ``array``) of the request being served.

:meth:`~truckllm_dialect_gemini.GeminiDialect.stream_error` is not told which request failed, and
the two forms end differently. :meth:`~truckllm_dialect_gemini.GeminiDialect.parse` sets this in
the request's task; the kernel starts the request's pipeline and stream tasks from it, so they see
the value. Without it (another kernel), the SSE form is used.
"""

_REASONS = {"invalid_api_key": "API_KEY_INVALID"}
_MISSING_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use API "
    "Key or other form of API consumer identity to call this API (x-goog-api-key, ?key= or "
    "Authorization: Bearer)."
)


def rpc_status(status: int) -> str:
    """The canonical status string for an HTTP status."""
    known = STATUS.get(status)
    if known is not None:
        return known
    return "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"


def _message(error: GatewayError) -> str:
    """The kernel's message, with the OpenAI-only hints of key errors in Gemini's words."""
    if error.code == "invalid_api_key":
        if "didn't provide" in error.message:
            return _MISSING_KEY
        if error.message.startswith("Incorrect API key"):
            return "API key not valid. Please pass a valid API key."
    return error.message


def _retry_delay(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return f"{seconds:g}s" if seconds >= 0 else None


def error_object(error: GatewayError) -> dict[str, Any]:
    """The ``google.rpc.Status`` of ``error`` (what goes under ``"error"``)."""
    obj: dict[str, Any] = {
        "code": error.status,
        "message": _message(error),
        "status": rpc_status(error.status),
    }
    details: list[dict[str, Any]] = []
    if error.code:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": _REASONS.get(error.code, error.code.upper()),
                "domain": "truckllm",
            }
        )
    if error.param and error.status == 400:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": error.param, "description": obj["message"]}],
            }
        )
    delay = _retry_delay({k.lower(): v for k, v in error.headers.items()}.get("retry-after"))
    if delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
    if details:
        obj["details"] = details
    return obj


def error_body(error: GatewayError) -> bytes:
    """The JSON body of an error answer: ``{"error": {"code", "message", "status", "details"?}}``."""
    return msgspec.json.encode({"error": error_object(error)})


def stream_error(error: GatewayError, form: str) -> bytes:
    """What ends a stream that failed after it started, as Gemini sends it.

    ``sse``: the error object, pretty-printed and not SSE-framed (Google's clients read a
    brace-balanced JSON object outside ``data:`` lines as an error). ``array``: the error as the
    array's last element, then ``]`` (the stream's first bytes always hold ``[`` and an element).
    """
    pretty = msgspec.json.format(error_body(error), indent=2)
    if form == "array":
        return b"\n,\r\n" + pretty + b"\n]"
    return pretty + b"\n"
