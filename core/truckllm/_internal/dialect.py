"""Inbound API dialects: how a client's API is spoken at the gateway's front door.

The gateway's canonical dialect is OpenAI's (the kernel's own, in :mod:`truckllm._internal.openai_api`).
An inbound dialect plugin (Anthropic's Messages API, Gemini's generateContent...) registers an
:class:`InboundDialect` through ``register_dialects``: its routes, how a request in its format
becomes a :class:`~truckllm.types.ChatRequest` (the original bytes, plus the request translated to
OpenAI's typed form for providers of other dialects), how errors look, and how an answer in
OpenAI's form (or its own, passed through) becomes its format again. The kernel mounts the
routes and runs the same pipeline for every dialect: balancing, limits, usage, logs and metrics
treat all requests alike, with the dialect as a label.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import msgspec

from truckllm.errors import GatewayError
from truckllm.types import ChatRequest, DialectState, Upload

__all__ = ["ClientDialect", "DialectRoute", "FrameTranslator", "InboundDialect", "LocalAnswer", "LocalCall"]


class DialectRoute(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP route of a dialect.

    :ivar path: a starlette path, e.g. ``/v1/messages`` or ``/v1beta/models/{model}:generateContent``.
    :ivar endpoint: the kernel endpoint it serves: ``chat``, ``completions``, ``embeddings``,
        ``count_tokens`` (answered only by providers that list it in their ``endpoints``), or
        ``local``: answered by the dialect's own ``serve_local`` from its stored state, with no
        upstream call and no usage record (the gateway key is checked as for every route).
    :ivar methods: HTTP methods.
    :ivar name: the dialect's own name for the route (handed back to :meth:`InboundDialect.parse`).
    :ivar upload: the route's body is ``multipart/form-data``, parsed as it arrives: file parts
        spooled to temporary files (removed when the request ends), capped by
        ``server.limits.max_upload_bytes``; the dialect's ``parse_upload`` reads the request (a
        ``local`` route gets it in :attr:`LocalCall.upload`).
    """

    path: str
    endpoint: str
    methods: tuple[str, ...] = ("POST",)
    name: str = ""
    upload: bool = False


class LocalCall(msgspec.Struct, frozen=True, kw_only=True):
    """A request to one of a dialect's ``local`` routes (answered without any upstream).

    :ivar method: the HTTP method.
    :ivar path_params: the route's path parameters.
    :ivar query: the query parameters (last value wins).
    :ivar headers: the client's headers (lower-case names), minus credentials.
    :ivar body: the body as received (capped like every body; ``b""`` on an upload route).
    :ivar state: the dialect's stored state, scoped to the caller's gateway key.
    :ivar forward: serve a request the dialect builds (e.g. polling the provider account that
        holds a response) through the gateway's request path, as the caller's gateway key:
        limits, budget, failover, one usage record. Returns the whole answer in the dialect's
        format (its ``response`` was applied); raises :class:`GatewayError`. Not for streams.
    :ivar upload: on a route with ``upload``: the spooled form (its files live until the answer
        is sent).
    :ivar forward_stream: serve a request with ``stream=True`` the same way, answered as it
        arrives: a :class:`LocalAnswer` whose :attr:`~LocalAnswer.stream` yields the provider's
        (translated) chunks. Admission, failover and errors before the first byte raise
        :class:`GatewayError` here; a failure after it raises from the stream (the request's
        record is made when the stream ends or is closed: close it when not read to its end).
    :ivar shared: the dialect's stored state in a scope of no gateway key (the open gateway's
        scope), for what the dialect keeps across keys (an index of work a background task
        visits for every key); never hand its values to a client.
    """

    method: str
    path_params: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    state: DialectState
    forward: Callable[[ChatRequest], Awaitable[LocalAnswer]]
    upload: Upload | None = None
    forward_stream: Callable[[ChatRequest], Awaitable[LocalAnswer]] | None = None
    shared: DialectState | None = None


class LocalAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What a dialect's ``serve_local`` answers.

    :ivar status: the HTTP status.
    :ivar body: the response body.
    :ivar content_type: its content type.
    :ivar stream: instead of ``body``: the body's chunks, sent to the client as they come (status
        ``status``, chunked); an exception from it after the first chunk ends the response
        unfinished (the client sees a cut transfer, never a corrupt whole).
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    stream: AsyncIterator[bytes] | None = None


class FrameTranslator(Protocol):
    """Turns stream frames of one dialect into frames of another, chunk by chunk."""

    def feed(self, frames: bytes) -> bytes:
        """Translate complete frames (as a provider's translator produced them)."""

    def close(self) -> bytes:
        """The stream ended cleanly: the closing frames."""

    # Optional: ``error(error: GatewayError) -> bytes``, the frame that ends this stream after a
    # failure; the kernel prefers it to ``ClientDialect.stream_error`` (which is not told which
    # request failed, so it cannot know the form the client asked for).


class ClientDialect(Protocol):
    """Error rendering for one inbound dialect (what the pipeline needs)."""

    name: str

    def error_body(self, error: GatewayError) -> bytes:
        """The JSON body of an error response."""

    def stream_error(self, error: GatewayError) -> bytes:
        """The frame that reports an error after a stream has started."""


@runtime_checkable
class InboundDialect(ClientDialect, Protocol):
    """Everything the kernel needs to serve one client API dialect.

    A dialect class may subclass this protocol to inherit its defaults (``reframes_own``); one
    that does not and leaves ``reframes_own`` out gets the default when it is registered.

    :ivar routes: the HTTP routes the kernel mounts for this dialect.
    :ivar reframes_own: ``True`` makes the kernel call :meth:`response` and :meth:`stream` for
        answers already in this dialect's format too (a pass-through answer the client wants in
        another form of the same API: Gemini's JSON-array stream of an ``alt=sse`` upstream; or
        a stateful dialect that remembers every answer). Default ``False``: such answers go to
        the client as they are.

    Optional methods, looked up when the dialect is registered:

    - ``async prepare(request: ChatRequest) -> ChatRequest``: once per request, after
      :meth:`parse` (``request.state`` set) and before the input limits and the alias are
      checked: read stored state, return the request to serve (e.g. an earlier conversation made
      explicit, an :class:`~truckllm.types.Affinity`), or raise :class:`GatewayError`.
    - ``async serve_local(route: DialectRoute, call: LocalCall) -> LocalAnswer``: answers the
      dialect's ``local`` routes.
    - ``parse_upload(route, upload: Upload, path_params, query, headers) -> ChatRequest``: decodes
      a request of a route with ``upload`` (not ``local``) in place of :meth:`parse`: the result
      has ``body=b""``, ``upload=upload`` and ``model`` from the form's ``model`` field.
    """

    routes: Sequence[DialectRoute]
    reframes_own: bool = False

    def credentials(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """The gateway key the client presented (``Authorization: Bearer``, ``x-api-key``...)."""

    def parse(
        self,
        route: DialectRoute,
        body: bytes,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> ChatRequest:
        """Decode and validate one request; raise :class:`GatewayError` (4xx) for bad input.

        The result has ``dialect`` = this dialect's name, ``body`` = the bytes as received,
        ``model`` = the alias asked for, ``stream`` / ``include_usage``, and ``typed`` = the
        request in OpenAI's typed form (:mod:`truckllm.kit.openai_schemas`) for providers of another
        dialect.
        """

    def response(self, request: ChatRequest, body: bytes, source: str) -> bytes:
        """A whole answer in dialect ``source`` (``openai``, or this dialect's own when passed
        through) as this dialect's response body."""

    def stream(self, request: ChatRequest, source: str) -> FrameTranslator:
        """A translator of stream frames in dialect ``source`` into this dialect's frames."""

    def stream_content_type(self, request: ChatRequest) -> str:
        """The content type of this request's stream (``text/event-stream``...)."""
