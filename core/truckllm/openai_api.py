"""The OpenAI-compatible API: chat completions, completions, embeddings, models.

The three POST endpoints are pure ASGI (the hot path): read the body with a size cap, check the
gateway key, decode and validate once with msgspec, resolve the alias, run the pipeline while
watching for the client going away, and send the answer (whole, or a stream frame by frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from typing import Any

import msgspec

from truckllm.admission import admit
from truckllm.asgi_util import (
    ClientGone,
    Receive,
    Scope,
    Send,
    header,
    headers_dict,
    read_body,
    request_id,
    send_bytes,
)
from truckllm.auth import bearer
from truckllm.dialect import OPENAI, ClientDialect
from truckllm.errors import GatewayError
from truckllm.gateway import Gateway
from truckllm.pipeline import Outcome, RequestContext, finish, serve
from truckllm.runtime import Runtime
from truckllm.schemas.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, check_input
from truckllm.types import ChatRequest

__all__ = ["CompletionsEndpoint", "list_models", "model_object"]

_SCHEMAS: dict[str, Any] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
    "embeddings": EmbeddingRequest,
}
_DECODERS = {name: msgspec.json.Decoder(schema) for name, schema in _SCHEMAS.items()}
_CREDENTIAL_HEADERS = frozenset(
    {b"authorization", b"x-api-key", b"x-goog-api-key", b"cookie", b"proxy-authorization"}
)
_WORKER = os.environ.get("TRUCKLLM_WORKER")  # set by truckllm.server.supervise() in each worker
_REJECTED_KIND = {401: "auth", 403: "permission", 404: "not_found", 413: "too_large", 429: "rate_limit"}
_PATH = re.compile(r"`\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)`")


def validation_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> GatewayError:
    """A 400 in OpenAI's shape naming the field at fault."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return GatewayError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload.)",
        )
    param = None
    match = _PATH.search(text)
    if match and match.group(1):
        param = match.group(1).lstrip(".")
    missing = re.match(r"Object missing required field `(.+?)`", text)
    if missing:
        field = missing.group(1)
        param = f"{param}.{field}" if param else field
        return GatewayError(400, f"Missing required parameter: '{param}'.", param=param)
    message, _, _ = text.partition(" - at ")
    if param:
        return GatewayError(400, f"Invalid value for '{param}': {message}", param=param)
    return GatewayError(400, f"Invalid request: {message}")


def _check_limits(rt: Runtime, typed: Any) -> None:
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


def content_size(typed: ChatCompletionRequest) -> int:
    """Bytes of text and inline media in the messages (what an upstream has to read)."""
    total = 0
    for message in typed.messages:
        content = getattr(message, "content", None)
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                text = getattr(part, "text", None)
                if text is not None:
                    total += len(text)
                image = getattr(part, "image_url", None)
                if image is not None:
                    total += len(image.url)
                audio = getattr(part, "input_audio", None)
                if audio is not None:
                    total += len(audio.data)
                file = getattr(part, "file", None)
                if file is not None and isinstance(file.file_data, str):
                    total += len(file.file_data)
    return total


