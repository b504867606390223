"""Reading OpenAI(-compatible) error answers, and the error for an answer that is not one."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from truckllm.kit.openai_wire import parse_retry_after, upstream_error
from truckllm.types import UpstreamError

__all__ = ["bad_response", "read_error"]


class _ErrorObject(msgspec.Struct):
    message: Any = None
    type: Any = None
    param: Any = None
    code: Any = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorObject | str | None = None


_ERROR_DECODER = msgspec.json.Decoder(_ErrorBody)
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?)(ms|s)\b", re.IGNORECASE)
_UNREADABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


def _text(value: Any) -> str | None:
    """A string field of an upstream error as text (numbers and other JSON made into text)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def bad_response(message: str) -> UpstreamError:
    """The failure for a 2xx answer that is not a valid answer of OpenAI's wire format."""
    return UpstreamError(status=502, kind="bad_response", type="server_error", message=message)


def read_error(status: int, headers: Any, body: bytes) -> UpstreamError:
    """Classify an OpenAI(-compatible) error answer.

    The upstream's text is kept whole (the kernel scrubs every field of secrets, then cuts it);
    numbers are read defensively (an unreadable ``Retry-After`` is no ``Retry-After``).
    """
    try:
        parsed = _ERROR_DECODER.decode(body).error
    except _UNREADABLE:
        parsed = None
    if isinstance(parsed, str):
        parsed = _ErrorObject(message=parsed)
    message = (_text(parsed.message) if parsed else None) or (
        body.decode("utf-8", "replace").strip() or f"upstream answered HTTP {status}"
    )
    code = _text(parsed.code) if parsed else None
    etype = _text(parsed.type) if parsed else None
    kind = None
    retry_after = parse_retry_after(headers) if status in (429, 503) else None
    if code == "context_length_exceeded" or (status == 400 and "maximum context length" in message):
        kind = "context_length"
    elif status == 429 and (code == "insufficient_quota" or etype == "insufficient_quota"):
        kind = "quota"
    elif status == 429 and retry_after is None:
        match = _TRY_AGAIN.search(message)
        if match:
            retry_after = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
    param = _text(parsed.param) if parsed else None
    return upstream_error(status, message, kind=kind, code=code, param=param, retry_after=retry_after)
