"""Response caches: the ``cache_lookup`` / ``cache_store`` hooks around one request.

The endpoint makes one :class:`CacheRun` per request once the request is admitted (when some
plugin implements ``cache_lookup``). :meth:`CacheRun.lookup` asks the caches before a candidate
is selected; a hit becomes an :class:`Outcome` that replays the stored answer as it was sent.
On a miss, :meth:`CacheRun.watch` wraps the served outcome so that a complete, successful answer
(the whole body, or every frame of a stream that ended well) is offered to ``cache_store``.
Errors, streams cut short or ended by an error event, and clients that left are never stored.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, cast

import msgspec
from loguru import logger

from truckllm._internal.dialect_state import backend_of
from truckllm._internal.gateway import Gateway
from truckllm._internal.request import Outcome, RequestContext, cost, end_request
from truckllm._internal.runtime import Runtime
from truckllm._internal.store import StateStore
from truckllm.types import CacheContext, CachedAnswer, ChatRequest, RequestRecord

__all__ = ["HEADER", "MAX_RECORDED_BYTES", "CacheRun", "bypassed", "end", "start"]

HEADER = "x-truckllm-cache"
"""The answer header saying what the cache did: ``hit``, ``miss`` or ``bypass``."""
MAX_RECORDED_BYTES = 16 * 1024 * 1024
"""A stream longer than this is sent on but not offered to ``cache_store``."""
_PREFIX = "rcache:"  # response caches' names never spell a dialect's stored state ("state:...")


class _CacheStorage:
    """The runtime store's state (or this process's memory) under the caches' own prefix."""

    __slots__ = ("_backend",)

    def __init__(self, backend: StateStore) -> None:
        self._backend = backend

    async def get_state(self, name: str) -> bytes | None:
        """The value under ``name``."""
        return await self._backend.get_state(_PREFIX + name)

    async def put_state(self, name: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` under ``name`` for ``ttl`` seconds."""
        await self._backend.put_state(_PREFIX + name, value, ttl)


def bypassed(request: ChatRequest) -> tuple[bool, bool]:
    """``(no lookup, no store)`` from the client's ``Cache-Control``: ``no-cache`` skips the
    lookup (the fresh answer may be stored), ``no-store`` skips both."""
    directives = {
        d.strip().split("=", 1)[0].lower() for d in request.headers.get("cache-control", "").split(",")
    }
    no_store = "no-store" in directives
    return ("no-cache" in directives or no_store, no_store)


def start(gw: Gateway, rt: Runtime, ctx: RequestContext, request: ChatRequest) -> CacheRun | None:
    """The request's cache run, or ``None`` when no plugin implements ``cache_lookup``."""
    if not rt.host.dispatch.each("cache_lookup"):  # cached per config: no list copied per request
        return None
    lookups = rt.host.pm.hook.cache_lookup.get_hookimpls()
    context = CacheContext(
        alias=ctx.alias or request.model,
        gateway_key=ctx.gateway_key,
        dialect=request.dialect,
        endpoint=request.endpoint,
        storage=_CacheStorage(backend_of(gw.store, gw.memory_state)),
    )
    no_lookup, no_store = bypassed(request)
    run = CacheRun(ctx, request, context, lookups, rt.host.pm.hook.cache_store.get_hookimpls())
    run.status = "bypass" if no_lookup else "miss"
    run.store = not no_store
    return run


async def _call(impl: Any, **kwargs: object) -> Any:
    """One plugin's implementation, awaited when it returns an awaitable."""
    result = impl.function(*[kwargs[name] for name in impl.argnames])
    if inspect.isawaitable(result):
        result = await result
    return result


class CacheRun:
    """The caches' part in one request: look up, replay a hit, or watch the answer to store it."""

    def __init__(
        self,
        ctx: RequestContext,
        request: ChatRequest,
        context: CacheContext,
        lookups: Sequence[Any],
        stores: Sequence[Any],
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.context = context
        self._lookups = lookups
        self._stores = stores
        self.status: Literal["hit", "miss", "bypass"] = "miss"
        self.store = True
        self.hit: CachedAnswer | None = None

    async def lookup(self) -> Outcome | None:
        """Ask the caches (in pluggy's order; a failing one is a miss): the hit's outcome, or
        ``None``."""
        if self.status == "bypass":
            return None
        for impl in reversed(self._lookups):  # pluggy calls the last registered first
            try:
                answer = await _call(impl, request=self.request, context=self.context)
            except Exception as exc:
                logger.opt(exception=exc).error("cache_lookup of plugin {} failed", impl.plugin_name)
                continue
            if isinstance(answer, CachedAnswer) and (answer.body if not answer.stream else answer.frames):
                self.hit = answer
                self.status = "hit"
                self.ctx.status = 200
                return self._replay(answer)
        return None

    @staticmethod
    def _replay(answer: CachedAnswer) -> Outcome:
        headers = {"content-type": answer.content_type}
        if not answer.stream:
            return Outcome(status=200, headers=headers, body=answer.body)
        return Outcome(status=200, headers=headers, stream=_frames(answer.frames))

    def extra(self) -> dict[str, object]:
        """What the request's record says about the cache."""
        extra: dict[str, object] = {"cache": self.status}
        if self.hit is not None:
            extra["cost_saved_usd"] = self.hit.cost_usd
            if self.hit.usage is not None:
                extra["tokens_saved"] = self.hit.usage.total_tokens
        return extra

    async def watch(self, outcome: Outcome) -> Outcome:
        """The served outcome, offered to ``cache_store`` once complete and successful."""
        if not self.store or not self._stores or self.status == "hit" or outcome.status != 200:
            return outcome
        content_type = outcome.headers.get("content-type", "application/json")
        if outcome.stream is None:
            if self._succeeded():
                await self._offer(CachedAnswer(body=outcome.body, content_type=content_type, **self._spent()))
            return outcome
        outcome.stream = self._recording(outcome.stream, content_type)
        return outcome

    def _succeeded(self) -> bool:
        ctx = self.ctx
        return ctx.error is None and ctx.status == 200 and not ctx.client_disconnected

    def _spent(self) -> dict[str, Any]:
        usage = self.ctx.usage
        spent = cost(self.ctx.candidate, usage, self.ctx.request) if self.ctx.candidate else 0.0
        return {"usage": usage, "cost_usd": spent}

    async def _recording(self, stream: AsyncIterator[bytes], content_type: str) -> AsyncIterator[bytes]:
        frames: list[bytes] = []
        size = 0
        try:
            async for frame in stream:
                size += len(frame)
                if size <= MAX_RECORDED_BYTES:
                    frames.append(frame)
                yield frame
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if size <= MAX_RECORDED_BYTES and frames and self._succeeded():
            answer = CachedAnswer(
                stream=True, frames=tuple(frames), content_type=content_type, **self._spent()
            )
            await self._offer(answer)

    async def _offer(self, answer: CachedAnswer) -> None:
        for impl in reversed(self._stores):
            try:
                await _call(impl, request=self.request, context=self.context, answer=answer)
            except Exception as exc:
                logger.opt(exception=exc).error("cache_store of plugin {} failed", impl.plugin_name)


async def _frames(frames: tuple[bytes, ...]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame


class _TaggedBackground:
    """The gateway's after-response queue, adding the cache's word to each record it queues."""

    __slots__ = ("_extra", "_inner")

    def __init__(self, inner: Any, extra: dict[str, object]) -> None:
        self._inner = inner
        self._extra = extra

    def submit(self, host: Any, record: RequestRecord) -> None:
        """Queue ``record`` with the cache's fields in its ``extra``."""
        self._inner.submit(host, msgspec.structs.replace(record, extra={**record.extra, **self._extra}))

    def settle(self, store: Any, settlement: Any) -> None:
        """Queue a settlement unchanged."""
        self._inner.settle(store, settlement)


class _TaggedGateway:
    """What :func:`end_request` uses of the gateway (its queue and store), tagging records."""

    __slots__ = ("background", "store")

    def __init__(self, gw: Gateway, extra: dict[str, object]) -> None:
        self.background = _TaggedBackground(gw.background, extra)
        self.store = gw.store


def end(gw: Gateway, rt: Runtime, ctx: RequestContext, run: CacheRun | None) -> None:
    """End the request (:func:`end_request`); with a cache run, its record's ``extra`` says
    ``cache`` (``hit``, ``miss``, ``bypass``) and, for a hit, ``cost_saved_usd`` and
    ``tokens_saved``. A hit has no candidate and no usage: it costs 0 and uses no tokens."""
    if run is None:
        end_request(gw, rt, ctx)
    else:
        end_request(cast(Gateway, _TaggedGateway(gw, run.extra())), rt, ctx)
