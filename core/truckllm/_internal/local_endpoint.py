"""A dialect's ``local`` routes: answered from its stored state, with no upstream call.

The Responses API's ``GET /v1/responses/{id}`` and its siblings read what earlier requests
stored. The gateway key is checked exactly as on the request path (401 in the dialect's format),
the body is capped the same way, and the dialect's ``serve_local`` answers with the key's own
scope of state. Such calls make no usage record: they reach no model.

A streamed answer (a file's content relayed as it arrives) is watched for the client going away
(``http.disconnect``) like the request path's streams: the relay is cancelled at once, closing
its upstream read, instead of at its next write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from loguru import logger

from truckllm._internal.asgi_util import (
    ClientGone,
    Receive,
    Scope,
    Send,
    headers_dict,
    read_body,
    request_id,
    send_bytes,
)
from truckllm._internal.dialect import DialectRoute, InboundDialect, LocalAnswer, LocalCall
from truckllm._internal.endpoint import CREDENTIAL_HEADERS
from truckllm._internal.forward import local_call
from truckllm._internal.gateway import Gateway
from truckllm._internal.upload import Spool, read_upload
from truckllm.errors import GatewayError

__all__ = ["LocalEndpoint"]

_CREDENTIAL_NAMES = frozenset(name.decode() for name in CREDENTIAL_HEADERS)


async def _send_stream(send: Send, answer: LocalAnswer, headers: dict[str, str]) -> None:
    """Relay ``answer.stream`` chunk by chunk. Before the first chunk a failure is still an
    error answer (raised to the caller); after it the response is left unfinished."""
    stream = answer.stream
    assert stream is not None
    started = False
    try:
        async for chunk in stream:
            if not started:
                raw = [(b"content-type", answer.content_type.encode("latin-1"))]
                raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
                await send({"type": "http.response.start", "status": answer.status, "headers": raw})
                started = True
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except Exception as exc:
        if not started:
            if isinstance(exc, GatewayError):
                raise
            logger.opt(exception=exc).error("a streamed local answer failed")
            raise GatewayError(
                500, "The gateway failed to serve this request.", type="server_error"
            ) from None
        logger.warning("a streamed local answer failed after its first bytes: the response is cut ({})", exc)
        return  # no final empty body: the server ends the response unfinished
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]
    if not started:
        raw = [(b"content-type", answer.content_type.encode("latin-1"))]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": raw})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class _ClientWatch:
    """Cancels the serving task when ``receive()`` says the client disconnected (one pending
    ``receive()`` from :meth:`start` to :meth:`stop`)."""

    __slots__ = ("done", "fired", "pending", "receive", "task")

    def __init__(self, task: asyncio.Task[Any], receive: Receive) -> None:
        self.task = task
        self.receive = receive
        self.pending: asyncio.Future[Any] | None = None
        self.fired = False
        self.done = False

    def start(self) -> None:
        """Leave a ``receive()`` pending (a disconnect already queued is seen at once)."""
        self.pending = asyncio.ensure_future(self.receive())
        self.pending.add_done_callback(self)

    def stop(self) -> None:
        """No more cancelling; drop the pending ``receive()``."""
        self.done = True
        pending = self.pending
        if pending is not None and not pending.done():
            pending.remove_done_callback(self)
            pending.cancel()

    def __call__(self, future: asyncio.Future[Any]) -> None:
        if self.done or future.cancelled() or future.exception() is not None:
            return
        if future.result().get("type") == "http.disconnect":
            self.fired = True
            self.task.cancel()


async def _send_watched(send: Send, receive: Receive, answer: LocalAnswer, headers: dict[str, str]) -> None:
    """:func:`_send_stream`, cancelled as soon as the client disconnects (the stream is closed:
    its upstream read ends, and a forwarded stream records the client gone)."""
    task = asyncio.current_task()
    assert task is not None
    watch = _ClientWatch(task, receive)
    watch.start()
    try:
        await _send_stream(send, answer, headers)
    except asyncio.CancelledError:
        if not watch.fired:
            raise
        task.uncancel()  # cancelled here because the client left: nothing more to send
    finally:
        watch.stop()


class LocalEndpoint:
    """One ``local`` route of a dialect, served as a pure ASGI app."""

    def __init__(self, gateway: Gateway, dialect: InboundDialect, route: DialectRoute) -> None:
        serve: Callable[[DialectRoute, LocalCall], Awaitable[LocalAnswer]] | None = getattr(
            dialect, "serve_local", None
        )
        if serve is None:
            raise TypeError(f"dialect {dialect.name!r} declares a local route but no serve_local()")
        self.gateway = gateway
        self.dialect = dialect
        self.route = route
        self.serve = serve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id(scope)
        headers = {"x-request-id": rid}
        spool = Spool(self.gateway.runtime.config.server.upload_dir) if self.route.upload else None
        try:
            await self._answer(scope, receive, send, rid, headers, spool)
        finally:
            if spool is not None:
                spool.close()  # the upload's files, however the call ended

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        rid: str,
        headers: dict[str, str],
        spool: Spool | None,
    ) -> None:
        try:
            answer = await self._handle(scope, receive, spool)
        except ClientGone:
            return
        except GatewayError as exc:
            body = self.dialect.error_body(exc)
            await send_bytes(
                send, exc.status, {"content-type": "application/json", **headers, **exc.headers}, body
            )
            return
        except Exception as exc:  # a plugin's bug: still an answer in the client's format
            logger.opt(exception=exc).error("request {} failed in {}.serve_local", rid, self.dialect.name)
            error = GatewayError(500, "The gateway failed to serve this request.", type="server_error")
            with contextlib.suppress(Exception):
                await send_bytes(
                    send, 500, {"content-type": "application/json", **headers}, self.dialect.error_body(error)
                )
            return
        if answer.stream is not None:
            try:
                await _send_watched(send, receive, answer, headers)
            except GatewayError as exc:  # before the first byte: still an answer in the client's format
                body = self.dialect.error_body(exc)
                await send_bytes(
                    send, exc.status, {"content-type": "application/json", **headers, **exc.headers}, body
                )
            return
        await send_bytes(send, answer.status, {"content-type": answer.content_type, **headers}, answer.body)

    async def _handle(self, scope: Scope, receive: Receive, spool: Spool | None = None) -> LocalAnswer:
        gw = self.gateway
        rt = gw.runtime
        if gw.draining:
            raise GatewayError(
                503,
                "The gateway is shutting down.",
                type="server_error",
                headers={"retry-after": "1", "connection": "close"},
            )
        all_headers = headers_dict(scope)
        raw_query = scope.get("query_string")
        query = dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True)) if raw_query else {}
        key = rt.keyring.authenticate(self.dialect.credentials(all_headers, query))
        server = rt.config.server
        upload = None
        if spool is not None:
            body = b""
            upload = await read_upload(
                scope,
                receive,
                spool,
                limit=server.limits.max_upload_bytes,
                max_fields_bytes=server.max_body_bytes,
                idle_timeout=server.read_timeout,
                total_timeout=server.request_timeout,
            )
        else:
            body = await read_body(scope, receive, server.max_body_bytes, server.read_timeout)
        call = local_call(
            gw,
            rt,
            self.dialect,
            key,
            rid=request_id(scope),
            method=scope["method"],
            path_params=scope.get("path_params", {}),
            query=query,
            headers={k: v for k, v in all_headers.items() if k not in _CREDENTIAL_NAMES},
            body=body,
            upload=upload,
        )
        state = call.state
        try:
            return await self.serve(self.route, call)
        finally:
            await state.flush()  # what serve_local queued outside a forward (each forward flushes its own)
