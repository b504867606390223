"""The Anthropic Messages API as an inbound dialect of the gateway.

Routes: ``POST /v1/messages`` (the kernel's ``chat`` endpoint) and
``POST /v1/messages/count_tokens`` (``count_tokens``: answered only by deployments whose provider
lists that endpoint; otherwise the kernel answers 400 in Anthropic's shape).
"""

from __future__ import annotations

from collections.abc import Mapping

from loguru import logger

from truckllm.errors import GatewayError
from truckllm.kit.dialect import DialectRoute, bearer
from truckllm.types import ChatRequest

from .errors import error_body, stream_error
from .headers import check_headers
from .request import read_request
from .response import count_tokens_body, message_body
from .stream import OpenAIToAnthropic

__all__ = ["NAME", "AnthropicDialect", "Passthrough"]

NAME = "anthropic"
"""The dialect's name: ``ChatRequest.dialect``, the label in records and metrics."""


class Passthrough:
    """Frames already in Anthropic's format (an Anthropic deployment's own stream)."""

    def feed(self, frames: bytes) -> bytes:
        """The frames, unchanged."""
        return frames

    def close(self) -> bytes:
        """Nothing to add."""
        return b""


class AnthropicDialect:
    """Anthropic's Messages API at the gateway's front door.

    :ivar require_version: answer 400 when ``anthropic-version`` is missing, as Anthropic does.
    """

    name = NAME
    routes = (
        DialectRoute(path="/v1/messages", endpoint="chat", name="messages"),
        DialectRoute(path="/v1/messages/count_tokens", endpoint="count_tokens", name="count_tokens"),
    )

    def __init__(self, require_version: bool = True) -> None:
        self.require_version = require_version

    def credentials(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """The gateway key: ``x-api-key``, else ``Authorization: Bearer`` (Claude Code's
        ``ANTHROPIC_AUTH_TOKEN``, and newer SDKs)."""
        key = headers.get("x-api-key", "").strip()
        return key or bearer(headers.get("authorization"))

    def parse(
        self,
        route: DialectRoute,
        body: bytes,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> ChatRequest:
        """Validate an Anthropic request; keep its bytes; add its OpenAI typed form.

        :raises GatewayError: 400 ``invalid_request_error`` naming the field (or the
            ``anthropic-version`` / ``anthropic-beta`` header) at fault.
        """
        check_headers(headers, self.require_version)
        parsed = read_request(body, route.endpoint)
        if parsed.notes:
            logger.debug("anthropic dialect: for deployments of other dialects: {}", "; ".join(parsed.notes))
        return ChatRequest(
            endpoint=route.endpoint,
            dialect=NAME,
            body=body,
            model=parsed.model,
            stream=parsed.stream,
            include_usage=parsed.stream,  # OpenAI-dialect upstreams must send usage (Anthropic's do)
            typed=parsed.typed,
            headers=headers,
        )

    def response(self, request: ChatRequest, body: bytes, source: str) -> bytes:
        """An answer in ``source``'s format as Anthropic's: an OpenAI ``chat.completion`` becomes
        a ``Message`` (``model`` = the alias asked for); Anthropic's own is unchanged."""
        if source == NAME:
            return body
        if source != "openai":
            raise GatewayError(
                502, f"cannot turn a {source} answer into Anthropic's format", type="server_error"
            )
        if request.endpoint == "count_tokens":
            return count_tokens_body(body)
        return message_body(body, request.model)

    def stream(self, request: ChatRequest, source: str) -> OpenAIToAnthropic | Passthrough:
        """A translator of ``source``'s stream frames into Anthropic's events."""
        if source == NAME:
            return Passthrough()
        if source != "openai":
            raise GatewayError(
                502, f"cannot turn a {source} stream into Anthropic's format", type="server_error"
            )
        return OpenAIToAnthropic(request.model)

    def error_body(self, error: GatewayError) -> bytes:
        """``{"type":"error","error":{"type","message"}}`` with Anthropic's type for the status."""
        return error_body(error)

    def stream_error(self, error: GatewayError) -> bytes:
        """``event: error`` with the same body (Anthropic's SDKs raise on it)."""
        return stream_error(error)

    def stream_content_type(self, request: ChatRequest) -> str:
        """Server-sent events."""
        return "text/event-stream"
