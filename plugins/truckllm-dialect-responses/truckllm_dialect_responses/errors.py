"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``, and the stream's
``event: error`` frame.

The Responses API answers errors exactly as Chat Completions does (the kernel's own OpenAI
dialect): the same body, the gateway's status and headers (``retry-after``, ``x-request-id``).
A stream that fails after it started ends with an ``error`` event: it carries ``code``,
``message`` and ``param`` at the top level (the documented ``ResponseErrorEvent``) and the same
error nested under ``error`` (what OpenAI actually sends; the ``openai`` SDKs raise ``APIError``
on it).
"""

from __future__ import annotations

import msgspec

from truckllm.errors import GatewayError
from truckllm.kit.sse import event_frame

__all__ = [
    "QUOTED",
    "error_body",
    "error_event",
    "invalid",
    "invalid_type",
    "invalid_value",
    "missing",
    "shown",
    "stream_error",
]

QUOTED = 100
"""The most characters of client input an error message quotes."""


class _ErrorObject(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _ErrorBody(msgspec.Struct):
    error: _ErrorObject


class _ErrorEvent(msgspec.Struct, tag_field="type", tag="error"):
    code: str | None
    message: str
    param: str | None
    sequence_number: int
    error: _ErrorObject


def _object(error: GatewayError) -> _ErrorObject:
    return _ErrorObject(message=error.message, type=error.type, param=error.param, code=error.code)


def error_body(error: GatewayError) -> bytes:
    """The JSON body of an error answer, with all four members (as the kernel's OpenAI dialect)."""
    return msgspec.json.encode(_ErrorBody(_object(error)))


def error_event(error: GatewayError, sequence_number: int) -> bytes:
    """The ``event: error`` frame that reports a failure after a stream started.

    :param sequence_number: the event's place in the stream (one more than the last event sent).
    """
    inner = _object(error)
    event = _ErrorEvent(
        code=error.code or error.type,
        message=error.message,
        param=error.param,
        sequence_number=sequence_number,
        error=inner,
    )
    return event_frame("error", msgspec.json.encode(event))


def stream_error(error: GatewayError) -> bytes:
    """An ``event: error`` frame for a stream whose events are not counted here (``sequence_number`` 0)."""
    return error_event(error, 0)


def shown(value: str, limit: int = QUOTED) -> str:
    """``value`` as an error message quotes it: its first ``limit`` characters (``...`` after a cut)."""
    return value if len(value) <= limit else value[:limit] + "..."


def invalid(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    """A 400 ``invalid_request_error`` naming the field at fault."""
    return GatewayError(400, message, param=param, code=code)


def missing(param: str) -> GatewayError:
    """A 400 for a required field that is absent (OpenAI's words)."""
    return invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def invalid_type(param: str, expected: str, value: object) -> GatewayError:
    """A 400 for a field of the wrong JSON type (OpenAI's words)."""
    return invalid(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param,
        "invalid_type",
    )


def invalid_value(param: str, value: object, supported: tuple[str, ...]) -> GatewayError:
    """A 400 for a value outside an enumeration (OpenAI's words)."""
    listed = ", ".join(f"'{s}'" for s in supported)
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return invalid(
        f"Invalid value for '{param}': '{shown(text)}'. Supported values are: {listed}.",
        param,
        "invalid_value",
    )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an unknown value"
