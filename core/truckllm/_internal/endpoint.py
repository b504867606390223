"""The request-path ASGI endpoint, the same for every inbound dialect.

Pure ASGI (the hot path): read the body with a size cap, check the gateway key, let the dialect
decode and validate the request once, resolve the alias, check limits and budgets, run the
pipeline while watching for the client going away, and send the answer (whole, or a stream
frame by frame) in the client's dialect.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from loguru import logger

from truckllm._internal import response_cache
from truckllm._internal.admission import (
    admit,
    charge_only,
    check_priced,
    content_size,
    estimate_tokens,
    serving_plans,
)
from truckllm._internal.affinity import affinity_key
from truckllm._internal.asgi_util import (
    ClientGone,
    Receive,
    Scope,
    Send,
    headers_dict,
    read_body,
    request_id_of,
    send_bytes,
)
from truckllm._internal.auth import GatewayKey
from truckllm._internal.bodies import BodyCapture, form_summary
from truckllm._internal.dialect import DialectRoute, InboundDialect
from truckllm._internal.dialect_state import RequestState, backend_of
from truckllm._internal.gateway import Gateway
from truckllm._internal.governance import levels as governance_levels
from truckllm._internal.guard_stages import check_answer, check_request, check_upload, guard_forwarded
from truckllm._internal.guard_stream import guard_stream
from truckllm._internal.identity import identify
from truckllm._internal.pipeline import serve
from truckllm._internal.request import BATCH_USAGE, Outcome, RequestContext, end_request
from truckllm._internal.response_cache import CacheRun
from truckllm._internal.runtime import AliasPlan, Runtime
from truckllm._internal.schemas.openai import ChatCompletionRequest, check_input
from truckllm._internal.scrub import cut
from truckllm._internal.units import image_tier, request_units
from truckllm._internal.upload import Spool, read_upload
from truckllm.errors import GatewayError
from truckllm.types import ChatRequest

__all__ = [
    "WATCH_AFTER",
    "ApiEndpoint",
    "admit_request",
    "check_limits",
    "content_size",
    "request_state",
    "resolve_alias",
    "serve_whole",
]

_WORKER = os.environ.get("TRUCKLLM_WORKER")  # set by truckllm.server.supervise() in each worker
WATCH_AFTER = 0.02
"""Seconds a whole (non-stream) request runs before the gateway starts watching for its client's
disconnect: most fast answers are sent sooner and need no watch, and a client that left earlier
is still seen then. Streams are watched from their start."""
_REJECTED_KIND = {401: "auth", 403: "permission", 404: "not_found", 413: "too_large", 429: "rate_limit"}
CREDENTIAL_HEADERS = frozenset(
    {b"authorization", b"x-api-key", b"x-goog-api-key", b"cookie", b"proxy-authorization"}
)
_CREDENTIAL_NAMES = frozenset(name.decode() for name in CREDENTIAL_HEADERS)


def check_limits(rt: Runtime, typed: Any) -> None:
    limits = rt.config.server.limits
    for name in ("prompt", "input"):
        problem = check_input(getattr(typed, name, None), name)
        if problem:
            raise GatewayError(400, problem, param=name)
    if isinstance(typed, ChatCompletionRequest):
        if len(typed.messages) > limits.max_messages:
            raise GatewayError(
                400,
                f"Too many messages: {len(typed.messages)}; the limit is {limits.max_messages}.",
                param="messages",
            )
        if isinstance(typed.tools, list) and len(typed.tools) > limits.max_tools:
            raise GatewayError(
                400, f"Too many tools: {len(typed.tools)}; the limit is {limits.max_tools}.", param="tools"
            )
        size = content_size(typed)
        if size > limits.max_content_bytes:
            raise GatewayError(
                400,
                f"The messages' content is too large: {size} bytes; the limit is {limits.max_content_bytes}.",
                param="messages",
                code="content_too_large",
            )


def resolve_alias(rt: Runtime, model: str, allowed: frozenset[str] | None = None) -> AliasPlan:
    """The plan of the alias (or opted-in ``provider/model``) a client's ``model`` names.

    :raises GatewayError: 404 ``model_not_found`` if the config serves no such model to this key.
    """
    plan = rt.plan(model, allowed)
    if plan is not None:
        return plan
    raise GatewayError(
        404,
        f"The model '{cut(model, 100)}' does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def request_state(gw: Gateway, rt: Runtime, dialect: str, key: str | None) -> RequestState:
    """One request's stored-state access for ``dialect``, scoped to the gateway key ``key``."""
    config = rt.config.server.state
    gw.memory_state.max_items = config.memory_items
    gw.memory_state.max_bytes = config.memory_bytes
    return RequestState(backend_of(gw.store, gw.memory_state), dialect, key, config.ttl, config.max_bytes)


