"""The state one request carries through its attempts, and the state of one attempt.

:class:`RequestRun` is made once per request by :func:`truckllm._internal.pipeline.serve`; the failover
loop, each attempt, the stream relay and the health bookkeeping all read and update it.
"""

from __future__ import annotations

import math
import time

import aiohttp

from truckllm._internal.admission import estimate_tokens
from truckllm._internal.config.schema import RoutingConfig
from truckllm._internal.gateway import Gateway
from truckllm._internal.health import PairStats, pair_stats
from truckllm._internal.request import RequestContext
from truckllm._internal.runtime import Runtime
from truckllm.errors import GatewayError
from truckllm.types import Candidate, ChatRequest, UpstreamError

__all__ = ["AttemptFailed", "AttemptState", "RequestRun", "error_to_gateway"]


class RequestRun:
    """One request on its way through the candidates: what every attempt shares.

    ``deadline`` is on the gateway's clock (``gw.clock``), like every cooldown.
    """

    __slots__ = (
        "attempt_count",
        "counted",
        "ctx",
        "deadline",
        "dispatch",
        "estimated_tokens",
        "gw",
        "last_kind",
        "original",
        "prompt_estimate",
        "request",
        "rt",
        "tried_keys",
    )

    def __init__(self, gw: Gateway, rt: Runtime, request: ChatRequest, ctx: RequestContext) -> None:
        self.gw = gw
        self.rt = rt
        self.request = request  # what the current attempt sends (see attempt.request_for)
        self.original = request  # what the client asked, as its dialect prepared it
        self.ctx = ctx
        self.dispatch = rt.host.dispatch
        self.deadline = gw.clock() + rt.config.server.request_timeout
        self.attempt_count = 0  # upstream attempts sent (x-truckllm-attempts)
        self.counted = 0  # attempts that count against max_attempts: the first, and every retry
        self.tried_keys: set[tuple[str, str]] = set()
        self.last_kind: str | None = None  # the kind of the last failed attempt
        if ctx.estimated_tokens is None:
            ctx.estimated_tokens = estimate_tokens(request)
        self.estimated_tokens = sum(ctx.estimated_tokens)
        self.prompt_estimate = ctx.estimated_tokens[0]

    def remaining(self) -> float:
        """Seconds left before the request's deadline."""
        return self.deadline - self.gw.clock()


class AttemptState:
    """The state of one attempt on one candidate."""

    __slots__ = ("candidate", "key_state", "response", "routing", "started", "stats")

    def __init__(self, candidate: Candidate, routing: RoutingConfig) -> None:
        self.candidate = candidate
        self.stats: PairStats = pair_stats(candidate)
        self.key_state = self.stats.key_state
        self.routing = routing
        self.started = time.monotonic()  # measurements (latency, TTFT) are on the monotonic clock
        self.response: aiohttp.ClientResponse | None = None


class AttemptFailed(Exception):
    """An attempt failed with ``error``; ``fatal`` stops the whole request (the request is at fault)."""

    def __init__(self, error: UpstreamError, fatal: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.fatal = fatal


def error_to_gateway(error: UpstreamError) -> GatewayError:
    """The client's answer for the request's last upstream error (``Retry-After`` on 429/503)."""
    headers: dict[str, str] = {}
    if error.retry_after is not None and error.status in (429, 503) and error.kind != "quota":
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    # an upstream's 500 is a bad gateway answer for the client: 500 is kept for the gateway's own bugs
    status = 502 if error.status == 500 else error.status
    return GatewayError(
        status, error.message, type=error.type, code=error.code, param=error.param, headers=headers
    )
