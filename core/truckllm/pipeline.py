"""The request path: candidates, strategy, attempts, failover, fallbacks, streams, records.

``serve`` turns one decoded client request into an :class:`Outcome` (a whole response, or the
head of a stream whose first bytes are already in hand). Attempts that fail before anything
reached the client are retried on another candidate, within the retry budget, the attempt cap and
the request's deadline; once a stream's first byte is sent, nothing is retried.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from loguru import logger

from truckllm.admission import Reservation, estimate_tokens, settlement
from truckllm.availability import exhausted, ready_at, unusable
from truckllm.config.schema import RoutingConfig
from truckllm.deadline import deadline
from truckllm.dialect import FrameTranslator, InboundDialect
from truckllm.errors import GatewayError, UnsupportedRequest, UpstreamFailure
from truckllm.gateway import Gateway
from truckllm.health import KeyState
from truckllm.numbers import clamp_seconds, sane_limits, sane_usage
from truckllm.runtime import UNKNOWN_ALIAS, AliasPlan, Runtime
from truckllm.scrub import MAX_MESSAGE, scrub_error
from truckllm.types import (
    CLIENT_KINDS,
    AttemptRecord,
    Candidate,
    ChatRequest,
    RateLimits,
    RequestRecord,
    SelectionContext,
    StreamTranslator,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
    Usage,
)

__all__ = ["Outcome", "RequestContext", "serve"]

_CHUNK = 65536
_FATAL_KINDS = frozenset({"bad_request", "context_length", "too_large"})
FREE_FAILOVER_KINDS = frozenset({"rate_limit", "quota", "auth", "permission", "plugin"})
"""After a failure of these kinds, moving to a key not tried yet is a free failover: the failure
is about that key (or a plugin), not a sign that the upstream is overloaded."""


class Move(enum.Enum):
    """What the next attempt of a request is, and what of the retry budget it needs."""

    FIRST = "first"  # the request's first attempt: nothing
    FAILOVER = "failover"  # to an untried key after a key-specific failure: nothing
    GATED = "gated"  # to an untried key after a server-side failure: the token bucket above half
    RETRY = "retry"  # to a key already tried: the bucket and the ratio of retries in flight


@dataclass
class RequestContext:
    """What the kernel tracks about one request while it runs."""

    request_id: str
    dialect: InboundDialect
    endpoint: str = "chat"
    gateway_key: str | None = None
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    attempts: list[AttemptRecord] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    candidate: Candidate | None = None
    upstream_ms: float | None = None
    ttft_ms: float | None = None
    usage: Usage | None = None
    error: UpstreamError | None = None
    status: int = 200
    client_disconnected: bool = False
    recorded: bool = False
    reservation: Reservation | None = None
    rejected_kind: str | None = None
    request: ChatRequest | None = None
    rejected_message: str | None = None
    alias: str | None = None  # the alias (or provider/model) served, once resolved
    plan: AliasPlan | None = None  # resolved once, by the endpoint, with the key's allow-list
    priced_only: bool = False  # the gateway key has a budget: unpriced deployments may not serve


@dataclass
class Outcome:
    """A response ready to send: a whole ``body``, or a ``stream`` of frames."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


class _Attempt:
    """The state of one attempt on one candidate."""

    __slots__ = ("candidate", "key_state", "response", "routing", "started")

    def __init__(self, candidate: Candidate, key_state: KeyState, routing: RoutingConfig) -> None:
        self.candidate = candidate
        self.key_state = key_state
        self.routing = routing
        self.started = time.monotonic()
        self.response: aiohttp.ClientResponse | None = None