async def admit_request(
    gw: Gateway,
    rt: Runtime,
    ctx: RequestContext,
    request: ChatRequest,
    key: GatewayKey | None,
    *,
    own: bool = False,
) -> None:
    """Resolve the request's alias (within the key's allow-list), check that it serves the
    endpoint and, for a budgeted key, that it is priced; then take the key's limits and reserve
    its budget.

    Spend that happened already is never refused: a finished batch's usage read (the endpoint
    :data:`~truckllm._internal.request.BATCH_USAGE`) and the gateway's own background calls
    (``own``: ``GatewayView.local_call``) take no rpm or tpm and are not checked against any
    budget; their cost is settled at every level's budgets all the same
    (:func:`~truckllm._internal.admission.charge_only`).

    :raises GatewayError: 404 / 403 / 400 for the model, 429 over a limit or budget.
    """
    plan = resolve_alias(rt, request.model, key.models if key is not None else None)
    alias = plan.alias
    if key is not None and key.models is not None and not _allowed(alias, key.models):
        raise GatewayError(
            403, f"This API key may not use the model '{alias}'.", code="model_not_allowed", param="model"
        )
    ctx.alias = alias
    ctx.plan = plan
    if request.endpoint not in plan.endpoints:
        raise GatewayError(
            400, f"The model '{alias}' does not support the {request.endpoint} endpoint.", param="model"
        )
    levels = governance_levels(rt.config, key, ctx.user, ctx.tags)  # key, team, org, end user, tags
    if any(level.budgets for level in levels):
        ctx.priced_only = True
        check_priced(rt, plan, request.endpoint)
    if own or request.endpoint == BATCH_USAGE:
        if gw.store is not None:
            ctx.reservation = charge_only("rsv_" + os.urandom(12).hex(), levels)
        return
    settings = rt.config.affinity
    if settings.enabled and request.affinity is None and len(plan.candidates) > 1:
        conversation = affinity_key(request)
        if conversation is not None:  # the pin's read overlaps the admission's round trip
            ctx.conversation = (request, conversation)
            name = gw.affinity.name(ctx.gateway_key, plan.alias, conversation)
            ctx.pin_read = (name, gw.affinity.prefetch(gw.store, name))
    if (key is not None or levels) and gw.store is not None:
        ctx.estimated_tokens = estimate_tokens(request)
        units = request_units(request)
        ctx.reservation = await admit(
            # the store's reservation id is the gateway's own: X-Request-Id is the client's
            gw.store,
            key,
            serving_plans(rt, plan),
            ctx.estimated_tokens,
            "rsv_" + os.urandom(12).hex(),
            levels=levels,
            alerts=gw.alerts.emit,
            thresholds=rt.config.alerts.thresholds,
            units=units,
            tier=image_tier(request) if units is not None else "",
        )


async def serve_whole(
    gw: Gateway,
    rt: Runtime,
    dialect: InboundDialect,
    key: GatewayKey | None,
    request: ChatRequest,
    rid: str,
    *,
    own: bool = False,
) -> Outcome:
    """Serve a request a dialect made itself (a ``local`` route's ``forward``) as a whole answer.

    The same path as a client's request once decoded: the key's team, organisation and tags,
    input limits, alias and allow-list, the key's limits and budget (none refused when ``own``:
    see :func:`admit_request`), the failover loop, one usage record and one settlement. Streams
    are not forwarded.

    :raises GatewayError: the answer's error, rendered by the caller in the dialect's format.
    """
    if request.stream:
        raise GatewayError(400, "A forwarded request cannot stream.", param="stream")
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
        if rt.config.guardrails and outcome.stream is None:
            content_type = outcome.headers.get("content-type", "application/json")
            outcome.body = await check_answer(rt, ctx, dialect.name, outcome.body, content_type)
        if ctx.state is not None:
            await ctx.state.flush()
        return outcome
    except GatewayError as exc:
        ctx.status = exc.status
        if ctx.error is None:
            ctx.rejected_kind = _REJECTED_KIND.get(exc.status, "bad_request")
            ctx.rejected_message = exc.message
        raise
    except asyncio.CancelledError:
        ctx.client_disconnected = True
        ctx.status = 499
        raise
    finally:
        try:
            end_request(gw, rt, ctx)
        except Exception as exc:  # a record that cannot be built must not keep the request in flight
            logger.opt(exception=exc).error("request {} could not be recorded", rid)
        finally:
            gw.leave()


