"""The Responses API as an inbound dialect of the gateway (a stub: helper B2 replaces it)."""

from __future__ import annotations

from collections.abc import Mapping

from truckllm.errors import GatewayError
from truckllm.kit.dialect import DialectRoute, FrameTranslator, bearer
from truckllm.types import ChatRequest

__all__ = ["NAME", "ResponsesDialect"]

NAME = "responses"
"""The dialect's name: ``ChatRequest.dialect``, the label in records and metrics."""


class ResponsesDialect:
    """OpenAI's Responses API at the gateway's front door (stub)."""

    name = NAME
    routes = (DialectRoute(path="/v1/responses", endpoint="chat", name="responses"),)

    def credentials(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """The gateway key: ``Authorization: Bearer``."""
        return bearer(headers.get("authorization"))

    def parse(
        self,
        route: DialectRoute,
        body: bytes,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> ChatRequest:
        """Not served yet."""
        raise GatewayError(501, "the Responses API is not served yet", type="server_error")

    def response(self, request: ChatRequest, body: bytes, source: str) -> bytes:
        """Not served yet."""
        raise GatewayError(501, "the Responses API is not served yet", type="server_error")

    def stream(self, request: ChatRequest, source: str) -> FrameTranslator:
        """Not served yet."""
        raise GatewayError(501, "the Responses API is not served yet", type="server_error")

    def error_body(self, error: GatewayError) -> bytes:
        """OpenAI's error shape."""
        from .errors import error_body

        return error_body(error)

    def stream_error(self, error: GatewayError) -> bytes:
        """An ``event: error`` frame."""
        from .errors import stream_error

        return stream_error(error)

    def stream_content_type(self, request: ChatRequest) -> str:
        """Server-sent events."""
        return "text/event-stream"
