"""A stream once its first bytes are in hand: read the upstream, translate, relay to the client.

Nothing is retried after the first byte reached the client: an upstream error, cut or silence
becomes an error event in the client's dialect (after any frames the translator made from the
same chunk), and the attempt is booked as failed. A client that goes away closes the relay, which
releases the upstream connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from loguru import logger

from truckllm._internal.bookkeeping import account, on_failure, on_success, release
from truckllm._internal.dialect import FrameTranslator
from truckllm._internal.run import AttemptState, RequestRun, error_to_gateway
from truckllm.errors import UpstreamFailure
from truckllm.types import RateLimits, StreamTranslator, UpstreamError, UpstreamResponse, Usage

__all__ = ["Reframed", "reader", "relay"]


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
) -> AsyncIterator[bytes]:
    """Yield ``first``, then every translated chunk, then (on failure) the error event."""
    ctx = run.ctx
    idle = attempt.routing.stream_idle_timeout
    error: UpstreamError | None = None
    pending = b""
    try:
        if ended and ctx.state is not None:
            await ctx.state.flush()  # what the stream stored is there before its end is read
        yield first
        if not ended:
            while chunk := await read():
                out = translator.feed(chunk)
                if out:
                    yield out
            tail = translator.close()
            if ctx.state is not None:
                await ctx.state.flush()
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
            if error is not None:
                on_failure(run, attempt, error)
                ctx.error = error
                ctx.status = error.status
            account(run, attempt, usage)
        release(attempt)
    if error is not None:
        failed = error_to_gateway(error)
        ending = getattr(getattr(translator, "outer", None), "error", None)
        frame = ending(failed) if ending is not None else ctx.dialect.stream_error(failed)
        yield pending + frame
