"""OpenAI's Files and Batch APIs as an inbound dialect of the gateway: every route is ``local``
(answered by :meth:`BatchesDialect.serve_local`), its upstream calls forwarded through the request
path to the account that holds each file and batch."""

from __future__ import annotations

from collections.abc import Mapping

from truckllm.errors import GatewayError
from truckllm.kit.dialect import DialectRoute, FrameTranslator, LocalAnswer, LocalCall, bearer
from truckllm.types import ChatRequest

from .batches import serve_batches
from .errors import error_body
from .files import NAME, serve_files

__all__ = ["NAME", "BatchesDialect"]


class _AsItCame:
    """The identity frame translator (file bytes are not frames)."""

    def feed(self, frames: bytes) -> bytes:
        """The bytes, as they came."""
        return frames

    def close(self) -> bytes:
        """Nothing more."""
        return b""

    def error(self, error: GatewayError) -> bytes:
        """Nothing: raw bytes cannot carry an error event (the response is cut instead)."""
        return b""


class BatchesDialect:
    """``/v1/files`` and ``/v1/batches`` at the gateway's front door."""

    name = NAME
    reframes_own = False
    routes = (
        DialectRoute(path="/v1/files", endpoint="local", methods=("POST",), name="files", upload=True),
        DialectRoute(path="/v1/files", endpoint="local", methods=("GET",), name="files"),
        DialectRoute(path="/v1/files/{file_id}", endpoint="local", methods=("GET", "DELETE"), name="file"),
        DialectRoute(
            path="/v1/files/{file_id}/content", endpoint="local", methods=("GET",), name="file_content"
        ),
        DialectRoute(path="/v1/batches", endpoint="local", methods=("GET", "POST"), name="batches"),
        DialectRoute(path="/v1/batches/{batch_id}", endpoint="local", methods=("GET",), name="batch"),
        DialectRoute(
            path="/v1/batches/{batch_id}/cancel", endpoint="local", methods=("POST",), name="batch_cancel"
        ),
    )

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
        """Never called: every route is ``local``."""
        raise GatewayError(404, "No such route.")

    async def serve_local(self, route: DialectRoute, call: LocalCall) -> LocalAnswer:
        """Answer one route (see :mod:`.files`, :mod:`.batches`)."""
        if route.name.startswith("file"):
            return await serve_files(route.name, call)
        return await serve_batches(route.name, call)

    def response(self, request: ChatRequest, body: bytes, source: str) -> bytes:
        """A forwarded call's answer, as the provider gave it (OpenAI's Files and Batch objects)."""
        return body

    def stream(self, request: ChatRequest, source: str) -> FrameTranslator:
        """A file's content read as it arrives (``files.content``, ``batches.usage``): the bytes as
        the provider's translator made them."""
        return _AsItCame()

    def stream_content_type(self, request: ChatRequest) -> str:
        """A file's bytes."""
        return "application/octet-stream"

    def error_body(self, error: GatewayError) -> bytes:
        """OpenAI's error shape."""
        return error_body(error)

    def stream_error(self, error: GatewayError) -> bytes:
        """Never used (no streams): the error body."""
        return error_body(error)
