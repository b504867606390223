"""One attempt on one candidate: build the upstream call, send it, read the answer.

:func:`build` asks the provider plugin for the upstream request (``transform_request``);
:func:`attempt` sends it within the attempt's budget and turns what comes back into an
:class:`~truckllm._internal.request.Outcome` (a whole answer, or a stream whose first bytes are in hand)
or an :class:`~truckllm._internal.run.AttemptFailed` for the failover loop. A 3xx, an answer over the
size cap, a connect or read timeout and a plugin's exception are each a failed attempt.
"""

from __future__ import annotations

import asyncio
import functools
import time

import aiohttp
from loguru import logger

from truckllm._internal.bookkeeping import on_failure, on_success, record_attempt, release
from truckllm._internal.config.schema import RoutingConfig
from truckllm._internal.deadline import deadline
from truckllm._internal.numbers import sane_limits
from truckllm._internal.relay import Reframed, reader, relay
from truckllm._internal.request import Outcome
from truckllm._internal.run import AttemptFailed, AttemptState, RequestRun
from truckllm.errors import GatewayError, UnsupportedRequest, UpstreamFailure
from truckllm.types import (
    Candidate,
    ChatRequest,
    ServedBy,
    StreamTranslator,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
)

__all__ = ["attempt", "build"]