def _cost(candidate: Candidate, usage: Usage | None) -> float:
    price = candidate.deployment.price
    if price is None or usage is None:
        return 0.0
    cached = usage.cached_tokens
    cached_price = price.cached_input if price.cached_input is not None else price.input
    write_price = price.cache_write if price.cache_write is not None else price.input
    fresh = max(usage.prompt_tokens - cached - usage.cache_write_tokens, 0)
    return (
        fresh * price.input
        + cached * cached_price
        + usage.cache_write_tokens * write_price
        + usage.completion_tokens * price.output
    ) / 1_000_000


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float, idle: float) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for one attempt: connect, and ``sock_read`` = silence allowed between
    packets (a stream's idle timeout); the whole attempt's budget is an ``asyncio.timeout``."""
    return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=idle)


class _Reframed:
    """A provider's stream translator followed by the client dialect's frame translator."""

    def __init__(self, inner: StreamTranslator, outer: FrameTranslator) -> None:
        self.inner = inner
        self.outer = outer
        self.dialect = "client"

    @property
    def usage(self) -> Usage | None:
        """The provider stream's usage."""
        return self.inner.usage

    @usage.setter
    def usage(self, value: Usage | None) -> None:
        self.inner.usage = value

    @property
    def limits(self) -> RateLimits | None:
        """The provider stream's rate-limit figures."""
        return self.inner.limits

    @limits.setter
    def limits(self, value: RateLimits | None) -> None:
        self.inner.limits = value

    def feed(self, chunk: bytes) -> bytes:
        """Provider bytes → canonical frames → client frames."""
        try:
            frames = self.inner.feed(chunk)
        except UpstreamFailure as failure:
            failure.pending = self.outer.feed(failure.pending) if failure.pending else b""
            raise
        return self.outer.feed(frames) if frames else b""

    def close(self) -> bytes:
        """The end: the provider's last frames, then the client dialect's closing frames."""
        try:
            frames = self.inner.close()
        except UpstreamFailure as failure:
            failure.pending = self.outer.feed(failure.pending) if failure.pending else b""
            raise
        return (self.outer.feed(frames) if frames else b"") + self.outer.close()


class _Failed(Exception):
    """Internal: an attempt failed with ``error``; ``fatal`` stops the whole request."""

    def __init__(self, error: UpstreamError, fatal: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.fatal = fatal


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_to_gateway(error: UpstreamError) -> GatewayError:
    headers: dict[str, str] = {}
    if error.retry_after is not None and error.status in (429, 503) and error.kind != "quota":
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    return GatewayError(
        error.status, error.message, type=error.type, code=error.code, param=error.param, headers=headers
    )


class _Pipeline:
    """One request's run through the attempt loop."""

    def __init__(self, gw: Gateway, rt: Runtime, request: ChatRequest, ctx: RequestContext) -> None:
        self.gw = gw
        self.rt = rt
        self.request = request
        self.ctx = ctx
        self.dispatch = rt.host.dispatch
        self.deadline = ctx.started + rt.config.server.request_timeout
        self.attempt_count = 0  # upstream attempts sent (x-truckllm-attempts)
        self.counted = 0  # attempts that count against max_attempts: the first, and every retry
        self.tried_keys: set[tuple[str, str]] = set()
        self.last_kind: str | None = None  # the kind of the last failed attempt
        prompt, completion = estimate_tokens(request)
        self.estimated_tokens = prompt + completion

    # --- selection ------------------------------------------------------------------------------

    def _why_not(self, cand: Candidate, now: float) -> str | None:
        if self.request.endpoint not in self.rt.specs[cand.deployment.provider].endpoints:
            return f"does not serve the {self.request.endpoint} endpoint"
        return unusable(cand, now, self.gw.health, priced_only=self.ctx.priced_only)

    def _usable(self, plan: AliasPlan, excluded: set[str], now: float, pass_no: int) -> list[Candidate]:
        routing = plan.candidate_routing
        return [
            cand
            for cand in plan.candidates
            if cand.id not in excluded
            and routing[cand.id].retries >= pass_no
            and self._why_not(cand, now) is None
        ]

    def _order(self, plan: AliasPlan, usable: list[Candidate], now: float) -> list[Candidate]:
        if len(usable) == 1:
            return usable  # one way to order one candidate: no strategy call
        state = self.gw.strategy_state.setdefault((plan.alias, plan.strategy), {})
        context = SelectionContext(
            alias=plan.alias,
            now=now,
            random=self.gw.random,
            state=state,
            headers=self.request.headers,
            stream=self.request.stream,
            estimated_tokens=self.estimated_tokens,
        )
        try:
            ordered = self.dispatch.call(
                "select_provider", plan.strategy, strategy=plan.strategy, candidates=usable, context=context
            )
        except Exception as exc:
            logger.opt(exception=exc).error("strategy {} failed; using config order", plan.strategy)
            ordered = None
        if not ordered:
            return usable
        return list(ordered)

    def _move(self, cand: Candidate) -> Move:
        """What an attempt on ``cand`` now is (see :class:`Move` and the README's failover table).

        Moving to a key not tried yet after the last one answered 429/quota or 401/403 (or a
        plugin failed) is a free failover. After a server-side failure (5xx, timeout, refused
        connection, a cut stream, a bad answer) it needs the token bucket above half: in an
        outage the bucket empties and attempts fall back to about one per request. A second
        attempt on a key already tried is a retry: the bucket and the ratio of retries in flight.
        """
        if self.attempt_count == 0:
            return Move.FIRST
        if (cand.provider.name, cand.key.name) in self.tried_keys:
            return Move.RETRY
        return Move.FAILOVER if self.last_kind in FREE_FAILOVER_KINDS else Move.GATED

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> Outcome:
        plan = self.ctx.plan or self.rt.plan(self.request.model)
        if plan is None:
            raise GatewayError(
                404, f"The model '{self.request.model}' does not exist.", code="model_not_found"
            )
        self.ctx.alias = plan.alias
        error = await self._serve_alias(plan)
        if isinstance(error, Outcome):
            return error
        chain = list(plan.context_window_fallbacks if error.kind == "context_length" else plan.fallbacks)
        if error.kind not in CLIENT_KINDS or error.kind == "context_length":
            for alias in chain:
                if time.monotonic() >= self.deadline:
                    break
                fallback = self.rt.plan(alias)
                if fallback is None:
                    continue
                self.ctx.fallbacks.append(alias)
                result = await self._serve_alias(fallback)
                if isinstance(result, Outcome):
                    return result
                error = result
                if error.kind in CLIENT_KINDS and error.kind != "context_length":
                    break
        self.ctx.error = error
        raise _error_to_gateway(error)

    async def _serve_alias(self, plan: AliasPlan) -> Outcome | UpstreamError:
        excluded: set[str] = set()
        routing_of = plan.candidate_routing
        passes = 1 + max((r.retries for r in routing_of.values()), default=0)
        last: UpstreamError | None = None
        unsupported: UnsupportedRequest | None = None
        tried_before = self.attempt_count
        for pass_no in range(passes):
            now = self.gw.clock()
            usable = self._usable(plan, excluded, now, pass_no)
            if not usable:
                if pass_no == 0 and last is None:
                    waited = await self._wait_for_candidate(plan, now)
                    if waited is not None:
                        return waited
                    usable = self._usable(plan, excluded, self.gw.clock(), pass_no)
                if not usable:
                    break
            if pass_no > 0:
                backoff = routing_of[usable[0].id].backoff
                delay = self.gw.random.uniform(0, min(backoff.max, backoff.base * 2 ** (pass_no - 1)))
                if time.monotonic() + delay >= self.deadline:
                    break
                await self.gw.sleep(delay)
            for cand in self._order(plan, usable, self.gw.clock()):
                if time.monotonic() >= self.deadline:
                    return last or self._exhausted(plan, tried_before)
                if self._why_not(cand, self.gw.clock()) is not None:
                    continue  # cooled down (or filled up) since the order was made: re-select
                routing = routing_of[cand.id]
                move = self._move(cand)
                spends = move in (Move.GATED, Move.RETRY)
                if spends and self.counted >= routing.max_attempts:
                    continue  # this candidate's max_attempts is spent; another's may not be
                budget = self.gw.budget
                if (move is Move.RETRY and not budget.allow(routing.retry_budget)) or (
                    move is Move.GATED and not budget.bucket_allows(routing.retry_budget)
                ):
                    logger.warning("retry budget exhausted; not retrying request {}", self.ctx.request_id)
                    return last or self._exhausted(plan, tried_before)
                try:  # built after the budget said yes, before it is taken: a skip costs nothing
                    upstream = self._build(cand, routing)
                except UnsupportedRequest as exc:
                    unsupported = exc
                    excluded.add(cand.id)
                    continue
                except _Failed as failed:  # the plugin raised: skip the candidate, not the key's fault
                    last = failed.error
                    excluded.add(cand.id)
                    continue
                if spends:
                    self.gw.budget.active_retries += 1
                try:
                    return await self._attempt(cand, routing, upstream, counted=spends or not self.counted)
                except _Failed as failed:
                    last = failed.error
                    if failed.fatal:
                        return last
                    if not last.retryable:
                        excluded.add(cand.id)
                finally:
                    if spends:
                        self.gw.budget.active_retries -= 1
        if last is not None and last.kind == "rate_limit":
            return self._exhausted(plan, tried_before)  # say why each key is out, and when one returns
        if last is not None and last.kind in ("quota", "auth", "permission"):
            # the provider's own answer (its status and code), and why no other key could serve
            why = self._exhausted(plan, tried_before).message
            last.message = _cut(f"{why}; the last answer: {last.message}", MAX_MESSAGE)
            return last
        if last is not None:
            return last
        if unsupported is not None:
            return UpstreamError(
                status=400,
                message=unsupported.message,
                kind="bad_request",
                type="invalid_request_error",
                param=unsupported.param,
            )
        return self._exhausted(plan, tried_before)

    def _exhausted(self, plan: AliasPlan, tried_before: int = 0) -> UpstreamError:
        return exhausted(
            plan.alias,
            plan.candidates,
            self.gw.clock(),
            self.gw.health,
            tried=self.attempt_count - tried_before,
            max_retry_after=plan.routing.cooldown.max_retry_after,
            priced_only=self.ctx.priced_only,
        )

    async def _wait_for_candidate(self, plan: AliasPlan, now: float) -> UpstreamError | None:
        """Nothing is usable: wait for the soonest candidate when that is within its ``max_wait``."""
        soonest: tuple[float, Candidate] | None = None
        for cand in plan.candidates:
            at = ready_at(cand, now)
            if now < at < float("inf") and (soonest is None or at < soonest[0]):
                soonest = (at, cand)
        if soonest is None:
            return self._exhausted(plan)
        wait = soonest[0] - now
        if wait <= plan.candidate_routing[soonest[1].id].max_wait and time.monotonic() + wait < self.deadline:
            await self.gw.sleep(wait)
            return None
        return self._exhausted(plan)

    # --- one attempt ----------------------------------------------------------------------------

    def _build(self, cand: Candidate, routing: RoutingConfig) -> UpstreamRequest:
        """The provider plugin's upstream call for ``cand`` (``transform_request``).

        :raises UnsupportedRequest: this candidate cannot serve the request as asked.
        :raises _Failed: the plugin raised (recorded as an attempt; the key is not blamed).
        """
        provider = cand.provider
        try:
            upstream: UpstreamRequest | None = self.dispatch.call(
                "transform_request",
                provider.type,
                provider=provider,
                model=cand.deployment.model,
                request=self.request,
                api_key=self.rt.api_key(cand),
            )
        except (UnsupportedRequest, GatewayError):
            raise
        except Exception as exc:  # a provider plugin's bug is a failed attempt, not a crash
            logger.opt(exception=exc).error("provider plugin {!r} raised in transform_request", provider.type)
            error = UpstreamError(
                status=502, kind="plugin", message=f"provider plugin error ({type(exc).__name__})"
            )
            self._record_attempt(_Attempt(cand, cand.stats.key_state, routing), 502, "plugin")
            self.last_kind = "plugin"
            raise _Failed(error) from None
        if upstream is None:
            raise UnsupportedRequest(f"no installed plugin serves provider type {provider.type!r}")
        return upstream

    async def _attempt(
        self, cand: Candidate, routing: RoutingConfig, upstream: UpstreamRequest, counted: bool
    ) -> Outcome:
        provider = cand.provider
        self.attempt_count += 1
        if counted:
            self.counted += 1
        self.tried_keys.add((provider.name, cand.key.name))
        state: KeyState = cand.stats.key_state
        attempt = _Attempt(cand, state, routing)
        state.in_flight += 1
        cand.stats.in_flight += 1
        state.requests.add(self.gw.clock())
        keep_open = False
        try:
            budget = min(routing.try_timeout, self.deadline - time.monotonic())
            if budget <= 0:
                raise _Failed(UpstreamError(status=504, kind="timeout", message="request deadline exceeded"))
            try:
                with deadline(budget):
                    response = await self._send(upstream, attempt)
                    if 300 <= response.status < 400:
                        raise _Failed(
                            UpstreamError(
                                status=502,
                                kind="bad_response",
                                message=f"provider {provider.name!r} answered a redirect "
                                f"(HTTP {response.status}); redirects are not followed",
                            )
                        )
                    if upstream.stream and 200 <= response.status < 300:
                        outcome = await self._start_stream(upstream, response, attempt)
                        keep_open = True
                        return outcome
                    return self._finish_whole(response, attempt)
            except aiohttp.ConnectionTimeoutError:
                raise _Failed(
                    UpstreamError(
                        status=502,
                        kind="connect",
                        message=f"cannot reach provider {provider.name!r}: "
                        f"no connection within {routing.connect_timeout:g}s",
                    )
                ) from None
            except aiohttp.SocketTimeoutError:
                raise _Failed(
                    UpstreamError(
                        status=504,
                        kind="timeout",
                        message=f"upstream silent for {routing.stream_idle_timeout:g}s",
                    )
                ) from None
            except TimeoutError:
                raise _Failed(
                    UpstreamError(
                        status=504, kind="timeout", message=f"upstream timed out after {budget:.1f}s"
                    )
                ) from None
        except _Failed as failed:
            self._on_failure(attempt, failed.error)
            raise
        except UpstreamFailure as failure:
            self._on_failure(attempt, failure.error)
            # the client's request is at fault: no other candidate would take it either
            raise _Failed(failure.error, fatal=failure.error.kind in _FATAL_KINDS) from None
        except (aiohttp.ClientError, OSError) as exc:
            error = UpstreamError(
                status=502,
                kind="connect",
                message=f"cannot reach provider {provider.name!r}: {type(exc).__name__}",
            )
            self._on_failure(attempt, error)
            raise _Failed(error) from None
        except asyncio.CancelledError:
            self._record_attempt(attempt, 499, "cancelled")
            raise
        except (UnsupportedRequest, GatewayError):
            raise
        except Exception as exc:  # a provider plugin's bug is a failed attempt, not a crash
            logger.opt(exception=exc).error("provider plugin for {!r} raised", provider.type)
            error = UpstreamError(
                status=502, kind="plugin", message=f"provider plugin error ({type(exc).__name__})"
            )
            self._on_failure(attempt, error)
            raise _Failed(error) from None
        finally:
            if not keep_open:
                self._release(attempt)

    def _release(self, attempt: _Attempt) -> None:
        attempt.key_state.in_flight -= 1
        attempt.candidate.stats.in_flight -= 1
        if attempt.response is not None:
            attempt.response.release()
            attempt.response = None

    async def _send(self, upstream: UpstreamRequest, attempt: _Attempt) -> UpstreamResponse:
        if upstream.local is not None:
            return await upstream.local()
        session = self.gw.session
        assert session is not None, "gateway not started"
        response = await session.request(
            upstream.method,
            upstream.url,
            data=upstream.body,
            headers=upstream.headers,
            allow_redirects=False,
            timeout=_client_timeout(attempt.routing.connect_timeout, attempt.routing.stream_idle_timeout),
        )
        attempt.response = response
        headers = response.headers  # case-insensitive already: no copy
        if upstream.stream and 200 <= response.status < 300:
            return UpstreamResponse(status=response.status, headers=headers)
        body = await self._read_capped(response)
        return UpstreamResponse(status=response.status, headers=headers, body=body)

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        cap = self.rt.config.server.max_response_bytes
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = await response.content.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                raise _Failed(UpstreamError(status=502, kind="server", message="upstream response too large"))
            parts.append(chunk)
        return b"".join(parts)

    def _finish_whole(self, response: UpstreamResponse, attempt: _Attempt) -> Outcome:
        cand = attempt.candidate
        result = self.dispatch.call(
            "transform_response",
            cand.provider.type,
            provider=cand.provider, request=self.request, response=response, model=cand.deployment.model
        )
        if result is None:
            raise _Failed(
                UpstreamError(status=502, kind="plugin", message="no plugin read the upstream answer")
            )
        if result.limits is not None:
            attempt.key_state.limits = sane_limits(result.limits, attempt.routing.cooldown.max_retry_after)
            attempt.key_state.limits_at = self.gw.clock()
        if result.error is not None:
            raise UpstreamFailure(result.error)
        usage = None
        body = response.body
        if 200 <= response.status < 300:
            usage = self.dispatch.call(
                "parse_usage", cand.provider.type, provider=cand.provider, request=self.request, body=body
            )
        self._on_success(attempt, usage, ttft=None)
        body = result.body
        if result.dialect != self.request.dialect or getattr(self.ctx.dialect, "reframes_own", False):
            body = self.ctx.dialect.response(self.request, body, result.dialect)
        return Outcome(status=200, headers=self._headers(attempt), body=body)

    async def _start_stream(
        self, upstream: UpstreamRequest, head: UpstreamResponse, attempt: _Attempt
    ) -> Outcome:
        cand = attempt.candidate
        translator: StreamTranslator | None = self.dispatch.call(
            "transform_stream",
            cand.provider.type,
            provider=cand.provider, request=self.request, response=head, model=cand.deployment.model
        )
        if translator is None:
            raise _Failed(UpstreamError(status=502, kind="plugin", message="no plugin reads this stream"))
        limits = getattr(translator, "limits", None)
        if limits is not None:
            attempt.key_state.limits = sane_limits(limits, attempt.routing.cooldown.max_retry_after)
            attempt.key_state.limits_at = self.gw.clock()
        source = getattr(translator, "dialect", "openai")
        if source != self.request.dialect or getattr(self.ctx.dialect, "reframes_own", False):
            translator = _Reframed(translator, self.ctx.dialect.stream(self.request, source))
        read = self._reader(attempt, head)
        first = b""
        ended = False
        while not first:
            chunk = await read()
            if not chunk:
                first = translator.close()  # raises UpstreamFailure for an empty/truncated stream
                ended = True
                break
            first = translator.feed(chunk)
        ttft = time.monotonic() - attempt.started
        self.ctx.ttft_ms = (time.monotonic() - self.ctx.started) * 1000
        self.ctx.candidate = cand
        return Outcome(
            status=200,
            headers=self._headers(attempt, stream=True),
            stream=self._relay(first, ended, read, translator, attempt, ttft),
        )

    def _reader(self, attempt: _Attempt, head: UpstreamResponse) -> Callable[[], Awaitable[bytes]]:
        """The next chunk of the upstream stream (``b""`` at its end).

        From an HTTP upstream it is aiohttp's own read (its ``sock_read`` timeout is the stream's
        idle timeout, re-armed by every packet); from a local answer, its chunks with the same idle
        timeout applied here.
        """
        if head.chunks is None:
            assert attempt.response is not None
            return attempt.response.content.readany
        chunks = head.chunks
        idle = attempt.routing.stream_idle_timeout

        async def read_local() -> bytes:
            try:
                async with asyncio.timeout(idle):
                    chunk = b""
                    while not chunk:  # an empty chunk is not the end
                        chunk = await anext(chunks)
                    return chunk
            except StopAsyncIteration:
                return b""

        return read_local

    async def _relay(
        self,
        first: bytes,
        ended: bool,
        read: Callable[[], Awaitable[bytes]],
        translator: StreamTranslator,
        attempt: _Attempt,
        ttft: float,
    ) -> AsyncIterator[bytes]:
        idle = attempt.routing.stream_idle_timeout
        error: UpstreamError | None = None
        pending = b""
        try:
            yield first
            if not ended:
                while chunk := await read():
                    out = translator.feed(chunk)
                    if out:
                        yield out
                tail = translator.close()
                if tail:
                    yield tail
        except UpstreamFailure as failure:
            error = failure.error
            pending = failure.pending
        except TimeoutError:
            error = UpstreamError(status=504, kind="timeout", message=f"upstream stream idle for {idle:.0f}s")
        except (aiohttp.ClientError, OSError) as exc:
            error = UpstreamError(
                status=502,
                kind="stream",
                message=f"upstream connection lost mid-stream ({type(exc).__name__})",
            )
        except (GeneratorExit, asyncio.CancelledError):
            self.ctx.client_disconnected = True
            self.ctx.status = 499
            raise
        except Exception as exc:
            logger.opt(exception=exc).error(
                "stream translator for {!r} raised", attempt.candidate.provider.type
            )
            error = UpstreamError(
                status=502, kind="plugin", message=f"provider plugin error ({type(exc).__name__})"
            )
        finally:
            usage = translator.usage
            if error is None and not self.ctx.client_disconnected:
                self._on_success(attempt, usage, ttft=ttft)
            else:
                if error is not None:
                    self._on_failure(attempt, error, count_health=error.kind != "plugin")
                    self.ctx.error = error
                    self.ctx.status = error.status
                self._account(attempt, usage)
            self._release(attempt)
            finish(self.gw, self.rt, self.request, self.ctx)
        if error is not None:
            failed = _error_to_gateway(error)
            ending = getattr(getattr(translator, "outer", None), "error", None)
            frame = ending(failed) if ending is not None else self.ctx.dialect.stream_error(failed)
            yield pending + frame

    # --- bookkeeping ----------------------------------------------------------------------------

    def _headers(self, attempt: _Attempt, stream: bool = False) -> dict[str, str]:
        headers = {
            "x-truckllm-provider": attempt.candidate.provider.name,
            "x-truckllm-attempts": str(self.attempt_count),
        }
        if stream:
            headers["content-type"] = self.ctx.dialect.stream_content_type(self.request)
            headers["cache-control"] = "no-cache"
            headers["x-accel-buffering"] = "no"
        else:
            headers["content-type"] = "application/json"
        return headers

    def _record_attempt(self, attempt: _Attempt, status: int, kind: str | None) -> None:
        cand = attempt.candidate
        self.ctx.attempts.append(
            AttemptRecord(
                provider=cand.provider.name,
                provider_key=cand.key.name,
                deployment=cand.deployment.label,
                model=cand.deployment.model,
                alias=cand.deployment.alias,
                status=status,
                latency_ms=round((time.monotonic() - attempt.started) * 1000, 3),
                error_kind=kind,
            )
        )

    def _account(self, attempt: _Attempt, usage: Usage | None) -> None:
        self.ctx.candidate = attempt.candidate
        usage = sane_usage(usage)
        self.ctx.usage = usage
        self.ctx.upstream_ms = (time.monotonic() - attempt.started) * 1000
        if usage is not None:
            attempt.key_state.tokens.add(self.gw.clock(), usage.total_tokens)

    def _on_success(self, attempt: _Attempt, usage: Usage | None, ttft: float | None) -> None:
        self._record_attempt(attempt, 200, None)
        self.gw.health.record_success(attempt.key_state)
        self.gw.budget.succeeded(attempt.routing.retry_budget)
        attempt.candidate.stats.observe(time.monotonic() - attempt.started, ttft)
        self._account(attempt, usage)

    def _on_failure(self, attempt: _Attempt, error: UpstreamError, count_health: bool = True) -> None:
        """Book one failed attempt: scrub the error (every field, before anything reads it), record
        the attempt, and tell the key's health what the failure says about the key."""
        scrub_error(error, self.rt.scrubber)
        self.last_kind = error.kind
        cooldown = attempt.routing.cooldown
        if error.retry_after is not None:
            error.retry_after = clamp_seconds(error.retry_after, cooldown.max_retry_after)
        self._record_attempt(attempt, error.status, error.kind)
        cand = attempt.candidate
        stats = cand.stats
        stats.failures += 1
        kind = error.kind
        if not count_health or kind == "plugin":
            return  # a plugin's bug says nothing about the key
        state = attempt.key_state
        now = self.gw.clock()
        if kind == "rate_limit":
            seconds = error.retry_after if error.retry_after is not None else cooldown.duration
            state.cool(now, seconds, "rate_limit")
            self.gw.share_cooldown(cand.provider.name, cand.key.name, seconds, "rate_limit")
            logger.info(
                "key {}/{} cooling down {:.1f}s after 429", cand.provider.name, cand.key.name, seconds
            )
        elif kind == "quota":
            state.cool(now, cooldown.max_duration, "quota")
            self.gw.share_cooldown(cand.provider.name, cand.key.name, cooldown.max_duration, "quota")
            logger.warning(
                "key {}/{} is out of quota; out for {:.0f}s",
                cand.provider.name,
                cand.key.name,
                cooldown.max_duration,
            )
        elif kind in ("auth", "permission"):
            state.disabled = f"{error.status} {kind}: {error.message}"[:200]
            logger.error(
                "key {}/{} REJECTED by the provider ({}); disabled until reload or re-enable",
                cand.provider.name,
                cand.key.name,
                error.status,
            )
        elif kind in CLIENT_KINDS:
            return
        else:
            if self.gw.health.record_failure(state, cooldown, now, kind):
                logger.warning(
                    "key {}/{} ejected for {:.0f}s after repeated failures ({})",
                    cand.provider.name,
                    cand.key.name,
                    state.ejected_until - now,
                    kind,
                )
            self.gw.budget.failed(attempt.routing.retry_budget)


def finish(gw: Gateway, rt: Runtime, request: ChatRequest | None, ctx: RequestContext) -> None:
    """Build the request's record and queue it for ``store_usage`` and ``emit_log`` (once).

    ``request`` is ``None`` for a request rejected before it was decoded (its record then has
    the endpoint and dialect from ``ctx`` and no alias).
    """
    if ctx.recorded:
        return
    ctx.recorded = True
    cand = ctx.candidate
    record = RequestRecord(
        request_id=ctx.request_id,
        started_at=ctx.started_wall,
        endpoint=request.endpoint if request else ctx.endpoint,
        dialect=request.dialect if request else ctx.dialect.name,
        alias=ctx.alias if ctx.alias is not None else (UNKNOWN_ALIAS if request else ""),
        gateway_key=ctx.gateway_key,
        stream=request.stream if request else False,
        status=ctx.status,
        latency_ms=round((time.monotonic() - ctx.started) * 1000, 3),
        ttft_ms=round(ctx.ttft_ms, 3) if ctx.ttft_ms is not None else None,
        upstream_ms=round(ctx.upstream_ms, 3) if ctx.upstream_ms is not None else None,
        provider=cand.provider.name if cand else None,
        provider_type=cand.provider.type if cand else None,
        deployment=cand.deployment.label if cand else None,
        model=cand.deployment.model if cand else None,
        provider_key=cand.key.name if cand else None,
        attempts=tuple(ctx.attempts),
        fallbacks=tuple(ctx.fallbacks),
        usage=ctx.usage,
        cost_usd=_cost(cand, ctx.usage) if cand else 0.0,
        error_kind=ctx.error.kind if ctx.error else ctx.rejected_kind,
        error_message=ctx.error.message if ctx.error else ctx.rejected_message,
        client_disconnected=ctx.client_disconnected,
    )
    gw.background.submit(rt.host, record)
    if ctx.reservation is not None and gw.store is not None:
        gw.background.settle(gw.store, settlement(ctx.reservation, ctx.usage, record.cost_usd))


async def serve(gw: Gateway, rt: Runtime, request: ChatRequest, ctx: RequestContext) -> Outcome:
    """Serve one request; raise :class:`GatewayError` for an answer in the client's error format.

    A whole response is recorded here; a stream is recorded when it ends.
    """
    pipeline = _Pipeline(gw, rt, request, ctx)
    gw.budget.active_requests += 1
    try:
        outcome = await pipeline.run()
    except GatewayError as exc:
        ctx.status = exc.status
        finish(gw, rt, request, ctx)
        exc.headers.setdefault("x-truckllm-attempts", str(pipeline.attempt_count))
        raise
    except asyncio.CancelledError:
        ctx.client_disconnected = True
        ctx.status = 499
        finish(gw, rt, request, ctx)
        raise
    finally:
        gw.budget.active_requests -= 1
    if outcome.stream is None:
        ctx.status = outcome.status
        finish(gw, rt, request, ctx)
    return outcome