def keeps_bodies(rt: Runtime, key: GatewayKey | None, alias: str | None) -> bool:
    """Whether a request's bodies go in its record: its gateway key or its alias opts in."""
    if key is not None and key.config.log_bodies:
        return True
    model = rt.config.models.get(alias) if alias is not None else None
    return model is not None and model.log_bodies


def _allowed(model: str, allowed: frozenset[str]) -> bool:
    """A key's allow-list names aliases, ``provider/model`` or ``provider/*``."""
    if model in allowed:
        return True
    provider, sep, _ = model.partition("/")
    return bool(sep) and f"{provider}/*" in allowed


class ApiEndpoint:
    """One dialect route served as a pure ASGI app."""

    def __init__(self, gateway: Gateway, dialect: InboundDialect, route: DialectRoute) -> None:
        self.gateway = gateway
        self.dialect = dialect
        self.route = route
        self.endpoint = route.endpoint
        self.prepare: Callable[[ChatRequest], Awaitable[ChatRequest]] | None = getattr(
            dialect, "prepare", None
        )
        self.parse_upload: Callable[..., ChatRequest] | None = getattr(dialect, "parse_upload", None)
        if route.upload and self.parse_upload is None:
            raise TypeError(f"dialect {dialect.name!r} declares an upload route but no parse_upload()")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw = self.gateway
        rt = gw.runtime  # the snapshot this request keeps to its end
        all_headers = headers_dict(scope)  # one pass over the headers for everything below
        ctx = RequestContext(
            request_id=request_id_of(all_headers), dialect=self.dialect, endpoint=self.endpoint
        )
        cache: list[CacheRun] = []  # the request's response-cache run, once admitted
        spool = Spool(rt.config.server.upload_dir) if self.route.upload else None
        gw.enter()
        try:
            await self._handle(rt, ctx, scope, receive, send, cache, all_headers, spool)
        except ClientGone:
            ctx.client_disconnected = True
            ctx.status = 499
        except GatewayError as exc:
            await self._reject(ctx, send, exc)
        except Exception as exc:  # a kernel bug: still an answer in the client's format, and logged
            logger.opt(exception=exc).error("request {} failed inside the gateway", ctx.request_id)
            error = GatewayError(500, "The gateway failed to serve this request.", type="server_error")
            with contextlib.suppress(Exception):
                await self._reject(ctx, send, error)
        finally:
            try:  # the one place a request ends: one record, one settlement
                response_cache.end(gw, rt, ctx, cache[0] if cache else None)
            except Exception as exc:  # a record that cannot be built must not keep the request in flight
                logger.opt(exception=exc).error("request {} could not be recorded", ctx.request_id)
            finally:
                if spool is not None:
                    spool.close()  # the upload's files, however the request ended
                gw.leave()

    async def _reject(self, ctx: RequestContext, send: Send, exc: GatewayError) -> None:
        """Answer ``exc`` in the client's dialect (and say why in the request's record)."""
        ctx.status = exc.status
        if ctx.error is None:  # rejected by the gateway itself, not after an upstream's answer
            ctx.rejected_kind = _REJECTED_KIND.get(exc.status, "bad_request")
            ctx.rejected_message = exc.message
        headers = {"content-type": "application/json", "x-request-id": ctx.request_id, **exc.headers}
        if _WORKER is not None:
            headers["x-truckllm-worker"] = _WORKER
        await send_bytes(send, exc.status, headers, self.dialect.error_body(exc))

    def _parse(
        self, rt: Runtime, body: bytes, scope: Scope, query: dict[str, str], headers: dict[str, str]
    ) -> ChatRequest:
        try:
            return self.dialect.parse(self.route, body, scope.get("path_params", {}), query, headers)
        except RecursionError:  # a dialect plugin that decodes without truckllm.kit.safejson
            raise GatewayError(400, "The JSON body is nested too deeply.", code="invalid_json") from None

    async def _read_upload(
        self,
        rt: Runtime,
        scope: Scope,
        receive: Receive,
        spool: Spool,
        query: dict[str, str],
        headers: dict[str, str],
    ) -> ChatRequest:
        """A multipart body spooled as it arrives (see :mod:`truckllm._internal.upload`), read by
        the dialect's ``parse_upload``."""
        server = rt.config.server
        upload = await read_upload(
            scope,
            receive,
            spool,
            limit=server.limits.max_upload_bytes,
            max_fields_bytes=server.max_body_bytes,
            idle_timeout=server.read_timeout,
            total_timeout=server.request_timeout,
        )
        assert self.parse_upload is not None
        return self.parse_upload(self.route, upload, scope.get("path_params", {}), query, headers)

    async def _prepare(self, rt: Runtime, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        """A stateful dialect's ``prepare``: the request with its stored state attached."""
        assert self.prepare is not None
        state = request_state(self.gateway, rt, self.dialect.name, ctx.gateway_key)
        request.state = state
        ctx.state = state
        prepared = await self.prepare(request)
        prepared.state = state
        if prepared.affinity is not None and prepared.affinity.elsewhere is not None:
            prepared.affinity.elsewhere.state = state
        return prepared

    async def _guard_input(
        self,
        rt: Runtime,
        ctx: RequestContext,
        request: ChatRequest,
        body: bytes,
        scope: Scope,
        query: dict[str, str],
        headers: dict[str, str],
    ) -> tuple[bytes, ChatRequest]:
        """The guardrails' input stage: the body and request to serve (masked ones re-parsed
        through the dialect, so that the typed form and the bytes agree)."""
        masked = await check_request(rt, ctx, request)
        if masked is None:
            return body, request
        request = ctx.request = self._parse(rt, masked, scope, query, headers)
        if self.prepare is not None:
            request = ctx.request = await self._prepare(rt, ctx, request)
        check_limits(rt, request.typed)
        return masked, request

    async def _guard_output(self, rt: Runtime, ctx: RequestContext, outcome: Outcome) -> Outcome:
        """The guardrails' output stage on an answer in the client's dialect."""
        if outcome.stream is None:
            content_type = outcome.headers.get("content-type", "application/json")
            outcome.body = await check_answer(rt, ctx, self.dialect.name, outcome.body, content_type)
            return outcome
        content_type = outcome.headers.get("content-type", "text/event-stream")
        guarded = guard_stream(rt, ctx, self.dialect.name, content_type, outcome.stream)
        if guarded is not None:
            outcome.stream = guarded
        return outcome

    async def _handle(
        self,
        rt: Runtime,
        ctx: RequestContext,
        scope: Scope,
        receive: Receive,
        send: Send,
        cache: list[CacheRun],
        all_headers: dict[str, str],
        spool: Spool | None = None,
    ) -> None:
        if self.gateway.draining:
            raise GatewayError(
                503,
                "The gateway is shutting down.",
                type="server_error",
                headers={"retry-after": "1", "connection": "close"},
            )
        raw_query = scope.get("query_string")
        query = dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True)) if raw_query else {}
        key = rt.keyring.authenticate(self.dialect.credentials(all_headers, query))
        ctx.gateway_key = key.name if key else None
        plain = {k: v for k, v in all_headers.items() if k not in _CREDENTIAL_NAMES}
        if spool is not None:
            body = b""
            request = await self._read_upload(rt, scope, receive, spool, query, plain)
        else:
            body = await read_body(
                scope, receive, rt.config.server.max_body_bytes, rt.config.server.read_timeout
            )
            request = self._parse(rt, body, scope, query, plain)
        ctx.request = request
        if self.prepare is not None:
            request = ctx.request = await self._prepare(rt, ctx, request)
        check_limits(rt, request.typed)
        key = identify(rt, ctx, key, request, plain)  # team, org, end user, tags; models narrowed
        # before admission (a blocked request reserves nothing); an upload's text fields (never
        # its files) are checked, masked ones replaced in the form the provider rebuilds
        if rt.config.guardrails and request.upload is None:
            body, request = await self._guard_input(rt, ctx, request, body, scope, query, plain)
        elif rt.config.guardrails:
            masked = await check_upload(rt, ctx, request)
            if masked is not None:
                request.upload = masked
        await admit_request(self.gateway, rt, ctx, request, key)
        if keeps_bodies(rt, key, ctx.alias):  # an upload's: its form's summary, never its files
            kept = form_summary(request.upload) if request.upload is not None else body
            ctx.bodies = BodyCapture(rt.config.server.log_bodies_max_bytes, request=kept)

        stream_slot = None
        limit = rt.config.server.limits.max_streams_per_key
        if request.stream and limit and key is not None:
            if self.gateway.streams[key.name] >= limit:
                raise GatewayError(
                    429,
                    f"Too many concurrent streams for API key '{key.name}': the limit is {limit}.",
                    type="rate_limit_error",
                    code="concurrent_streams_exceeded",
                    headers={"retry-after": "1"},
                )
            stream_slot = key.name
            self.gateway.streams[key.name] += 1
        run = response_cache.start(self.gateway, rt, ctx, request) if request.upload is None else None
        if run is not None:
            cache.append(run)
        try:
            await self._run(rt, ctx, request, receive, send, run)
        finally:
            if stream_slot is not None:
                self.gateway.streams[stream_slot] -= 1

    async def _run(
        self,
        rt: Runtime,
        ctx: RequestContext,
        request: ChatRequest,
        receive: Receive,
        send: Send,
        cache: CacheRun | None = None,
    ) -> None:
        """Serve in this task; a client that goes away cancels it (and with it the upstream call)."""
        task = asyncio.current_task()
        assert task is not None
        watch = _DisconnectWatch(task, ctx, receive)
        timer: asyncio.TimerHandle | None = None
        if request.stream:
            watch.start()  # a stream holds a per-key slot: free it as soon as its client leaves
        else:  # most whole answers are sent before a watch would be needed: start one only if not
            timer = asyncio.get_running_loop().call_later(WATCH_AFTER, watch.start)
        try:
            if cache is None and not rt.config.guardrails:  # the plain path: no cache, no guardrails
                outcome = await serve(self.gateway, rt, request, ctx)
            else:
                outcome = await self._serve(rt, ctx, request, cache)
            outcome.headers["x-request-id"] = ctx.request_id
            if _WORKER is not None:
                outcome.headers["x-truckllm-worker"] = _WORKER
            if ctx.bodies is not None:
                ctx.bodies.response_type = outcome.headers.get("content-type", "")
            if outcome.stream is None:
                if ctx.state is not None:
                    await ctx.state.flush()  # what the answer stored is there before it is read
                if ctx.bodies is not None:
                    ctx.bodies.add(outcome.body)
                await send_bytes(send, outcome.status, outcome.headers, outcome.body)
            else:
                await self._stream(outcome, send, ctx)
        except asyncio.CancelledError:
            if not watch.fired:
                raise
            task.uncancel()  # we cancelled ourselves because the client left: nothing to answer
        finally:
            if timer is not None:
                timer.cancel()
            watch.stop()

    async def _serve(
        self, rt: Runtime, ctx: RequestContext, request: ChatRequest, cache: CacheRun | None
    ) -> Outcome:
        """The answer: a response cache's hit, else the pipeline's (offered to the caches), through
        the guardrails' output stage."""
        guarded = bool(rt.config.guardrails)
        if cache is None:
            outcome = await serve(self.gateway, rt, request, ctx)
            return await self._guard_output(rt, ctx, outcome) if guarded else outcome
        hit = await cache.lookup()
        if hit is None:  # the cache keeps what the guardrails let through, as released
            outcome = await serve(self.gateway, rt, request, ctx)
            outcome = await cache.watch(await self._guard_output(rt, ctx, outcome) if guarded else outcome)
        else:
            outcome = await self._guard_output(rt, ctx, hit) if guarded else hit
        outcome.headers[response_cache.HEADER] = cache.status
        return outcome

    @staticmethod
    async def _stream(outcome: Outcome, send: Send, ctx: RequestContext) -> None:
        """Send a stream frame by frame; a raw stream cut short (``ctx.stream_cut``) is left
        without its end: the server then closes the connection (HTTP/1.1: no terminating chunk)
        and the client sees a truncated answer."""
        stream = outcome.stream
        assert stream is not None
        bodies = ctx.bodies
        try:
            first = await anext(stream)  # starts the generator, so that its cleanup always runs
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in outcome.headers.items()]
            await send({"type": "http.response.start", "status": 200, "headers": raw})
            if bodies is not None:
                bodies.add(first)
            await send({"type": "http.response.body", "body": first, "more_body": True})
            async for chunk in stream:
                if bodies is not None:
                    bodies.add(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not ctx.stream_cut:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]


class _DisconnectWatch:
    """Watches for ``http.disconnect`` while a request is served: a disconnect cancels the task.

    :meth:`start` leaves one ``receive()`` pending; its done-callback (this object) cancels the
    serving task when the client has gone. :meth:`stop` ends the watch.
    """

    __slots__ = ("ctx", "done", "fired", "pending", "receive", "task")

    def __init__(self, task: asyncio.Task[Any], ctx: RequestContext, receive: Receive) -> None:
        self.task = task
        self.ctx = ctx
        self.receive = receive
        self.pending: asyncio.Future[Any] | None = None
        self.fired = False
        self.done = False

    def start(self) -> None:
        """Leave a ``receive()`` pending (a disconnect already queued is seen at once)."""
        if self.done or self.pending is not None:
            return
        self.pending = asyncio.ensure_future(self.receive())
        self.pending.add_done_callback(self)

    def stop(self) -> None:
        """The request is over: no more cancelling; drop the pending ``receive()``."""
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
            self.ctx.client_disconnected = True
            self.task.cancel()
