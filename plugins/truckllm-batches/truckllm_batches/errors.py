"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import msgspec

from truckllm.errors import GatewayError

__all__ = ["error_body", "invalid", "not_found", "shown"]

QUOTED = 100
"""The most characters of client input an error message quotes."""


class _ErrorObject(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _ErrorBody(msgspec.Struct):
    error: _ErrorObject


def error_body(error: GatewayError) -> bytes:
    """The JSON body of an error answer, with all four members (as the kernel's OpenAI dialect)."""
    return msgspec.json.encode(
        _ErrorBody(_ErrorObject(message=error.message, type=error.type, param=error.param, code=error.code))
    )


def shown(value: str, limit: int = QUOTED) -> str:
    """``value`` as an error message quotes it: its first ``limit`` characters (``...`` after a cut)."""
    return value if len(value) <= limit else value[:limit] + "..."


def invalid(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    """A 400 ``invalid_request_error`` naming the field at fault."""
    return GatewayError(400, message, param=param, code=code)


def not_found(what: str, ident: str) -> GatewayError:
    """OpenAI's 404 for an id this gateway key does not hold (never stored, another key's,
    deleted, expired: the same answer, so that no key learns another's ids exist)."""
    return GatewayError(404, f"No such {what}: {shown(ident)}", param="id")
