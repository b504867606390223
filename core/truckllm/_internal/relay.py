"""A stream once its first bytes are in hand: read the upstream, translate, relay to the client.

Nothing is retried after the first byte reached the client: an upstream error, cut or silence
becomes an error event in the client's dialect (after any frames the translator made from the
same chunk), and the attempt is booked as failed. A raw stream (``raw``: bytes that are not an
event stream, such as speech audio) cannot carry an error event: its failure sets
``RequestContext.stream_cut`` and the endpoint closes the connection without the body's end, so
that the client sees a truncated answer rather than shorter audio. A client that goes away closes
the relay, which releases the upstream connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from loguru import logger

from truckllm._internal.admission import estimate_tokens
from truckllm._internal.bookkeeping import account, on_failure, on_success, record_attempt, release
from truckllm._internal.dialect import FrameTranslator
from truckllm._internal.run import AttemptState, RequestRun, error_to_gateway
from truckllm.errors import UpstreamFailure
from truckllm.types import RateLimits, StreamTranslator, UpstreamError, UpstreamResponse, Usage

__all__ = ["Reframed", "cut_short_usage", "reader", "relay"]


class Reframed:
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


def cut_short_usage(run: RequestRun, frames: int) -> Usage:
    """The usage of a stream that ended before its usage came (the client left, the upstream
    failed): the prompt as estimated at admission, and about one token per frame relayed. A
    budget is then settled for the work the upstream did, never refunded whole."""
    prompt, _ = estimate_tokens(run.request)
    return Usage(prompt_tokens=prompt, completion_tokens=frames, total_tokens=prompt + frames)


def reader(attempt: AttemptState, head: UpstreamResponse) -> Callable[[], Awaitable[bytes]]:
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


async def relay(
    run: RequestRun,
    first: bytes,
    ended: bool,
    read: Callable[[], Awaitable[bytes]],
    translator: StreamTranslator,
    attempt: AttemptState,
    ttft: float,
    raw: bool = False,
) -> AsyncIterator[bytes]:
    """Yield ``first``, then every translated chunk, then (on failure) the error event; a ``raw``
    stream's failure marks the request's stream as cut instead (see the module docstring)."""
    ctx = run.ctx
    idle = attempt.routing.stream_idle_timeout
    error: UpstreamError | None = None
    pending = b""
    state = ctx.state
    frames = 0  # stream frames relayed: the completion's size when the stream ends before its usage
    try:
        if state is not None and state.queued:
            await state.flush()  # what the dialect stored from these bytes is there before they are read
        frames += max(1, first.count(b"\n\n"))
        yield first
        if not ended:
            while chunk := await read():
                out = translator.feed(chunk)
                if out:
                    if state is not None and state.queued:
                        await state.flush()
                    frames += max(1, out.count(b"\n\n"))
                    yield out
            tail = translator.close()
            if state is not None and state.queued:
                await state.flush()
            if tail:
                yield tail
    except UpstreamFailure as failure:
        error = failure.error
        pending = failure.pending
    except TimeoutError:
        error = UpstreamError(status=504, kind="timeout", message=f"upstream stream idle for {idle:.0f}s")
    except (aiohttp.ClientError, OSError) as exc:
        error = UpstreamError(
            status=502, kind="stream", message=f"upstream connection lost mid-stream ({type(exc).__name__})"
        )
    except (GeneratorExit, asyncio.CancelledError):
        ctx.client_disconnected = True
        ctx.status = 499
        raise
    except Exception as exc:
        logger.opt(exception=exc).error("stream translator for {!r} raised", attempt.candidate.provider.type)
        error = UpstreamError(
            status=502, kind="plugin", message=f"provider plugin error ({type(exc).__name__})"
        )
    finally:
        usage = translator.usage
        if error is None and not ctx.client_disconnected:
            on_success(run, attempt, usage, ttft=ttft)
        else:
            if usage is None:  # the upstream read the prompt and generated until now: it bills that
                usage = cut_short_usage(run, frames)
            if error is not None:
                on_failure(run, attempt, error)
                ctx.error = error
                ctx.status = error.status
            else:  # the client left: the call that was made stays in the record
                record_attempt(run, attempt, 499, "cancelled")
            account(run, attempt, usage)
        release(attempt)
    if error is not None:
        failed = error_to_gateway(error)
        ending = getattr(translator, "error", None) or getattr(
            getattr(translator, "outer", None), "error", None
        )
        frame = ending(failed) if ending is not None else ctx.dialect.stream_error(failed)
        if raw:
            ctx.stream_cut = True
        if pending or frame:
            yield pending + frame
