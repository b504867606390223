"""Reading OpenAI(-compatible) error answers, and the error for an answer that is not one."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from truckllm.kit.openai_wire import parse_retry_after, upstream_error
from truckllm.types import ChatRequest, UpstreamError

__all__ = ["CLIENT_CODES", "bad_response", "lost_conversation", "read_error", "responses_failure"]


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
    elif code == "previous_response_not_found":
        # the client's previous_response_id is unknown to this account: the client's error (never
        # a cooldown of the key), whatever status carried it; see lost_conversation() for the
        # conversation the gateway holds
        kind = "not_found" if status == 404 else "bad_request"
        status = status if status in (400, 404) else 400
    elif status == 429 and (code == "insufficient_quota" or etype == "insufficient_quota"):
        kind = "quota"
    elif status == 429 and retry_after is None:
        match = _TRY_AGAIN.search(message)
        if match:
            retry_after = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
    param = _text(parsed.param) if parsed else None
    return upstream_error(status, message, kind=kind, code=code, param=param, retry_after=retry_after)


def lost_conversation(error: UpstreamError, request: ChatRequest) -> UpstreamError:
    """``error`` as it bears on ``request``: a ``previous_response_not_found`` for a request whose
    conversation the gateway holds (an affinity with ``elsewhere``: the inbound dialect checked
    the id first) means this account lost it (its retention ended, it was deleted there, the
    server keeps nothing): kind ``not_found``, so the kernel sends the conversation spelled out to
    another candidate (the key is not blamed). Without such an affinity it stays the client's
    error (``bad_request``: no other candidate is tried)."""
    if error.code != "previous_response_not_found":
        return error
    affinity = request.affinity
    held = affinity is not None and affinity.elsewhere is not None
    kind = "not_found" if held or error.status == 404 else "bad_request"
    return error if error.kind == kind else msgspec.structs.replace(error, kind=kind)


CLIENT_CODES = frozenset(
    {
        "invalid_prompt", "bio_policy", "misalignment_policy_violation", "data_residency_mismatch",
        "invalid_image", "invalid_image_format", "invalid_base64_image", "invalid_image_url",
        "image_too_large", "image_too_small", "image_parse_error", "image_content_policy_violation",
        "invalid_image_mode", "image_file_too_large", "unsupported_image_media_type",
        "empty_image_file", "failed_to_download_image", "image_file_not_found", "content_filter",
    }
)  # fmt: skip
"""``ResponseError`` codes that blame the request (a failed Response with one is not retried)."""

_RESPONSE_CODES = {
    "rate_limit_exceeded": (429, "rate_limit"),
    "insufficient_quota": (429, "quota"),
    "context_length_exceeded": (400, "context_length"),
    "previous_response_not_found": (400, "bad_request"),
}


class _StreamError(msgspec.Struct):
    message: Any = None
    type: Any = None
    param: Any = None
    code: Any = None
    error: Any = None


def responses_failure(payload: Any, default_kind: str, what: str) -> UpstreamError:
    """Classify the error of a failed Response or of a stream's ``error`` event.

    :param payload: the decoded ``error`` object (``{code, message, param, type}``; an ``error``
        event's own members, or one nested under ``error``), or ``None``.
    :param default_kind: the kind of an error that blames neither the key nor the request
        (``stream`` mid-stream, ``server`` for a whole answer): another attempt may succeed.
    :param what: what failed, for a message when the upstream gave none.
    """
    try:
        error = msgspec.convert(payload, _StreamError) if isinstance(payload, dict) else _StreamError()
    except msgspec.ValidationError:  # pragma: no cover - every member is Any
        error = _StreamError()
    if isinstance(error.error, dict):
        return responses_failure(error.error, default_kind, what)
    code, etype, param = _text(error.code), _text(error.type), _text(error.param)
    message = _text(error.message) or (f"{what} (code {code})" if code else what)
    status, kind = _RESPONSE_CODES.get(code or "", (502, default_kind))
    if kind == default_kind and (code in CLIENT_CODES or etype == "invalid_request_error"):
        status, kind = 400, "bad_request"
    retry_after = None
    if kind == "rate_limit":
        match = _TRY_AGAIN.search(message)  # OpenAI's "Please try again in 1.5s": read, as for a 429
        if match:
            retry_after = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
    if kind in ("stream", "server"):
        return UpstreamError(
            status=502, kind=kind, message=message, type=etype or "server_error", code=code, param=param
        )
    return upstream_error(
        status, message, kind=kind, code=code, param=param, type=etype, retry_after=retry_after
    )
