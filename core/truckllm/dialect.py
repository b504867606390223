"""How errors look in a client's API dialect. OpenAI's is the kernel's own."""

from __future__ import annotations

from typing import Protocol

import msgspec

from truckllm.errors import GatewayError

__all__ = ["ClientDialect", "OpenAIDialect"]


class ClientDialect(Protocol):
    """Error rendering for one inbound API dialect."""

    name: str

    def error_body(self, error: GatewayError) -> bytes:
        """The JSON body of an error response."""

    def stream_error(self, error: GatewayError) -> bytes:
        """The SSE frame that reports an error after a stream has started."""


class _ErrorObject(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _ErrorBody(msgspec.Struct):
    error: _ErrorObject


class OpenAIDialect:
    """OpenAI's ``{"error": {"message", "type", "param", "code"}}``."""

    name = "openai"

    def error_body(self, error: GatewayError) -> bytes:
        """``{"error": {...}}`` with all four members."""
        return msgspec.json.encode(
            _ErrorBody(
                _ErrorObject(message=error.message, type=error.type, param=error.param, code=error.code)
            )
        )

    def stream_error(self, error: GatewayError) -> bytes:
        """``data: {"error": {...}}`` (openai-python raises ``APIError`` on it)."""
        return b"data: " + self.error_body(error) + b"\n\n"


OPENAI = OpenAIDialect()
