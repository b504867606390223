"""Errors in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``.

The kernel raises :class:`~truckllm.errors.GatewayError` with an HTTP status and OpenAI's error
vocabulary; an Anthropic client needs Anthropic's ``error.type`` for the status (its SDKs pick the
exception class from the status, and show the type). The status is kept as is, and so are the
headers the kernel adds (``retry-after``, ``x-request-id``).
"""

from __future__ import annotations

import msgspec

from truckllm.errors import GatewayError
from truckllm.kit.sse import event_frame

__all__ = ["ERROR_TYPES", "error_body", "error_type", "invalid", "stream_error"]

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic's ``error.type`` by HTTP status (other 4xx: ``invalid_request_error``, 5xx: ``api_error``)."""


class _ErrorObject(msgspec.Struct):
    type: str
    message: str


class _ErrorBody(msgspec.Struct, tag_field="type", tag="error"):
    error: _ErrorObject


def error_type(status: int) -> str:
    """Anthropic's ``error.type`` for an HTTP status."""
    known = ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "api_error" if status >= 500 else "invalid_request_error"


def _message(error: GatewayError) -> str:
    """The kernel's message, with the OpenAI-only hints of key errors in Anthropic's words."""
    if error.code == "invalid_api_key":
        if "didn't provide" in error.message:
            return "x-api-key header is required"
        if error.message.startswith("Incorrect API key"):
            return "invalid x-api-key"
    return error.message


def error_body(error: GatewayError) -> bytes:
    """The JSON body of an error answer: ``{"type":"error","error":{"type","message"}}``."""
    return msgspec.json.encode(
        _ErrorBody(_ErrorObject(type=error_type(error.status), message=_message(error)))
    )


def stream_error(error: GatewayError) -> bytes:
    """The ``event: error`` frame that ends a stream that failed after it started."""
    return event_frame("error", error_body(error))


def invalid(message: str, param: str | None = None) -> GatewayError:
    """A 400 ``invalid_request_error`` naming the field at fault (Anthropic's ``<path>: <problem>``)."""
    return GatewayError(400, f"{param}: {message}" if param else message, param=param)
