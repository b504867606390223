"""Requests a dialect builds itself, served through the request path: whole or as a stream.

A ``local`` route's :class:`~truckllm._internal.dialect.LocalCall` carries ``forward`` (a whole
answer: :func:`~truckllm._internal.endpoint.serve_whole`) and ``forward_stream``
(:func:`serve_stream`: the answer relayed as it arrives, e.g. a file's content). A startup task
gets the same pair for a named gateway key through :func:`local_call`
(``GatewayView.local_call``), so that work no client asked for (polling a batch) is served and
recorded exactly as a client's call would be.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping

from loguru import logger

from truckllm._internal.auth import GatewayKey
from truckllm._internal.dialect import InboundDialect, LocalAnswer, LocalCall
from truckllm._internal.dialect_state import RequestState
from truckllm._internal.endpoint import admit_request, check_limits, request_state, serve_whole
from truckllm._internal.gateway import Gateway
from truckllm._internal.guard_stages import guard_forwarded
from truckllm._internal.identity import identify
from truckllm._internal.pipeline import serve
from truckllm._internal.request import Outcome, RequestContext, end_request
from truckllm._internal.run import error_to_gateway
from truckllm._internal.runtime import Runtime
from truckllm.errors import GatewayError
from truckllm.types import ChatRequest, Upload

__all__ = ["local_call", "serve_stream"]

_REJECTED_KIND = {401: "auth", 403: "permission", 404: "not_found", 413: "too_large", 429: "rate_limit"}


def _end(gw: Gateway, rt: Runtime, ctx: RequestContext) -> None:
    try:
        end_request(gw, rt, ctx)
    except Exception as exc:  # a record that cannot be built must not keep the request in flight
        logger.opt(exception=exc).error("request {} could not be recorded", ctx.request_id)
    finally:
        gw.leave()


async def _relay(gw: Gateway, rt: Runtime, ctx: RequestContext, outcome: Outcome) -> AsyncIterator[bytes]:
    """The outcome's chunks (or its whole body); the request ends with the stream, however it
    ends. An upstream failure after the first chunk raises :class:`GatewayError` (the relay's
    error frame is not passed on: it would corrupt raw bytes)."""
    try:
        if outcome.stream is None:
            if outcome.body:
                yield outcome.body
            return
        async for chunk in outcome.stream:
            if ctx.error is not None:
                break  # the relay's closing error frame: not part of the content
            yield chunk
        if ctx.error is not None:
            raise error_to_gateway(ctx.error)
    except (GeneratorExit, asyncio.CancelledError):
        ctx.client_disconnected = True
        ctx.status = 499
        raise
    finally:
        if outcome.stream is not None:
            await outcome.stream.aclose()  # type: ignore[attr-defined]
        if ctx.state is not None:
            await ctx.state.flush()
        _end(gw, rt, ctx)


async def serve_stream(
    gw: Gateway,
    rt: Runtime,
    dialect: InboundDialect,
    key: GatewayKey | None,
    request: ChatRequest,
    rid: str,
    *,
    own: bool = False,
) -> LocalAnswer:
    """Serve a request a dialect made itself, with ``stream=True``, relayed as it arrives.

    The same path as :func:`~truckllm._internal.endpoint.serve_whole` (the key's team, org and
    tags, limits, alias, budget, failover before the first byte; nothing refused by limits or
    budgets when ``own``); the request's one record is made when the returned stream ends or is
    closed.

    :raises GatewayError: the request was refused or failed before its first byte.
    """
    if not request.stream:
        raise GatewayError(400, "forward_stream serves stream requests only.", param="stream")
    ctx = RequestContext(request_id=rid, dialect=dialect, endpoint=request.endpoint)
    ctx.gateway_key = key.name if key is not None else None
    ctx.request = request
    ctx.state = request.state if isinstance(request.state, RequestState) else None
    gw.enter()
    try:
        key = identify(rt, ctx, key, request, {})  # the key's team, org and tags (no client headers)
        check_limits(rt, request.typed)
        request = ctx.request = await guard_forwarded(rt, ctx, request)  # before admission
        await admit_request(gw, rt, ctx, request, key, own=own)
        outcome = await serve(gw, rt, request, ctx)
    except GatewayError as exc:
        ctx.status = exc.status
        if ctx.error is None:
            ctx.rejected_kind = _REJECTED_KIND.get(exc.status, "bad_request")
            ctx.rejected_message = exc.message
        _end(gw, rt, ctx)
        raise
    except BaseException:
        ctx.client_disconnected = True
        ctx.status = 499
        _end(gw, rt, ctx)
        raise
    return LocalAnswer(
        status=outcome.status,
        content_type=outcome.headers.get("content-type", "application/octet-stream"),
        stream=_relay(gw, rt, ctx, outcome),
    )


def local_call(
    gw: Gateway,
    rt: Runtime,
    dialect: InboundDialect,
    key: GatewayKey | None,
    *,
    rid: str | None = None,
    method: str = "GET",
    path_params: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    upload: Upload | None = None,
    own: bool = False,
) -> LocalCall:
    """A :class:`LocalCall` of ``dialect`` as the gateway key ``key``: its state scoped to that
    key (and ``shared``, scoped to none), ``forward`` and ``forward_stream`` served as that key
    (its limits, budget, records). ``own``: the gateway's own background work (no client asked
    for it), never refused by the key's rate limits or budgets and taking none of its rpm or
    tpm; its cost is still settled at every level."""
    state = request_state(gw, rt, dialect.name, key.name if key is not None else None)
    request_id = rid or "req_" + os.urandom(12).hex()

    async def forward(request: ChatRequest) -> LocalAnswer:
        request.state = state
        outcome = await serve_whole(gw, rt, dialect, key, request, request_id, own=own)
        return LocalAnswer(
            status=outcome.status,
            body=outcome.body,
            content_type=outcome.headers.get("content-type", "application/json"),
        )

    async def forward_stream(request: ChatRequest) -> LocalAnswer:
        request.state = state
        return await serve_stream(gw, rt, dialect, key, request, request_id, own=own)

    return LocalCall(
        method=method,
        path_params=path_params or {},
        query=query or {},
        headers=headers or {},
        body=body,
        state=state,
        forward=forward,
        upload=upload,
        forward_stream=forward_stream,
        shared=state if key is None else request_state(gw, rt, dialect.name, None),
    )