def resolve_alias(rt: Runtime, model: str) -> str:
    """The alias a client's ``model`` names; 404 ``model_not_found`` when there is none."""
    if model in rt.aliases:
        return model
    raise GatewayError(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


class CompletionsEndpoint:
    """``POST /v1/chat/completions``, ``/v1/completions`` or ``/v1/embeddings`` as a pure ASGI app."""

    def __init__(self, gateway: Gateway, endpoint: str, dialect: ClientDialect = OPENAI) -> None:
        self.gateway = gateway
        self.endpoint = endpoint
        self.dialect = dialect
        self.decoder = _DECODERS[endpoint]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw = self.gateway
        rt = gw.runtime  # the snapshot this request keeps to its end
        ctx = RequestContext(request_id=request_id(scope), dialect=self.dialect, endpoint=self.endpoint)
        gw.enter()
        try:
            await self._handle(rt, ctx, scope, receive, send)
        except ClientGone:
            pass
        except GatewayError as exc:
            headers = {"content-type": "application/json", "x-request-id": ctx.request_id, **exc.headers}
            await send_bytes(send, exc.status, headers, self.dialect.error_body(exc))
            if not ctx.recorded:  # rejected before the pipeline: still one record (audit, error counts)
                ctx.status = exc.status
                ctx.rejected_kind = _REJECTED_KIND.get(exc.status, "bad_request")
                ctx.rejected_message = exc.message
                finish(gw, rt, ctx.request, ctx)
        finally:
            gw.leave()

    def _decode(self, rt: Runtime, body: bytes, scope: Scope) -> ChatRequest:
        try:
            typed = self.decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise validation_error(exc) from None
        except UnicodeDecodeError:
            raise GatewayError(400, "The request body is not valid UTF-8.") from None
        _check_limits(rt, typed)
        stream = bool(getattr(typed, "stream", False))
        options = getattr(typed, "stream_options", None)
        include_usage = bool(stream and options and options.include_usage is True)
        if options and not stream:
            raise GatewayError(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        return ChatRequest(
            endpoint=self.endpoint,
            dialect=self.dialect.name,
            body=body,
            model=typed.model,
            stream=stream,
            include_usage=include_usage,
            typed=typed,
            headers=headers_dict(scope, _CREDENTIAL_HEADERS),
        )

    async def _handle(
        self, rt: Runtime, ctx: RequestContext, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if self.gateway.draining:
            raise GatewayError(
                503,
                "The gateway is shutting down.",
                type="server_error",
                headers={"retry-after": "1", "connection": "close"},
            )
        key = rt.keyring.authenticate(bearer(header(scope, b"authorization")))
        ctx.gateway_key = key.name if key else None
        body = await read_body(scope, receive, rt.config.server.max_body_bytes)
        request = self._decode(rt, body, scope)
        ctx.request = request
        alias = resolve_alias(rt, request.model)
        if key is not None and key.models is not None and alias not in key.models:
            raise GatewayError(
                403, f"This API key may not use the model '{alias}'.", code="model_not_allowed", param="model"
            )
        plan = rt.aliases[alias]
        if self.endpoint not in plan.endpoints:
            raise GatewayError(
                400, f"The model '{alias}' does not support the {self.endpoint} endpoint.", param="model"
            )
        if key is not None and self.gateway.store is not None:
            ctx.reservation = await admit(self.gateway.store, key, plan, request, ctx.request_id)

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
        try:
            await self._run(rt, ctx, request, receive, send)
        finally:
            if stream_slot is not None:
                self.gateway.streams[stream_slot] -= 1

    async def _run(
        self, rt: Runtime, ctx: RequestContext, request: ChatRequest, receive: Receive, send: Send
    ) -> None:
        disconnect = asyncio.ensure_future(receive())
        work = asyncio.ensure_future(serve(self.gateway, rt, request, ctx))
        try:
            done, _ = await asyncio.wait({work, disconnect}, return_when=asyncio.FIRST_COMPLETED)
            if work not in done:  # the client went away first
                ctx.client_disconnected = True
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, GatewayError):
                    await work
                return
            outcome: Outcome = work.result()
            outcome.headers["x-request-id"] = ctx.request_id
            if _WORKER is not None:
                outcome.headers["x-truckllm-worker"] = _WORKER
            if outcome.stream is None:
                await send_bytes(send, outcome.status, outcome.headers, outcome.body)
                return
            await self._stream(outcome, send, disconnect, ctx)
        finally:
            if not disconnect.done():
                disconnect.cancel()

    async def _stream(
        self, outcome: Outcome, send: Send, disconnect: asyncio.Future[Any], ctx: RequestContext
    ) -> None:
        stream = outcome.stream
        assert stream is not None
        first = await anext(stream)  # starts the generator, so that its cleanup always runs
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in outcome.headers.items()]
        pump = asyncio.ensure_future(self._pump(first, stream, send, raw))
        try:
            done, _ = await asyncio.wait({pump, disconnect}, return_when=asyncio.FIRST_COMPLETED)
            if pump not in done:
                ctx.client_disconnected = True
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            else:
                pump.result()
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]

    @staticmethod
    async def _pump(first: bytes, stream: Any, send: Send, raw: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def model_object(rt: Runtime, alias: str) -> dict[str, Any]:
    """One alias in OpenAI's model shape."""
    return {
        "id": alias,
        "object": "model",
        "created": int(rt.loaded_at or 0),
        "owned_by": rt.aliases[alias].owned_by,
    }


def list_models(rt: Runtime, allowed: frozenset[str] | None) -> dict[str, Any]:
    """``GET /v1/models``: the aliases this key may use, in OpenAI's list shape."""
    names = [a for a in rt.aliases if allowed is None or a in allowed]
    return {"object": "list", "data": [model_object(rt, a) for a in names]}
