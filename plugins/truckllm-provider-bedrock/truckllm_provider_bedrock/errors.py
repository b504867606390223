"""Bedrock errors (``x-amzn-ErrorType`` and ``{"message"}``, or a stream's exception message)
classified for the kernel.

| Bedrock | status | kind (the kernel) |
|---|---|---|
| ``ThrottlingException`` | 429 | ``rate_limit``: cooldown (``Retry-After`` when sent), failover |
| ``ServiceQuotaExceededException`` | 429 | ``quota``: the key is out for the long cooldown |
| ``ModelNotReadyException``, ``ServiceUnavailableException`` | 503 | ``overloaded``: retried elsewhere |
| ``InternalServerException``, ``ModelErrorException``, ``ModelStreamErrorException`` | 502 | ``server`` |
| ``ModelTimeoutException`` | 504 | ``timeout`` |
| ``ValidationException`` | 400 | ``bad_request`` (``context_length`` when the input is too long) |
| ``AccessDeniedException`` | 403 | ``permission``: the key is disabled |
| ``UnrecognizedClientException``, ``InvalidSignatureException``... | 401 | ``auth``: key disabled |
| ``ResourceNotFoundException`` | 404 | ``not_found`` |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from truckllm.kit.openai_wire import parse_retry_after, upstream_error
from truckllm.types import UpstreamError

__all__ = ["classify", "classify_exception", "error_name"]

_KINDS: dict[str, tuple[str, int]] = {
    "throttlingexception": ("rate_limit", 429),
    "servicequotaexceededexception": ("quota", 429),
    "modelnotreadyexception": ("overloaded", 503),
    "serviceunavailableexception": ("overloaded", 503),
    "internalserverexception": ("server", 500),
    "modelerrorexception": ("server", 502),
    "modelstreamerrorexception": ("server", 502),
    "modeltimeoutexception": ("timeout", 504),
    "validationexception": ("bad_request", 400),
    "serializationexception": ("bad_request", 400),
    "accessdeniedexception": ("permission", 403),
    "unrecognizedclientexception": ("auth", 401),
    "invalidsignatureexception": ("auth", 401),
    "incompletesignatureexception": ("auth", 401),
    "expiredtokenexception": ("auth", 401),
    "missingauthenticationtokenexception": ("auth", 401),
    "resourcenotfoundexception": ("not_found", 404),
    "unknownoperationexception": ("not_found", 404),
}
_CONTEXT = ("too long", "too many input tokens", "context window", "context length", "exceeds the maximum")


class _Body(msgspec.Struct):
    message: Any = None
    Message: Any = None


def error_name(headers: Mapping[str, str], body: bytes) -> str:
    """The AWS exception name: ``x-amzn-ErrorType`` up to ``:``, else the body's ``__type``."""
    name = headers.get("x-amzn-errortype") or ""
    if not name:
        try:
            decoded = msgspec.json.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            decoded = None
        if isinstance(decoded, dict):
            name = str(decoded.get("__type") or decoded.get("code") or "")
    return name.split(":", 1)[0].rsplit("#", 1)[-1]


def _message(body: bytes) -> str:
    try:
        decoded = msgspec.json.decode(body, type=_Body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return body[:2000].decode("utf-8", "replace")
    message = decoded.message if decoded.message is not None else decoded.Message
    return message if isinstance(message, str) else ""


def _build(name: str, status: int, message: str, retry_after: float | None) -> UpstreamError:
    kind, default_status = _KINDS.get(name.lower(), ("", status))
    if not kind:
        kind = "server" if status >= 500 else ("auth" if status == 401 else "")
    if kind == "bad_request" and any(marker in message.lower() for marker in _CONTEXT):
        kind = "context_length"
    text = (
        f"{name}: {message}" if name and message else (message or name or f"Bedrock answered HTTP {status}")
    )
    code_status = default_status if name.lower() in _KINDS else status
    return upstream_error(code_status, text, kind=kind or None, retry_after=retry_after)


def classify(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """The kernel's reading of a Bedrock HTTP error answer."""
    return _build(error_name(headers, body), status, _message(body), parse_retry_after(headers))


def classify_exception(name: str, payload: bytes) -> UpstreamError:
    """The kernel's reading of a stream's ``:message-type exception`` (``throttlingException``...)."""
    return _build(name[:1].upper() + name[1:], 500, _message(payload), None)
