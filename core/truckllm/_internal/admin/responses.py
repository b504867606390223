"""What every admin handler answers with: JSON bodies, OpenAI-shaped errors, config problems, and
the audit line of a change."""

from __future__ import annotations

from typing import Any

import msgspec
from loguru import logger
from starlette.requests import Request
from starlette.responses import Response

from truckllm._internal.openai_api import OPENAI
from truckllm._internal.secrets import enc_hook
from truckllm.errors import ConfigError, GatewayError

__all__ = ["JSON", "audit", "error_response", "problems"]

_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook)


class JSON(Response):
    """A JSON response encoded with msgspec (secrets render as ``<secret>``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Encode ``content``."""
        return _ENCODER.encode(content)


def error_response(exc: GatewayError) -> Response:
    """An OpenAI-shaped error response."""
    return Response(
        OPENAI.error_body(exc), status_code=exc.status, media_type="application/json", headers=exc.headers
    )


def problems(exc: ConfigError, file: str | None = None) -> list[dict[str, Any]]:
    """``exc``'s problems as JSON rows; ``file`` names the text they are about when it was not a
    file (``<request body>``: the line numbers are the body's)."""
    return [
        {"file": file or p.file, "line": p.line, "field": p.field, "message": p.message} for p in exc.problems
    ]


def audit(request: Request, action: str, **details: Any) -> None:
    """Log one admin change (``audit=True``): what, by which client address, with what details."""
    client = request.client.host if request.client else "?"
    logger.bind(audit=True).info("admin {} by {} {}", action, client, details)