_CHUNK = 65536
_FATAL_KINDS = frozenset({"bad_request", "context_length", "too_large"})


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float, idle: float | None) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for one attempt: connect, and ``sock_read`` = silence allowed between
    packets (a stream's idle timeout; ``None``: none); the whole attempt's budget is a
    :func:`deadline`."""
    return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=idle)


def request_for(request: ChatRequest, cand: Candidate) -> ChatRequest:
    """What ``cand`` is sent: the request, or, for a candidate other than the account its
    :class:`~truckllm.types.Affinity` names, the request with its state made explicit.

    :raises UnsupportedRequest: only that account can serve the request.
    """
    affinity = request.affinity
    if affinity is None or (cand.provider.name == affinity.provider and cand.key.name == affinity.key):
        return request
    if affinity.elsewhere is None:
        raise UnsupportedRequest("Only the provider account that holds this conversation can continue it.")
    return affinity.elsewhere


def api_key(run: RequestRun, cand: Candidate) -> str:
    """This attempt's credential: a refreshed one's current value, else the key's configured value."""
    credentials = run.gw.credentials
    value = credentials.value(cand) if credentials.entries else None  # most keys are not refreshed
    if value is not None:
        return value
    secret = run.rt.secrets.get((cand.key.provider, cand.key.name))  # as Runtime.api_key, inline
    return secret.reveal() if secret is not None else ""


def build(run: RequestRun, cand: Candidate, routing: RoutingConfig) -> UpstreamRequest:
    """The provider plugin's upstream call for ``cand`` (``transform_request``).

    :raises UnsupportedRequest: this candidate cannot serve the request as asked.
    :raises AttemptFailed: the plugin raised (recorded as an attempt; the key is not blamed).
    """
    provider = cand.provider
    original = run.original
    run.request = original if original.affinity is None else request_for(original, cand)
    spec = run.rt.specs[cand.deployment.provider]
    if run.request.refusal is not None and run.request.dialect not in (spec.dialect, *spec.passes_through):
        raise UnsupportedRequest(run.request.refusal, param=run.request.refusal_param)
    try:
        upstream: UpstreamRequest | None = run.dispatch.call(
            "transform_request",
            provider.type,
            provider=provider,
            model=cand.deployment.model,
            request=run.request,
            api_key=api_key(run, cand),
        )
    except (UnsupportedRequest, GatewayError):
        raise
    except Exception as exc:  # a provider plugin's bug is a failed attempt, not a crash
        logger.opt(exception=exc).error("provider plugin {!r} raised in transform_request", provider.type)
        record_attempt(run, AttemptState(cand, routing), 502, "plugin")
        run.last_kind = "plugin"
        raise AttemptFailed(
            UpstreamError(status=502, kind="plugin", message=f"provider plugin error ({type(exc).__name__})")
        ) from None
    if upstream is None:
        raise UnsupportedRequest(f"no installed plugin serves provider type {provider.type!r}")
    return upstream


async def attempt(
    run: RequestRun, cand: Candidate, routing: RoutingConfig, upstream: UpstreamRequest, counted: bool
) -> Outcome:
    """Send ``upstream`` for ``cand``; the outcome, or :class:`AttemptFailed` (booked already)."""
    provider = cand.provider
    run.attempt_count += 1
    if counted:
        run.counted += 1
    run.tried_keys.add((provider.name, cand.key.name))
    state = AttemptState(cand, routing)
    state.key_state.in_flight += 1
    state.stats.in_flight += 1
    state.key_state.requests.add(run.gw.clock())
    keep_open = False
    try:
        budget = min(routing.try_timeout, run.deadline - run.gw.clock())  # run.remaining(), inline
        if budget <= 0:
            raise AttemptFailed(
                UpstreamError(status=504, kind="timeout", message="request deadline exceeded")
            )
        try:
            with deadline(budget):
                response = await _send(run, upstream, state, budget)
                if 300 <= response.status < 400:
                    raise AttemptFailed(
                        UpstreamError(
                            status=502,
                            kind="bad_response",
                            message=f"provider {provider.name!r} answered a redirect "
                            f"(HTTP {response.status}); redirects are not followed",
                        )
                    )
                if upstream.stream and 200 <= response.status < 300:
                    outcome = await _start_stream(run, response, state)
                    keep_open = True
                    return outcome
                return _finish_whole(run, response, state)
        except aiohttp.ConnectionTimeoutError:
            raise AttemptFailed(
                UpstreamError(
                    status=502,
                    kind="connect",
                    message=f"cannot reach provider {provider.name!r}: "
                    f"no connection within {routing.connect_timeout:g}s",
                )
            ) from None
        except aiohttp.SocketTimeoutError:
            raise AttemptFailed(
                UpstreamError(
                    status=504,
                    kind="timeout",
                    message=f"upstream silent for {routing.stream_idle_timeout:g}s",
                )
            ) from None
        except TimeoutError:
            raise AttemptFailed(
                UpstreamError(status=504, kind="timeout", message=f"upstream timed out after {budget:.1f}s")
            ) from None
    except AttemptFailed as failed:
        on_failure(run, state, failed.error)
        raise
    except UpstreamFailure as failure:
        on_failure(run, state, failure.error)
        # the client's request is at fault: no other candidate would take it either
        raise AttemptFailed(failure.error, fatal=failure.error.kind in _FATAL_KINDS) from None
    except (aiohttp.ClientError, OSError) as exc:
        error = UpstreamError(
            status=502,
            kind="connect",
            message=f"cannot reach provider {provider.name!r}: {type(exc).__name__}",
        )
        on_failure(run, state, error)
        raise AttemptFailed(error) from None
    except asyncio.CancelledError:
        record_attempt(run, state, 499, "cancelled")
        raise
    except (UnsupportedRequest, GatewayError):
        raise
    except Exception as exc:  # a provider plugin's bug is a failed attempt, not a crash
        logger.opt(exception=exc).error("provider plugin for {!r} raised", provider.type)
        error = UpstreamError(
            status=502, kind="plugin", message=f"provider plugin error ({type(exc).__name__})"
        )
        on_failure(run, state, error)
        raise AttemptFailed(error) from None
    finally:
        if not keep_open:
            release(state)


async def _send(
    run: RequestRun, upstream: UpstreamRequest, state: AttemptState, budget: float
) -> UpstreamResponse:
    if upstream.local is not None:
        return await upstream.local()
    session = run.gw.session
    assert session is not None, "gateway not started"
    # an upload's body is streamed from disk afresh for each attempt, never held whole
    data = upstream.body_stream() if upstream.body_stream is not None else upstream.body
    routing = state.routing
    idle = routing.stream_idle_timeout
    # a whole answer is read within the attempt's deadline: when that strikes first, no read
    # timer (aiohttp re-arms one at each packet) is set
    response = await session.request(
        upstream.method,
        upstream.url,
        data=data,
        headers=upstream.headers,
        allow_redirects=False,
        timeout=_client_timeout(routing.connect_timeout, idle if upstream.stream or idle <= budget else None),
    )
    state.response = response
    headers = response.headers  # case-insensitive already: no copy
    if upstream.stream and 200 <= response.status < 300:
        return UpstreamResponse(status=response.status, headers=headers)
    # the answer, at most server.max_response_bytes; most come whole in one read: no read for the end
    cap = run.rt.config.server.max_response_bytes
    content = response.content
    body = await content.read(_CHUNK)
    if len(body) > cap:
        raise _too_large()
    if body and not content.at_eof():
        body = await _read_rest(content, body, cap)
    return UpstreamResponse(status=response.status, headers=headers, body=body)


async def _read_rest(content: aiohttp.StreamReader, first: bytes, cap: int) -> bytes:
    """The answer after its ``first`` chunk; :class:`AttemptFailed` past ``cap`` bytes in all."""
    parts = [first]
    size = len(first)
    while True:
        chunk = await content.read(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > cap:
            raise _too_large()
        parts.append(chunk)
    return b"".join(parts)


def _too_large() -> AttemptFailed:
    return AttemptFailed(UpstreamError(status=502, kind="server", message="upstream response too large"))


def _served_by(run: RequestRun, cand: Candidate) -> None:
    """Tell a stateful dialect who answered, before it reads the answer."""
    state = run.request.state
    if state is not None:
        state.served_by = ServedBy(
            provider=cand.provider.name,
            provider_type=cand.provider.type,
            key=cand.key.name,
            model=cand.deployment.model,
            dialect=run.rt.specs[cand.deployment.provider].dialect,
        )


def _raw(content_type: str | None) -> bool:
    """A stream of bytes that is not an event stream (it cannot carry an error event)."""
    return content_type is not None and "event-stream" not in content_type.lower()


def _finish_whole(run: RequestRun, response: UpstreamResponse, state: AttemptState) -> Outcome:
    cand = state.candidate
    result = run.dispatch.call(
        "transform_response",
        cand.provider.type,
        provider=cand.provider,
        request=run.request,
        response=response,
        model=cand.deployment.model,
    )
    if result is None:
        raise AttemptFailed(
            UpstreamError(status=502, kind="plugin", message="no plugin read the upstream answer")
        )
    if result.limits is not None:
        state.key_state.limits = sane_limits(result.limits, state.routing.cooldown.max_retry_after)
        state.key_state.limits_at = run.gw.clock()
    if result.error is not None:
        raise UpstreamFailure(result.error)
    usage = None
    if 200 <= response.status < 300:
        usage = run.dispatch.call(
            "parse_usage", cand.provider.type, provider=cand.provider, request=run.request, body=response.body
        )
    on_success(run, state, usage, ttft=None)
    body = result.body
    if result.dialect != run.request.dialect or run.ctx.dialect.reframes_own:  # the dialect reframes it
        _served_by(run, cand)
        body = run.ctx.dialect.response(run.request, body, result.dialect)
    headers = {
        "x-truckllm-provider": cand.provider.name,
        "x-truckllm-attempts": str(run.attempt_count),
        "content-type": result.content_type or "application/json",
    }
    return Outcome(status=200, headers=headers, body=body)


async def _start_stream(run: RequestRun, head: UpstreamResponse, state: AttemptState) -> Outcome:
    cand = state.candidate
    translator: StreamTranslator | None = run.dispatch.call(
        "transform_stream",
        cand.provider.type,
        provider=cand.provider,
        request=run.request,
        response=head,
        model=cand.deployment.model,
    )
    if translator is None:
        raise AttemptFailed(UpstreamError(status=502, kind="plugin", message="no plugin reads this stream"))
    limits = getattr(translator, "limits", None)
    if limits is not None:
        state.key_state.limits = sane_limits(limits, state.routing.cooldown.max_retry_after)
        state.key_state.limits_at = run.gw.clock()
    source = getattr(translator, "dialect", "openai")
    content_type: str | None = getattr(translator, "content_type", None)  # a stream that is not SSE
    if source != run.request.dialect or run.ctx.dialect.reframes_own:  # the dialect reframes it
        _served_by(run, cand)
        translator = Reframed(translator, run.ctx.dialect.stream(run.request, source))
    read = reader(state, head)
    first = b""
    ended = False
    while not first:
        chunk = await read()
        if not chunk:
            first = translator.close()  # raises UpstreamFailure for an empty/truncated stream
            ended = True
            break
        first = translator.feed(chunk)
    ttft = time.monotonic() - state.started
    run.ctx.ttft_ms = (time.monotonic() - run.ctx.started) * 1000
    run.ctx.candidate = cand
    headers = {
        "x-truckllm-provider": cand.provider.name,
        "x-truckllm-attempts": str(run.attempt_count),
        "content-type": content_type or run.ctx.dialect.stream_content_type(run.request),
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
    }
    return Outcome(
        status=200,
        headers=headers,
        stream=relay(run, first, ended, read, translator, state, ttft, raw=_raw(content_type)),
    )
