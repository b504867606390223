"""The request path: candidates, strategy, attempts, failover, fallbacks, streams, records.

``serve`` turns one decoded client request into an :class:`Outcome` (a whole response, or the
head of a stream whose first bytes are already in hand). Attempts that fail before anything
reached the client are retried on another candidate, within the retry budget, the attempt cap and
the request's deadline; once a stream's first byte is sent, nothing is retried.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from loguru import logger

from truckllm.admission import Reservation, estimate_tokens, settlement
from truckllm.config.schema import RoutingConfig
from truckllm.deadline import deadline
from truckllm.dialect import FrameTranslator, InboundDialect
from truckllm.errors import GatewayError, UnsupportedRequest, UpstreamFailure
from truckllm.gateway import Gateway
from truckllm.health import KeyState
from truckllm.redact import redact_text
from truckllm.runtime import AliasPlan, Runtime
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
        self.attempt_count = 0
        prompt, completion = estimate_tokens(request)
        self.estimated_tokens = prompt + completion

    # --- selection ------------------------------------------------------------------------------

    def _usable(self, plan: AliasPlan, excluded: set[str], now: float) -> list[Candidate]:
        usable = []
        for cand in plan.candidates:
            if cand.id in excluded:
                continue
            if self.request.endpoint not in self.rt.specs[cand.deployment.provider].endpoints:
                continue
            state: KeyState = cand.stats.key_state
            if state.available_at(now) > now or self.gw.health.probing(state, now):
                continue
            key = cand.key
            if key.rpm is not None and state.requests.total(now) >= key.rpm:
                continue
            if key.tpm is not None and state.tokens.total(now) >= key.tpm:
                continue
            usable.append(cand)
        return usable

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

    def _soonest(self, plan: AliasPlan, now: float) -> float | None:
        times = []
        for cand in plan.candidates:
            state: KeyState = cand.stats.key_state
            at = state.available_at(now)
            if at == float("inf"):
                continue
            if cand.key.rpm is not None and state.requests.total(now) >= cand.key.rpm:
                at = max(at, now + 1.0)
            times.append(at)
        return min(times) if times else None

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> Outcome:
        plan = self.rt.plan(self.request.model)
        if plan is None:
            raise GatewayError(
                404, f"The model '{self.request.model}' does not exist.", code="model_not_found"
            )
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
        routing = plan.routing
        last: UpstreamError | None = None
        unsupported: UnsupportedRequest | None = None
        for pass_no in range(routing.retries + 1):
            now = self.gw.clock()
            usable = self._usable(plan, excluded, now)
            if not usable:
                if pass_no == 0 and last is None:
                    waited = await self._wait_for_candidate(plan, now)
                    if isinstance(waited, UpstreamError):
                        return waited
                    usable = self._usable(plan, excluded, self.gw.clock())
                if not usable:
                    break
            if pass_no > 0:
                delay = self.gw.random.uniform(
                    0, min(routing.backoff.max, routing.backoff.base * 2 ** (pass_no - 1))
                )
                if time.monotonic() + delay >= self.deadline:
                    break
                await self.gw.sleep(delay)
            ordered = self._order(plan, usable, self.gw.clock())
            for cand in ordered:
                if self.attempt_count >= routing.max_attempts or time.monotonic() >= self.deadline:
                    return last or self._exhausted(plan)
                state: KeyState = cand.stats.key_state
                if state.available_at(self.gw.clock()) > self.gw.clock():
                    continue  # cooled down by an earlier attempt of this request
                is_retry = self.attempt_count > 0
                if is_retry:
                    if not self.gw.budget.allow(routing.retry_budget):
                        logger.warning("retry budget exhausted; not retrying request {}", self.ctx.request_id)
                        return last or self._exhausted(plan)
                    self.gw.budget.active_retries += 1
                try:
                    return await self._attempt(cand, plan.candidate_routing[cand.id])
                except UnsupportedRequest as exc:
                    unsupported = exc
                    excluded.add(cand.id)
                    self.attempt_count -= 1
                except _Failed as failed:
                    last = failed.error
                    if failed.fatal:
                        return last
                    if not last.retryable:
                        excluded.add(cand.id)
                finally:
                    if is_retry:
                        self.gw.budget.active_retries -= 1
        if last is not None and last.kind == "rate_limit":
            return self._exhausted(plan)  # every key is cooling: say when the soonest comes back
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
        return self._exhausted(plan)

    def _exhausted(self, plan: AliasPlan) -> UpstreamError:
        now = self.gw.clock()
        soonest = self._soonest(plan, now)
        if soonest is not None and soonest > now:
            limited = any(
                (
                    c.stats.key_state.cooldown_until > now
                    and c.stats.key_state.cooldown_reason in ("rate_limit", "quota")
                )
                or (c.key.rpm is not None and c.stats.key_state.requests.total(now) >= c.key.rpm)
                for c in plan.candidates
            )
            if limited:
                return UpstreamError(
                    status=429,
                    kind="rate_limit",
                    type="rate_limit_error",
                    code="rate_limit_exceeded",
                    message=f"every deployment of {plan.alias!r} is rate-limited or cooling down",
                    retry_after=soonest - now,
                )
            return UpstreamError(
                status=503,
                kind="overloaded",
                message=f"every deployment of {plan.alias!r} is failing; retry later",
                retry_after=soonest - now,
            )
        return UpstreamError(
            status=503,
            kind="server",
            message=f"no deployment of {plan.alias!r} is available",
            type="server_error",
        )

    async def _wait_for_candidate(self, plan: AliasPlan, now: float) -> UpstreamError | None:
        soonest = self._soonest(plan, now)
        if soonest is None:
            return self._exhausted(plan)
        wait = soonest - now
        if wait <= plan.routing.max_wait and time.monotonic() + wait < self.deadline:
            await self.gw.sleep(wait)
            return None
        return self._exhausted(plan)

    # --- one attempt ----------------------------------------------------------------------------

    async def _attempt(self, cand: Candidate, routing: RoutingConfig) -> Outcome:
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
            self.attempt_count += 1
            failed = _Attempt(cand, cand.stats.key_state, routing)
            message = f"provider plugin error ({type(exc).__name__})"
            error = UpstreamError(status=502, kind="plugin", message=message)
            self._record_attempt(failed, 502, "plugin")
            raise _Failed(error) from None
        if upstream is None:
            raise UnsupportedRequest(f"no installed plugin serves provider type {provider.type!r}")
        self.attempt_count += 1
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
                    if upstream.stream and 200 <= response.status < 300:
                        outcome = await self._start_stream(upstream, response, attempt)
                        keep_open = True
                        return outcome
                    return self._finish_whole(response, attempt)
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
            attempt.key_state.limits = result.limits
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
            attempt.key_state.limits = limits
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
        error.message = redact_text(error.message, self.rt.secrets.values())
        self._record_attempt(attempt, error.status, error.kind)
        cand = attempt.candidate
        stats = cand.stats
        stats.failures += 1
        if not count_health:
            return
        state = attempt.key_state
        now = self.gw.clock()
        cooldown = attempt.routing.cooldown
        kind = error.kind
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
        alias=request.model if request else "",
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
